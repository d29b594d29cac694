// Schema-driven typing of tool parameter text (see value_convert.h).
#include "model/toolcall/value_convert.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

#include "model/toolcall/tag_scan.h"

namespace conclave::toolcall {
namespace {

namespace json = boost::json;

std::string_view trim(std::string_view s) {
  while (!s.empty() && detail::is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && detail::is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

const json::object* child_object(const json::object& o, std::string_view key) {
  const auto it = o.find(key);
  return it != o.end() && it->value().is_object() ? &it->value().get_object() : nullptr;
}

const json::array* child_array(const json::object& o, std::string_view key) {
  const auto it = o.find(key);
  return it != o.end() && it->value().is_array() ? &it->value().get_array() : nullptr;
}

// Specific types are tried before general ones: "None" for ["string","null"] is null.
int type_rank(std::string_view t) {
  static constexpr std::string_view order[] = {"null",   "boolean", "integer", "number",
                                               "object", "array",   "string"};
  for (int i = 0; i < 7; ++i) {
    if (order[i] == t) return i;
  }
  return 7;
}

// The schema's types, most specific first; implied by properties/items when absent.
std::vector<std::string> types_of(const json::object& schema) {
  std::vector<std::string> types;
  // Python names for types turn up in hand-written schemas.
  const auto add = [&types](std::string_view t) {
    if (t == "int") t = "integer";
    if (t == "float") t = "number";
    if (t == "bool") t = "boolean";
    if (t == "str") t = "string";
    if (t == "dict") t = "object";
    if (t == "list") t = "array";
    types.emplace_back(t);
  };
  if (const auto it = schema.find("type"); it != schema.end()) {
    if (it->value().is_string()) add(it->value().get_string());
    if (it->value().is_array()) {
      for (const auto& t : it->value().get_array()) {
        if (t.is_string()) add(t.get_string());
      }
    }
  } else if (schema.contains("properties")) {
    types.emplace_back("object");
  } else if (schema.contains("items")) {
    types.emplace_back("array");
  }
  std::stable_sort(types.begin(), types.end(), [](const std::string& a, const std::string& b) {
    return type_rank(a) < type_rank(b);
  });
  return types;
}

bool has_type(const std::vector<std::string>& types, std::string_view t) {
  return std::find(types.begin(), types.end(), t) != types.end();
}

const json::array* branches_of(const json::object& schema) {
  if (const json::array* b = child_array(schema, "anyOf")) return b;
  return child_array(schema, "oneOf");
}

bool is_number(const json::value& v) {
  return v.is_int64() || v.is_uint64() || v.is_double();
}

// Enum membership compares numbers by value (2 == 2.0), everything else exactly.
bool same_value(const json::value& a, const json::value& b) {
  if (is_number(a) && is_number(b)) {
    if (a.is_double() || b.is_double()) return a.to_number<double>() == b.to_number<double>();
    if (a.is_int64() && b.is_int64()) return a.get_int64() == b.get_int64();
    if (a.is_uint64() && b.is_uint64()) return a.get_uint64() == b.get_uint64();
    return false;  // one negative int64 and one uint64 past int64's range
  }
  return a == b;
}

std::optional<json::value> as_integer(const json::value& n) {
  if (!n.is_double()) return n;
  const double d = n.get_double();
  // Integral and exactly representable as int64 (2^63 itself is not).
  if (d != std::trunc(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
    return std::nullopt;
  }
  return json::value(static_cast<int64_t>(d));
}

std::optional<json::value> parse_structured(std::string_view t) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(t.data(), t.size()), ec);
  if (!ec) return v;
  return parse_python_literal(t);
}

std::optional<json::value> try_convert(std::string_view text, const json::object& schema);
void coerce(json::value& v, const json::object* schema);

std::optional<json::value> convert_as(std::string_view text, std::string_view type,
                                      const json::object& schema) {
  const std::string_view t = trim(text);
  if (type == "string") return json::value(json::string(text));
  if (type == "integer") {
    std::optional<json::value> n = parse_number(t);
    return n ? as_integer(*n) : std::nullopt;
  }
  if (type == "number") return parse_number(t);
  if (type == "boolean") {
    const std::string l = lower(t);
    if (l == "true" || l == "1") return json::value(true);
    if (l == "false" || l == "0") return json::value(false);
    return std::nullopt;
  }
  if (type == "null") {
    const std::string l = lower(t);
    if (l == "null" || l == "none") return json::value(nullptr);
    return std::nullopt;
  }
  if (type == "object" || type == "array") {
    std::optional<json::value> v = parse_structured(t);
    // Written quoted ("{'a': 1}" or "\"[1, 2]\""): the object is inside the string.
    if (v && v->is_string()) {
      const std::string inner(v->get_string());
      v = parse_structured(trim(inner));
    }
    if (!v || (type == "object" ? !v->is_object() : !v->is_array())) return std::nullopt;
    coerce(*v, &schema);
    return v;
  }
  return std::nullopt;
}

// A value of unknown type: keyword, number, then JSON or Python literal.
std::optional<json::value> loose_value(std::string_view text) {
  const std::string_view t = trim(text);
  const std::string l = lower(t);
  if (l == "true") return json::value(true);
  if (l == "false") return json::value(false);
  if (l == "null" || l == "none") return json::value(nullptr);
  if (std::optional<json::value> n = parse_number(t)) return n;
  return parse_structured(t);
}

std::optional<json::value> convert_enum(std::string_view text, const json::array& values,
                                        const std::vector<std::string>& types,
                                        const json::object& schema) {
  for (const std::string_view t : {text, trim(text)}) {
    for (const auto& e : values) {
      if (e.is_string() && e.get_string() == t) return e;
    }
  }
  std::optional<json::value> candidate;
  for (const auto& type : types) {
    if (type == "string") continue;
    if ((candidate = convert_as(text, type, schema))) break;
  }
  if (!candidate && types.empty()) candidate = loose_value(text);
  if (!candidate) return std::nullopt;
  for (const auto& e : values) {
    if (same_value(*candidate, e)) return e;
  }
  // Typed but outside the enum: the typed value still says more than the text.
  return types.empty() ? std::nullopt : candidate;
}

std::optional<json::value> try_convert(std::string_view text, const json::object& schema) {
  if (const json::array* branches = branches_of(schema)) {
    std::vector<const json::object*> order;
    for (const auto& b : *branches) {
      if (b.is_object()) order.push_back(&b.get_object());
    }
    auto rank = [](const json::object* b) {
      const std::vector<std::string> t = types_of(*b);
      return t.empty() ? type_rank("string") : type_rank(t.front());
    };
    std::stable_sort(order.begin(), order.end(), [&](const json::object* a, const json::object* b) {
      return rank(a) < rank(b);
    });
    for (const json::object* b : order) {
      if (std::optional<json::value> v = try_convert(text, *b)) return v;
    }
    return std::nullopt;
  }
  const std::vector<std::string> types = types_of(schema);
  if (const json::array* values = child_array(schema, "enum")) {
    return convert_enum(text, *values, types, schema);
  }
  for (const auto& type : types) {
    if (std::optional<json::value> v = convert_as(text, type, schema)) return v;
  }
  return std::nullopt;
}

// Nested values typed by nested schemas: {"n": "5"} under {"n": integer} is {"n": 5}.
void coerce(json::value& v, const json::object* schema) {
  if (schema == nullptr) return;
  if (v.is_string()) {
    if (is_string_schema(schema)) return;
    if (std::optional<json::value> c = try_convert(v.get_string(), *schema)) v = std::move(*c);
    return;
  }
  const std::vector<std::string> types = types_of(*schema);
  if (v.is_double() && has_type(types, "integer") && !has_type(types, "number")) {
    if (std::optional<json::value> i = as_integer(v)) v = std::move(*i);
    return;
  }
  if (v.is_object()) {
    const json::object* props = child_object(*schema, "properties");
    const json::object* extra = child_object(*schema, "additionalProperties");
    for (auto& kv : v.get_object()) {
      const json::object* sub = props != nullptr ? child_object(*props, kv.key()) : nullptr;
      coerce(kv.value(), sub != nullptr ? sub : extra);
    }
  } else if (v.is_array()) {
    const json::object* items = child_object(*schema, "items");
    for (auto& item : v.get_array()) coerce(item, items);
  }
}

}  // namespace

std::optional<json::value> parse_number(std::string_view text) {
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  // digits [. digits] [e [sign] digits], with at least one digit before the exponent.
  size_t i = 0;
  const auto digits = [&] {
    const size_t from = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return s.substr(from, i - from);
  };
  const std::string_view int_part = digits();
  std::string_view frac_part;
  bool has_point = false;
  if (i < s.size() && s[i] == '.') {
    has_point = true;
    ++i;
    frac_part = digits();
  }
  if (int_part.empty() && frac_part.empty()) return std::nullopt;
  std::string_view exp_part;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    const size_t e = ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits().empty()) return std::nullopt;
    exp_part = s.substr(e, i - e);
  }
  if (i != s.size()) return std::nullopt;

