// Jinja's tests, the global functions of Hugging Face's chat-template environment, the
// str/dict/list methods templates call, and HF's `tojson` (see builtins.h).
#include "model/jinja/builtins.h"

#include <spdlog/fmt/fmt.h>

#include <cmath>
#include <ctime>
#include <map>
#include <set>

#include "model/jinja/args.h"
#include "model/jinja/text_ops.h"
#include "model/pytext/python_format.h"

namespace conclave::jinja {
namespace {

// ---- tests ----

bool test_arg_check(std::string_view name, const value_list& args, size_t n) {
  if (args.size() != n)
    throw template_error(fmt::format("test '{}' takes {} argument(s)", name, n));
  return true;
}

bool run_test(std::string_view name, const value& v, value_list& args) {
  using k = value::kind;
  auto arity = [&](size_t n) { return test_arg_check(name, args, n); };
  if (name == "defined") return arity(0) && !v.is_undefined();
  if (name == "undefined") return arity(0) && v.is_undefined();
  if (name == "none") return arity(0) && v.is_none();
  if (name == "boolean") return arity(0) && v.type() == k::boolean;
  if (name == "true") return arity(0) && v.type() == k::boolean && v.as_bool();
  if (name == "false") return arity(0) && v.type() == k::boolean && !v.as_bool();
  if (name == "integer") return arity(0) && v.type() == k::integer;
  if (name == "float") return arity(0) && v.type() == k::floating;
  if (name == "number") return arity(0) && v.is_number();
  if (name == "string") return arity(0) && v.is_string();
  if (name == "mapping") return arity(0) && v.type() == k::dict;
  if (name == "callable") return arity(0) && v.type() == k::callable;
  // Undefined iterates (empty) and has a length, so it is iterable and a sequence.
  if (name == "iterable")
    return arity(0) && (v.is_undefined() || v.is_string() || v.is_list() || v.is_dict());
  if (name == "sequence")
    return arity(0) && (v.is_undefined() || v.is_string() || v.is_list() || v.type() == k::dict);
  if (name == "odd" || name == "even") {
    arity(0);
    if (!v.is_number() || v.type() == k::floating) throw template_error("odd/even need an integer");
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    arity(1);
    if (!args[0].is_number() || args[0].as_int() == 0)
      throw template_error("divisibleby needs a non-zero number");
    return v.as_int() % args[0].as_int() == 0;
  }
  if (name == "lower") return arity(0) && v.is_string() && text::lower(v.str()) == v.str();
  if (name == "upper") return arity(0) && v.is_string() && text::upper(v.str()) == v.str();
  if (name == "sameas") {
    arity(1);
    const value& o = args[0];
    if (v.type() != o.type()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.type() == k::boolean) return v.as_bool() == o.as_bool();
    if (v.type() == k::integer) return v.as_int() == o.as_int();
    return equals(v, o) && (v.is_list()   ? &v.list_ref() == &o.list_ref()
                            : v.is_dict() ? &v.dict_ref() == &o.dict_ref()
                                          : true);
  }
  if (name == "in") return arity(1) && contains(args[0], v);
  if (name == "eq" || name == "equalto" || name == "==") return arity(1) && equals(v, args[0]);
  if (name == "ne" || name == "!=") return arity(1) && !equals(v, args[0]);
  if (name == "lt" || name == "lessthan" || name == "<") return arity(1) && less(v, args[0]);
  if (name == "gt" || name == "greaterthan" || name == ">") return arity(1) && less(args[0], v);
  if (name == "le" || name == "<=") return arity(1) && !less(args[0], v);
  if (name == "ge" || name == ">=") return arity(1) && !less(v, args[0]);
  throw template_error(fmt::format("no test named '{}'", name));
}

const std::set<std::string, std::less<>>& test_names() {
  static const std::set<std::string, std::less<>> names{
      "defined",     "undefined", "none",   "boolean",  "true",        "false",
      "integer",     "float",     "number", "string",   "mapping",     "callable",
      "iterable",    "sequence",  "odd",    "even",     "divisibleby", "lower",
      "upper",       "sameas",    "in",     "eq",       "equalto",     "==",
      "ne",          "!=",        "lt",     "lessthan", "<",           "gt",
      "greaterthan", ">",         "le",     "<=",       "ge",          ">="};
  return names;
}

// ---- globals ----

value g_range(value_list& a, kwarg_list& k) {
  if (!k.empty() || a.empty() || a.size() > 3)
    throw template_error("range() takes 1 to 3 integers");
  for (const auto& x : a)
    if (x.type() != value::kind::integer && x.type() != value::kind::boolean)
      throw template_error("range() takes integers");
  const std::int64_t start = a.size() == 1 ? 0 : a[0].as_int();
  const std::int64_t stop = a.size() == 1 ? a[0].as_int() : a[1].as_int();
  const std::int64_t step = a.size() == 3 ? a[2].as_int() : 1;
  if (step == 0) throw template_error("range() step must not be zero");
  value_list out;
  for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (out.size() >= 100000) throw template_error("range() too large");
    out.emplace_back(i);
  }
  return value::list(std::move(out));
}

std::vector<std::pair<std::string, value>> keyword_items(value_list& a, kwarg_list& k,
                                                         std::string_view fn) {
  std::vector<std::pair<std::string, value>> items;
  if (a.size() > 1)
    throw template_error(fmt::format("{}() takes at most one positional argument", fn));
  if (a.size() == 1) {
    if (a[0].type() != value::kind::dict)
      throw template_error(fmt::format("{}() needs a mapping", fn));
    items = a[0].dict_ref().items;
  }
  dict_data d{std::move(items)};
  for (auto& [key, v] : k) d.set(key, v);
  return std::move(d.items);
}

value g_namespace(value_list& a, kwarg_list& k) {
  return value::make_namespace(keyword_items(a, k, "namespace"));
}

value g_dict(value_list& a, kwarg_list& k) {
  return value::dict(keyword_items(a, k, "dict"));
}

value g_raise_exception(value_list& a, kwarg_list& k) {
  call_args args("raise_exception", a, k, {"message"});
  throw raised_error(to_str(args.get("message")));
}

value g_strftime_now(value_list& a, kwarg_list& k) {
  call_args args("strftime_now", a, k, {"format"});
  const std::string f = args.need_str("format");
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[512];
  const size_t n = std::strftime(buf, sizeof buf, f.c_str(), &tm);
  return value(std::string(buf, n));
}

using global_fn = value (*)(value_list&, kwarg_list&);

const std::map<std::string, global_fn, std::less<>>& globals() {
  static const std::map<std::string, global_fn, std::less<>> table{
      {"range", g_range},
      {"namespace", g_namespace},
      {"dict", g_dict},
      {"raise_exception", g_raise_exception},
      {"strftime_now", g_strftime_now}};
  return table;
}

// ---- methods ----

const std::set<std::string, std::less<>>& string_methods() {
  static const std::set<std::string, std::less<>> names{
      "capitalize", "count",   "endswith",   "find",       "rfind",   "isalnum",
      "isalpha",    "isdigit", "islower",    "isupper",    "isspace", "join",
      "lower",      "upper",   "lstrip",     "rstrip",     "strip",   "replace",
      "split",      "rsplit",  "splitlines", "startswith", "title"};
  return names;
}

const std::set<std::string, std::less<>>& dict_methods() {
  static const std::set<std::string, std::less<>> names{"items", "keys", "values", "get"};
  return names;
}

const std::set<std::string, std::less<>>& list_methods() {
  static const std::set<std::string, std::less<>> names{"count", "index"};
  return names;
}

bool affix_match(const std::string& s, const value& affix, bool prefix) {
  auto one = [&](const value& a) {
    const std::string& x = need_string(a, prefix ? "startswith" : "endswith");
    return prefix ? s.compare(0, x.size(), x) == 0
                  : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_list() && affix.list_ref().tuple) {
    for (const auto& a : affix.list_ref().items)
      if (one(a)) return true;
    return false;
  }
  return one(affix);
}

value string_method(const std::string& s, const std::string& name, value_list& a, kwarg_list& k) {
  if (name == "startswith" || name == "endswith") {
    call_args args(name, a, k, {"affix"});
    return value(affix_match(s, args.get("affix"), name == "startswith"));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    call_args args(name, a, k, {"chars"});
    return value(text::strip(s, args.get_str("chars"), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    call_args args(name, a, k, {"sep", "maxsplit"});
    value_list out;
    for (auto& p :
         text::split(s, args.get_str("sep"), args.get_int("maxsplit", -1), name == "rsplit"))
      out.emplace_back(std::move(p));
    return value::list(std::move(out));
  }
  if (name == "splitlines") {
    call_args(name, a, k, {});
    value_list out;
    for (auto& p : text::splitlines(s)) out.emplace_back(std::move(p));
    return value::list(std::move(out));
  }
  if (name == "replace") {
    call_args args(name, a, k, {"old", "new", "count"});
    return value(
        text::replace(s, args.need_str("old"), args.need_str("new"), args.get_int("count", -1)));
  }
  if (name == "find" || name == "rfind") {
    call_args args(name, a, k, {"sub"});
    return value(text::find(s, args.need_str("sub"), name == "rfind"));
  }
  if (name == "count") {
    call_args args(name, a, k, {"sub"});
    return value(text::count(s, args.need_str("sub")));
  }
  if (name == "join") {
    call_args args(name, a, k, {"iterable"});
    std::string out;
    bool first = true;
    for (const auto& item : iterate(args.get("iterable"))) {
      if (!first) out += s;
      first = false;
      out += need_string(item, "str.join");
    }
    return value(std::move(out));
  }
  call_args(name, a, k, {});
  if (name == "lower") return value(text::lower(s));
  if (name == "upper") return value(text::upper(s));
  if (name == "capitalize") return value(text::capitalize(s));
  if (name == "title") return value(text::title(s));
  return value(text::is_all(s, name));  // isalpha, isdigit, ...
}

value dict_method(const value& d, const std::string& name, value_list& a, kwarg_list& k) {
  if (name == "get") {
    call_args args(name, a, k, {"key", "default"});
    value key = args.get("key");
    if (key.is_string())
      if (const value* v = d.dict_ref().find(key.str())) return *v;
    value dflt = args.get("default");
    return dflt.is_undefined() ? value::none() : dflt;
  }
  call_args(name, a, k, {});
  value_list out;
  for (const auto& [key, v] : d.dict_ref().items) {
    if (name == "items")
      out.push_back(value::list({value(key), v}, true));
    else if (name == "keys")
      out.emplace_back(key);
    else
      out.push_back(v);
  }
  return value::list(std::move(out));
}

value list_method(const value& l, const std::string& name, value_list& a, kwarg_list& k) {
  call_args args(name, a, k, {"x"});
  const value x = args.get("x");
  const auto& items = l.list_ref().items;
  std::int64_t n = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!equals(items[i], x)) continue;
    if (name == "index") return value(static_cast<std::int64_t>(i));
    ++n;
  }
  if (name == "index") throw template_error(fmt::format("{} is not in list", to_repr(x)));
  return value(n);
}

// ---- tojson ----

void json_into(std::string& out, const value& v, int indent, int level, bool sort_keys) {
  auto newline = [&](int lvl) {
    out += '\n';
    out.append(static_cast<size_t>(indent * lvl), ' ');
  };
  switch (v.type()) {
    case value::kind::none:
      out += "null";
      return;
    case value::kind::boolean:
      out += v.as_bool() ? "true" : "false";
      return;
    case value::kind::integer:
      out += std::to_string(v.as_int());
      return;
    case value::kind::floating: {
      const double d = v.as_double();
      out += std::isnan(d)   ? "NaN"
             : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity")
                             : pytext::python_float_repr(d);
      return;
    }
    case value::kind::string:
      text::append_json_string(out, v.str(), false);
      return;
    case value::kind::list: {
      const auto& items = v.list_ref().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += indent >= 0 ? "," : ", ";
        if (indent >= 0) newline(level + 1);
        json_into(out, items[i], indent, level + 1, sort_keys);
      }
      if (indent >= 0) newline(level);
      out += ']';
      return;
    }
    case value::kind::dict: {
      auto items = v.dict_ref().items;
      if (items.empty()) {
        out += "{}";
        return;
      }
      if (sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](const auto& x, const auto& y) { return x.first < y.first; });
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += indent >= 0 ? "," : ", ";
        if (indent >= 0) newline(level + 1);
        text::append_json_string(out, items[i].first, false);
        out += ": ";
        json_into(out, items[i].second, indent, level + 1, sort_keys);
      }
      if (indent >= 0) newline(level);
      out += '}';
      return;
    }
    default:
      throw template_error(
          fmt::format("Object of type {} is not JSON serializable", v.type_name()));
  }
}

}  // namespace

