// JSON-schema subset checks (see the header).
#include "toolkit/schema_check.h"

#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>
#include <cmath>

namespace conclave::toolkit {
namespace {

namespace json = boost::json;

std::string kind_of(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "integer";
    case json::kind::double_:
      return "number";
    case json::kind::string:
      return "string";
    case json::kind::array:
      return "array";
    case json::kind::object:
      return "object";
  }
  return "?";
}

bool is_type(const json::value& v, std::string_view t) {
  if (t == "integer") {
    if (v.is_int64() || v.is_uint64()) return true;
    return v.is_double() && std::isfinite(v.get_double()) &&
           v.get_double() == std::floor(v.get_double());
  }
  if (t == "number") return v.is_number();
  return kind_of(v) == t;
}

std::string where(const std::string& path) {
  return path.empty() ? "arguments" : path;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

}  // namespace

std::string check_schema(const json::value& v, const json::value& schema, const std::string& path) {
  if (!schema.is_object()) return {};
  const json::object& s = schema.get_object();
  const std::string at = where(path);
  if (const json::value* t = s.if_contains("type")) {
    bool ok = false;
    std::string names;
    if (t->is_string()) {
      ok = is_type(v, t->get_string());
      names = std::string(t->get_string());
    } else if (t->is_array()) {
      for (const auto& x : t->get_array()) {
        if (!x.is_string()) continue;
        ok = ok || is_type(v, x.get_string());
        names += (names.empty() ? "" : " or ") + std::string(x.get_string());
      }
    } else {
      ok = true;
    }
    if (!ok) return fmt::format("{}: expected {}, got {}", at, names, kind_of(v));
  }
  if (const json::value* e = s.if_contains("enum"); e && e->is_array()) {
    bool found = false;
    for (const auto& x : e->get_array()) found = found || x == v;
    if (!found)
      return fmt::format("{}: {} is not one of {}", at, json::serialize(v), json::serialize(*e));
  }
  if (const json::value* c = s.if_contains("const"); c && *c != v)
    return fmt::format("{}: must be {}", at, json::serialize(*c));
  if (v.is_number()) {
    const double x = v.to_number<double>();
    if (const json::value* m = s.if_contains("minimum");
        m && m->is_number() && x < m->to_number<double>())
      return fmt::format("{}: {} is below the minimum {}", at, json::serialize(v),
                         json::serialize(*m));
    if (const json::value* m = s.if_contains("maximum");
        m && m->is_number() && x > m->to_number<double>())
      return fmt::format("{}: {} is above the maximum {}", at, json::serialize(v),
                         json::serialize(*m));
  }
  if (v.is_string()) {
    const size_t n = utf8_length(v.get_string());
    if (const json::value* m = s.if_contains("minLength");
        m && m->is_int64() && static_cast<int64_t>(n) < m->get_int64())
      return fmt::format("{}: shorter than {} characters", at, m->get_int64());
    if (const json::value* m = s.if_contains("maxLength");
        m && m->is_int64() && static_cast<int64_t>(n) > m->get_int64())
      return fmt::format("{}: longer than {} characters", at, m->get_int64());
  }
  if (v.is_array()) {
    const auto& a = v.get_array();
    if (const json::value* m = s.if_contains("minItems");
        m && m->is_int64() && static_cast<int64_t>(a.size()) < m->get_int64())
      return fmt::format("{}: fewer than {} items", at, m->get_int64());
    if (const json::value* m = s.if_contains("maxItems");
        m && m->is_int64() && static_cast<int64_t>(a.size()) > m->get_int64())
      return fmt::format("{}: more than {} items", at, m->get_int64());
    if (const json::value* items = s.if_contains("items")) {
      for (size_t i = 0; i < a.size(); ++i) {
        if (auto err = check_schema(a[i], *items, fmt::format("{}[{}]", path, i)); !err.empty())
          return err;
      }
    }
  }
  if (v.is_object()) {
    const auto& o = v.get_object();
    const json::value* props = s.if_contains("properties");
    if (const json::value* r = s.if_contains("required"); r && r->is_array()) {
      for (const auto& k : r->get_array()) {
        if (k.is_string() && !o.contains(k.get_string()))
          return fmt::format("{}: missing required property '{}'", at, std::string(k.get_string()));
      }
    }
    const json::value* extra = s.if_contains("additionalProperties");
    for (const auto& [k, x] : o) {
      const std::string sub = path.empty() ? std::string(k) : path + "." + std::string(k);
      const json::value* ps =
          props && props->is_object() ? props->get_object().if_contains(k) : nullptr;
      if (ps) {
        if (auto err = check_schema(x, *ps, sub); !err.empty()) return err;
      } else if (extra && extra->is_bool() && !extra->get_bool()) {
        return fmt::format("{}: unknown property '{}'", at, std::string(k));
      } else if (extra && extra->is_object()) {
        if (auto err = check_schema(x, *extra, sub); !err.empty()) return err;
      }
    }
  }
  if (const json::value* all = s.if_contains("allOf"); all && all->is_array()) {
    for (const auto& b : all->get_array()) {
      if (auto err = check_schema(v, b, path); !err.empty()) return err;
    }
  }
  for (const char* key : {"anyOf", "oneOf"}) {
    const json::value* any = s.if_contains(key);
    if (!any || !any->is_array()) continue;
    int matched = 0;
    std::string first;
    for (const auto& b : any->get_array()) {
      auto err = check_schema(v, b, path);
      if (err.empty())
        ++matched;
      else if (first.empty())
        first = err;
    }
    if (matched == 0) return fmt::format("{}: matches no alternative of {} ({})", at, key, first);
    if (std::string_view(key) == "oneOf" && matched > 1)
      return fmt::format("{}: matches {} alternatives of oneOf", at, matched);
  }
  return {};
}

}  // namespace conclave::toolkit
