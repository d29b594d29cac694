// Jinja's built-in filters as jinja2 3.1 defines them, `tojson` as Hugging Face
// overrides it (see builtins.h).
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>

#include "model/jinja/args.h"
#include "model/jinja/builtins.h"
#include "model/jinja/text_ops.h"

namespace conclave::jinja {
namespace {

using filter_fn = value (*)(const value&, value_list&, kwarg_list&);

// `item.a.b` or `item.0` as jinja's make_attrgetter reads it.
value attribute_of(const value& item, const std::string& path) {
  value cur = item;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    std::int64_t idx = 0;
    auto r = std::from_chars(part.data(), part.data() + part.size(), idx);
    if (cur.is_dict()) {
      const value* v = cur.dict_ref().find(part);
      cur = v ? *v : value::undefined(part);
    } else if (cur.is_list() && r.ec == std::errc() && r.ptr == part.data() + part.size()) {
      const auto& items = cur.list_ref().items;
      cur = idx >= 0 && static_cast<size_t>(idx) < items.size() ? items[static_cast<size_t>(idx)]
                                                                : value::undefined(part);
    } else {
      cur = value::undefined(part);
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

// The sort key jinja uses: strings lower-cased unless case_sensitive.
value sort_key(const value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return value(text::lower(v.str()));
  return v;
}

value f_abs(const value& v, value_list& a, kwarg_list& k) {
  call_args("abs", a, k, {});
  if (v.type() == value::kind::floating) return value(std::fabs(v.as_double()));
  if (v.is_number()) return value(static_cast<std::int64_t>(std::llabs(v.as_int())));
  throw template_error(fmt::format("bad operand type for abs(): '{}'", v.type_name()));
}

value f_attr(const value& v, value_list& a, kwarg_list& k) {
  call_args args("attr", a, k, {"name"});
  if (v.type() == value::kind::ns) {
    const value* x = v.dict_ref().find(args.need_str("name"));
    return x ? *x : value::undefined();
  }
  return bound_method(v, args.need_str("name"));
}

value f_capitalize(const value& v, value_list& a, kwarg_list& k) {
  call_args("capitalize", a, k, {});
  return value(text::capitalize(to_str(v)));
}

value f_length(const value& v, value_list& a, kwarg_list& k) {
  call_args("length", a, k, {});
  return value(length(v));
}

value f_default(const value& v, value_list& a, kwarg_list& k) {
  call_args args("default", a, k, {"default_value", "boolean"});
  const bool use_default = v.is_undefined() || (args.get_bool("boolean", false) && !v.truthy());
  if (!use_default) return v;
  value d = args.get("default_value");
  return d.is_undefined() ? value(std::string()) : d;
}

value f_dictsort(const value& v, value_list& a, kwarg_list& k) {
  call_args args("dictsort", a, k, {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) throw template_error("dictsort needs a mapping");
  const bool cs = args.get_bool("case_sensitive", false);
  const std::string by = args.get_str("by").value_or("key");
  if (by != "key" && by != "value") throw template_error("dictsort: by must be 'key' or 'value'");
  auto items = v.dict_ref().items;
  const bool rev = args.get_bool("reverse", false);
  const auto sort_by = [&](const auto& item) {
    return by == "key" ? sort_key(value(item.first), cs) : sort_key(item.second, cs);
  };
  std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
    return rev ? less(sort_by(y), sort_by(x)) : less(sort_by(x), sort_by(y));
  });
  value_list out;
  for (auto& [key, val] : items) out.push_back(value::list({value(key), val}, true));
  return value::list(std::move(out));
}

value f_escape(const value& v, value_list& a, kwarg_list& k) {
  call_args("escape", a, k, {});
  return value(text::html_escape(to_str(v)));
}

value f_first(const value& v, value_list& a, kwarg_list& k) {
  call_args("first", a, k, {});
  value_list items = iterate(v);
  return items.empty() ? value::undefined() : items.front();
}

value f_last(const value& v, value_list& a, kwarg_list& k) {
  call_args("last", a, k, {});
  value_list items = iterate(v);
  return items.empty() ? value::undefined() : items.back();
}

std::optional<double> parse_float(std::string_view s) {
  std::string t = text::strip(s, std::nullopt, true, true);
  t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return d;
}

value f_float(const value& v, value_list& a, kwarg_list& k) {
  call_args args("float", a, k, {"default"});
  if (v.is_number()) return value(v.as_double());
  if (v.is_string())
    if (auto d = parse_float(v.str())) return value(*d);
  value d = args.get("default");
  return d.is_undefined() ? value(0.0) : d;
}

value f_int(const value& v, value_list& a, kwarg_list& k) {
  call_args args("int", a, k, {"default", "base"});
  const std::int64_t base = args.get_int("base", 10);
  if (v.type() == value::kind::floating) {
    if (std::isfinite(v.as_double())) return value(static_cast<std::int64_t>(v.as_double()));
  } else if (v.is_number()) {
    return value(v.as_int());
  } else if (v.is_string()) {
    std::string t = text::strip(v.str(), std::nullopt, true, true);
    t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
    std::int64_t n = 0;
    const char* b = t.data();
    if (!t.empty() && t[0] == '+') ++b;
    auto r = std::from_chars(b, t.data() + t.size(), n, static_cast<int>(base));
    if (!t.empty() && r.ec == std::errc() && r.ptr == t.data() + t.size()) return value(n);
    if (auto d = parse_float(v.str()); d && std::isfinite(*d))
      return value(static_cast<std::int64_t>(*d));
  }
  value d = args.get("default");
  return d.is_undefined() ? value(std::int64_t{0}) : d;
}

value f_indent(const value& v, value_list& a, kwarg_list& k) {
  call_args args("indent", a, k, {"width", "first", "blank"});
  value w = args.get("width");
  const std::string ind =
      w.is_string()
          ? w.str()
          : std::string(static_cast<size_t>(std::max<std::int64_t>(0, args.get_int("width", 4))),
                        ' ');
  const auto lines = text::splitlines(to_str(v) + "\n");
  std::string out;
  if (args.get_bool("blank", false)) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out += "\n" + ind;
      out += lines[i];
    }
  } else {
    out = lines.empty() ? std::string() : lines[0];
    for (size_t i = 1; i < lines.size(); ++i)
      out += "\n" + (lines[i].empty() ? "" : ind) + lines[i];
  }
  if (args.get_bool("first", false)) out = ind + out;
  return value(std::move(out));
}

value f_items(const value& v, value_list& a, kwarg_list& k) {
  call_args("items", a, k, {});
  if (v.is_undefined()) return value::list({});
  if (!v.is_dict()) throw template_error("can only get item pairs from a mapping");
  value_list out;
  for (const auto& [key, val] : v.dict_ref().items)
    out.push_back(value::list({value(key), val}, true));
  return value::list(std::move(out));
}

value f_join(const value& v, value_list& a, kwarg_list& k) {
  call_args args("join", a, k, {"d", "attribute"});
  const std::string sep = args.get_str("d").value_or("");
  const auto attr = args.get_str("attribute");
  std::string out;
  bool first = true;
  for (const auto& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(attr ? attribute_of(item, *attr) : item);
  }
  return value(std::move(out));
}

value f_list(const value& v, value_list& a, kwarg_list& k) {
  call_args("list", a, k, {});
  return value::list(iterate(v));
}

value f_lower(const value& v, value_list& a, kwarg_list& k) {
  call_args("lower", a, k, {});
  return value(text::lower(to_str(v)));
}

value f_upper(const value& v, value_list& a, kwarg_list& k) {
  call_args("upper", a, k, {});
  return value(text::upper(to_str(v)));
}

value f_map(const value& v, value_list& a, kwarg_list& k) {
  value_list out;
  const value* attr = nullptr;
  const value* dflt = nullptr;
  for (const auto& [key, val] : k) {
    if (key == "attribute")
      attr = &val;
    else if (key == "default")
      dflt = &val;
  }
  if (attr) {
    if (!attr->is_string()) throw template_error("map: attribute must be a string");
    for (const auto& item : iterate(v)) {
      value x = attribute_of(item, attr->str());
      out.push_back(x.is_undefined() && dflt ? *dflt : x);
    }
    return value::list(std::move(out));
  }
  if (a.empty() || !a[0].is_string()) throw template_error("map needs a filter name or attribute=");
  const std::string name = a[0].str();
  if (!has_filter(name)) throw template_error(fmt::format("no filter named '{}'", name));
  for (const auto& item : iterate(v)) {
    value_list rest(a.begin() + 1, a.end());
    kwarg_list kw = k;
    out.push_back(apply_filter(name, item, rest, kw));
  }
  return value::list(std::move(out));
}

// select / reject / selectattr / rejectattr.
value select_impl(const value& v, value_list& a, bool by_attr, bool keep_if) {
  size_t i = 0;
  std::optional<std::string> attr;
  if (by_attr) {
    if (a.empty() || !a[0].is_string()) throw template_error("selectattr needs an attribute name");
    attr = a[i++].str();
  }
  std::optional<std::string> test;
  if (i < a.size()) {
    if (!a[i].is_string()) throw template_error("the test must be named by a string");
    test = a[i++].str();
    if (!has_test(*test)) throw template_error(fmt::format("no test named '{}'", *test));
  }
  value_list out;
  for (const auto& item : iterate(v)) {
    const value x = attr ? attribute_of(item, *attr) : item;
    value_list rest(a.begin() + static_cast<std::ptrdiff_t>(i), a.end());
    const bool pass = test ? apply_test(*test, x, rest) : x.truthy();
    if (pass == keep_if) out.push_back(item);
  }
  return value::list(std::move(out));
}

value f_select(const value& v, value_list& a, kwarg_list&) {
  return select_impl(v, a, false, true);
}
value f_reject(const value& v, value_list& a, kwarg_list&) {
  return select_impl(v, a, false, false);
}
value f_selectattr(const value& v, value_list& a, kwarg_list&) {
  return select_impl(v, a, true, true);
}
value f_rejectattr(const value& v, value_list& a, kwarg_list&) {
  return select_impl(v, a, true, false);
}

value f_replace(const value& v, value_list& a, kwarg_list& k) {
  call_args args("replace", a, k, {"old", "new", "count"});
  return value(text::replace(to_str(v), args.need_str("old"), args.need_str("new"),
                             args.get_int("count", -1)));
}

value f_reverse(const value& v, value_list& a, kwarg_list& k) {
  call_args("reverse", a, k, {});
  if (v.is_string()) {
    auto cps = code_points(v.str());
    std::string out;
    for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
    return value(std::move(out));
  }
  value_list items = iterate(v);
  std::reverse(items.begin(), items.end());
  return value::list(std::move(items));
}

value f_round(const value& v, value_list& a, kwarg_list& k) {
  call_args args("round", a, k, {"precision", "method"});
  const std::int64_t p = args.get_int("precision", 0);
  const std::string method = args.get_str("method").value_or("common");
  if (!v.is_number()) throw template_error("round needs a number");
  const double scale = std::pow(10.0, static_cast<double>(p));
  double x = v.as_double() * scale;
  if (method == "common")
    x = std::nearbyint(x);
  else if (method == "ceil")
    x = std::ceil(x);
  else if (method == "floor")
    x = std::floor(x);
  else
    throw template_error("round: method must be common, ceil or floor");
  return value(x / scale);
}

value f_safe(const value& v, value_list& a, kwarg_list& k) {
  call_args("safe", a, k, {});
  return v;
}

value f_sort(const value& v, value_list& a, kwarg_list& k) {
  call_args args("sort", a, k, {"reverse", "case_sensitive", "attribute"});
  const bool cs = args.get_bool("case_sensitive", false);
  const auto attr = args.get_str("attribute");
  value_list items = iterate(v);
  auto key = [&](const value& x) { return sort_key(attr ? attribute_of(x, *attr) : x, cs); };
  // Python's sort(reverse=True) keeps equal items in their original order: one stable
  // sort with the comparison turned round.
  const bool rev = args.get_bool("reverse", false);
  std::stable_sort(items.begin(), items.end(), [&](const value& x, const value& y) {
    return rev ? less(key(y), key(x)) : less(key(x), key(y));
  });
  return value::list(std::move(items));
}

value f_string(const value& v, value_list& a, kwarg_list& k) {
  call_args("string", a, k, {});
  return value(to_str(v));
}

value f_sum(const value& v, value_list& a, kwarg_list& k) {
  call_args args("sum", a, k, {"attribute", "start"});
  const auto attr = args.get_str("attribute");
  value total = args.has("start") ? args.get("start") : value(std::int64_t{0});
  for (const auto& item : iterate(v)) {
    const value x = attr ? attribute_of(item, *attr) : item;
    if (!x.is_number() || !total.is_number()) throw template_error("sum needs numbers");
    if (x.type() == value::kind::floating || total.type() == value::kind::floating)
      total = value(total.as_double() + x.as_double());
    else
      total = value(total.as_int() + x.as_int());
  }
  return total;
}

value min_max(const value& v, value_list& a, kwarg_list& k, bool want_max) {
  call_args args(want_max ? "max" : "min", a, k, {"case_sensitive", "attribute"});
  const bool cs = args.get_bool("case_sensitive", false);
  const auto attr = args.get_str("attribute");
  value_list items = iterate(v);
  if (items.empty()) return value::undefined();
  auto key = [&](const value& x) { return sort_key(attr ? attribute_of(x, *attr) : x, cs); };
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    if (want_max ? less(key(items[best]), key(items[i])) : less(key(items[i]), key(items[best])))
      best = i;
  }
  return items[best];
}