bool has_test(std::string_view name) {
  return test_names().count(name) > 0;
}

bool apply_test(std::string_view name, const value& v, value_list& args) {
  return run_test(name, v, args);
}

bool has_global(std::string_view name) {
  return globals().count(name) > 0;
}

value global_function(std::string_view name) {
  auto it = globals().find(name);
  if (it == globals().end()) return value::undefined(std::string(name));
  return value::function(std::string(name), it->second);
}

bool has_method(std::string_view name) {
  return string_methods().count(name) || dict_methods().count(name) || list_methods().count(name) ||
         name == "cycle";
}

value bound_method(const value& obj, std::string_view name) {
  const std::string n(name);
  if (obj.is_string() && string_methods().count(name)) {
    std::string s = obj.str();
    return value::function(
        n, [s, n](value_list& a, kwarg_list& k) { return string_method(s, n, a, k); });
  }
  if (obj.type() == value::kind::dict && dict_methods().count(name))
    return value::function(
        n, [obj, n](value_list& a, kwarg_list& k) { return dict_method(obj, n, a, k); });
  if (obj.is_list() && list_methods().count(name))
    return value::function(
        n, [obj, n](value_list& a, kwarg_list& k) { return list_method(obj, n, a, k); });
  return value::undefined(n);
}

std::string to_json(const value& v, int indent, bool sort_keys) {
  std::string out;
  json_into(out, v, indent, 0, sort_keys);
  return out;
}

}  // namespace conclave::jinja
