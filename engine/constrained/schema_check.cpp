// The keywords structured outputs enforce (see schema_check.h).
#include "engine/constrained/schema_check.h"

#include <spdlog/fmt/fmt.h>

#include <array>
#include <boost/json.hpp>
#include <string_view>

namespace conclave::engine::constrained {
namespace {

constexpr std::array<std::string_view, 10> kAnnotations = {
    "title",    "description", "default",  "examples",  "$schema",
    "$comment", "deprecated",  "readOnly", "writeOnly", "strict"};

constexpr std::array<std::string_view, 9> kStructural = {
    "type",  "properties", "required", "additionalProperties", "items", "enum",
    "const", "anyOf",      "oneOf"};

template <size_t N>
bool in(const std::array<std::string_view, N>& set, std::string_view k) {
  for (auto x : set)
    if (x == k) return true;
  return false;
}

void check(const boost::json::value& schema, const std::string& path, int depth) {
  if (depth > 8) throw unsupported_schema(path, "nested deeper than 8 levels");
  if (schema.is_bool()) return;  // `true`: anything; never produced as `false` below
  if (!schema.is_object()) throw unsupported_schema(path, "a schema must be an object");
  for (const auto& kv : schema.get_object()) {
    const std::string_view k = kv.key();
    if (in(kAnnotations, k)) continue;
    if (!in(kStructural, k))
      throw unsupported_schema(path,
                               fmt::format("'{}' cannot be enforced by constrained decoding", k));
    const auto& v = kv.value();
    if (k == "properties") {
      if (!v.is_object()) throw unsupported_schema(path + ".properties", "must be an object");
      for (const auto& p : v.get_object())
        check(p.value(), fmt::format("{}.properties.{}", path, std::string_view(p.key())),
              depth + 1);
    } else if (k == "items") {
      if (v.is_array()) throw unsupported_schema(path + ".items", "tuple items cannot be enforced");
      check(v, path + ".items", depth + 1);
    } else if (k == "anyOf" || k == "oneOf") {
      if (!v.is_array() || v.get_array().empty())
        throw unsupported_schema(path + "." + std::string(k), "must be a non-empty array");
      size_t i = 0;
      for (const auto& b : v.get_array())
        check(b, fmt::format("{}.{}[{}]", path, k, i++), depth + 1);
    } else if (k == "additionalProperties") {
      if (!v.is_bool() && !schema.get_object().contains("properties"))
        throw unsupported_schema(path + ".additionalProperties",
                                 "a schema for additional properties cannot be enforced");
      if (!v.is_bool()) check(v, path + ".additionalProperties", depth + 1);
    } else if (k == "required") {
      const auto* props = schema.get_object().if_contains("properties");
      if (!v.is_array()) throw unsupported_schema(path + ".required", "must be an array");
      for (const auto& r : v.get_array()) {
        if (!r.is_string() || !props || !props->is_object() ||
            !props->get_object().contains(r.get_string()))
          throw unsupported_schema(path + ".required",
                                   "every required property must be declared in 'properties'");
      }
    } else if (k == "type") {
      const auto ok = [](const boost::json::value& t) {
        static constexpr std::array<std::string_view, 7> types = {
            "string", "integer", "number", "boolean", "null", "object", "array"};
        return t.is_string() && in(types, t.get_string());
      };
      bool good = ok(v);
      if (v.is_array()) {
        good = !v.get_array().empty();
        for (const auto& t : v.get_array()) good = good && ok(t);
      }
      if (!good) throw unsupported_schema(path + ".type", "unknown type");
    } else if (k == "enum") {
      if (!v.is_array() || v.get_array().empty())
        throw unsupported_schema(path + ".enum", "must be a non-empty array");
    }
  }
}

}  // namespace

void check_enforceable(const boost::json::value& schema, const std::string& path) {
  check(schema, path, 0);
}

}  // namespace conclave::engine::constrained