value f_max(const value& v, value_list& a, kwarg_list& k) {
  return min_max(v, a, k, true);
}
value f_min(const value& v, value_list& a, kwarg_list& k) {
  return min_max(v, a, k, false);
}

value f_title(const value& v, value_list& a, kwarg_list& k) {
  call_args("title", a, k, {});
  return value(text::jinja_title(to_str(v)));
}

value f_tojson(const value& v, value_list& a, kwarg_list& k) {
  call_args args("tojson", a, k, {"ensure_ascii", "indent", "separators", "sort_keys"});
  if (args.get_bool("ensure_ascii", false))
    throw template_error("ensure_ascii=True is not supported");
  if (args.has("separators") && !args.get("separators").is_none())
    throw template_error("separators= is not supported");
  std::string out =
      to_json(v, static_cast<int>(args.get_int("indent", -1)), args.get_bool("sort_keys", false));
  return value(std::move(out));
}

value f_trim(const value& v, value_list& a, kwarg_list& k) {
  call_args args("trim", a, k, {"chars"});
  return value(text::strip(to_str(v), args.get_str("chars"), true, true));
}

value f_unique(const value& v, value_list& a, kwarg_list& k) {
  call_args args("unique", a, k, {"case_sensitive", "attribute"});
  const bool cs = args.get_bool("case_sensitive", false);
  const auto attr = args.get_str("attribute");
  value_list seen, out;
  for (const auto& item : iterate(v)) {
    const value key = sort_key(attr ? attribute_of(item, *attr) : item, cs);
    bool dup = false;
    for (const auto& s : seen) dup = dup || equals(s, key);
    if (dup) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return value::list(std::move(out));
}

value f_wordcount(const value& v, value_list& a, kwarg_list& k) {
  call_args("wordcount", a, k, {});
  return value(text::word_count(to_str(v)));
}

const std::map<std::string, filter_fn, std::less<>>& filters() {
  static const std::map<std::string, filter_fn, std::less<>> table{{"abs", f_abs},
                                                                   {"attr", f_attr},
                                                                   {"capitalize", f_capitalize},
                                                                   {"count", f_length},
                                                                   {"d", f_default},
                                                                   {"default", f_default},
                                                                   {"dictsort", f_dictsort},
                                                                   {"e", f_escape},
                                                                   {"escape", f_escape},
                                                                   {"first", f_first},
                                                                   {"float", f_float},
                                                                   {"forceescape", f_escape},
                                                                   {"indent", f_indent},
                                                                   {"int", f_int},
                                                                   {"items", f_items},
                                                                   {"join", f_join},
                                                                   {"last", f_last},
                                                                   {"length", f_length},
                                                                   {"list", f_list},
                                                                   {"lower", f_lower},
                                                                   {"map", f_map},
                                                                   {"max", f_max},
                                                                   {"min", f_min},
                                                                   {"reject", f_reject},
                                                                   {"rejectattr", f_rejectattr},
                                                                   {"replace", f_replace},
                                                                   {"reverse", f_reverse},
                                                                   {"round", f_round},
                                                                   {"safe", f_safe},
                                                                   {"select", f_select},
                                                                   {"selectattr", f_selectattr},
                                                                   {"sort", f_sort},
                                                                   {"string", f_string},
                                                                   {"sum", f_sum},
                                                                   {"title", f_title},
                                                                   {"tojson", f_tojson},
                                                                   {"trim", f_trim},
                                                                   {"unique", f_unique},
                                                                   {"upper", f_upper},
                                                                   {"wordcount", f_wordcount}};
  return table;
}

}  // namespace

bool has_filter(std::string_view name) {
  return filters().count(name) > 0;
}

value apply_filter(std::string_view name, const value& v, value_list& args, kwarg_list& kwargs) {
  auto it = filters().find(name);
  if (it == filters().end()) throw template_error(fmt::format("no filter named '{}'", name));
  return it->second(v, args, kwargs);
}

}  // namespace conclave::jinja