  if (!has_point && exp_part.empty()) {
    // Built by appends: g++ 12 -O3 reports a false -Wrestrict for "-" + std::string.
    std::string whole;
    if (negative) whole += '-';
    whole.append(int_part);
    int64_t v = 0;
    auto r = std::from_chars(whole.data(), whole.data() + whole.size(), v);
    if (r.ec == std::errc()) return json::value(v);
    uint64_t u = 0;
    r = std::from_chars(whole.data(), whole.data() + whole.size(), u);
    if (r.ec == std::errc()) return json::value(u);
  }
  // Normalised so that from_chars sees one form: [-]I.F[eX].
  std::string norm;
  if (negative) norm += '-';
  norm.append(int_part.empty() ? std::string_view("0") : int_part);
  norm += '.';
  norm.append(frac_part.empty() ? std::string_view("0") : frac_part);
  if (!exp_part.empty()) {
    norm += 'e';
    norm.append(exp_part);
  }
  double d = 0;
  const auto r = std::from_chars(norm.data(), norm.data() + norm.size(), d);
  if (r.ec != std::errc() || !std::isfinite(d)) return std::nullopt;
  return json::value(d);
}

bool is_string_schema(const json::object* schema) {
  if (schema == nullptr) return true;
  if (branches_of(*schema) != nullptr) return false;
  const std::vector<std::string> types = types_of(*schema);
  if (const json::array* values = child_array(*schema, "enum")) {
    const bool all_strings = std::all_of(values->begin(), values->end(),
                                         [](const json::value& e) { return e.is_string(); });
    return all_strings && (types.empty() || (types.size() == 1 && types[0] == "string"));
  }
  return types.empty() || (types.size() == 1 && types[0] == "string");
}

json::value convert_value(std::string_view text, const json::object* schema) {
  if (!is_string_schema(schema)) {
    if (std::optional<json::value> v = try_convert(text, *schema)) return std::move(*v);
    // "null" for a number or an object means no value, not the text "null".
    const std::string l = lower(trim(text));
    if (l == "null" || l == "none") return json::value(nullptr);
  }
  return json::value(json::string(text));
}

}  // namespace conclave::toolcall
