// Jinja values with Python's semantics (see value.h).
#include "model/jinja/value.h"

#include <spdlog/fmt/fmt.h>

#include "model/pytext/python_format.h"

namespace conclave::jinja {

const value* dict_data::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void dict_data::set(std::string key, value v) {
  for (auto& [k, old] : items) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(v));
}

value value::undefined(std::string name) {
  value v;
  v.s_ = std::move(name);
  return v;
}

value value::none() {
  value v;
  v.k_ = kind::none;
  return v;
}

value::value(bool b) : k_(kind::boolean), b_(b), i_(b ? 1 : 0) {}
value::value(std::int64_t v) : k_(kind::integer), i_(v) {}
value::value(double v) : k_(kind::floating), f_(v) {}
value::value(std::string s) : k_(kind::string), s_(std::move(s)) {}

value value::list(value_list items, bool tuple) {
  value v;
  v.k_ = kind::list;
  v.list_ = std::make_shared<list_data>(list_data{std::move(items), tuple});
  return v;
}

value value::dict(std::vector<std::pair<std::string, value>> items) {
  value v;
  v.k_ = kind::dict;
  v.dict_ = std::make_shared<dict_data>(dict_data{std::move(items)});
  return v;
}

value value::make_namespace(std::vector<std::pair<std::string, value>> items) {
  value v = dict(std::move(items));
  v.k_ = kind::ns;
  return v;
}

value value::function(std::string name, std::function<value(value_list&, kwarg_list&)> fn) {
  value v;
  v.k_ = kind::callable;
  v.fn_ = std::make_shared<callable_data>(callable_data{std::move(name), std::move(fn)});
  return v;
}

std::int64_t value::as_int() const {
  return k_ == kind::floating ? static_cast<std::int64_t>(f_) : i_;
}

double value::as_double() const {
  return k_ == kind::floating ? f_ : static_cast<double>(i_);
}

bool value::truthy() const {
  switch (k_) {
    case kind::undefined:
    case kind::none:
      return false;
    case kind::boolean:
      return b_;
    case kind::integer:
      return i_ != 0;
    case kind::floating:
      return f_ != 0;
    case kind::string:
      return !s_.empty();
    case kind::list:
      return !list_->items.empty();
    case kind::dict:
      return !dict_->items.empty();
    case kind::ns:
    case kind::callable:
      return true;
  }
  return false;
}

std::string value::type_name() const {
  switch (k_) {
    case kind::undefined:
      return "Undefined";
    case kind::none:
      return "NoneType";
    case kind::boolean:
      return "bool";
    case kind::integer:
      return "int";
    case kind::floating:
      return "float";
    case kind::string:
      return "str";
    case kind::list:
      return list_->tuple ? "tuple" : "list";
    case kind::dict:
      return "dict";
    case kind::ns:
      return "Namespace";
    case kind::callable:
      return "function";
  }
  return "object";
}

namespace {

std::string sequence_repr(const list_data& l) {
  std::string out(1, l.tuple ? '(' : '[');
  for (size_t i = 0; i < l.items.size(); ++i) {
    if (i) out += ", ";
    out += to_repr(l.items[i]);
  }
  if (l.tuple && l.items.size() == 1) out += ',';
  out += l.tuple ? ')' : ']';
  return out;
}

std::string dict_repr(const dict_data& d) {
  std::string out = "{";
  for (size_t i = 0; i < d.items.size(); ++i) {
    if (i) out += ", ";
    out += pytext::python_str_repr(d.items[i].first);
    out += ": ";
    out += to_repr(d.items[i].second);
  }
  return out + "}";
}

}  // namespace

std::string to_str(const value& v) {
  switch (v.type()) {
    case value::kind::undefined:
      return {};
    case value::kind::string:
      return v.str();
    default:
      return to_repr(v);
  }
}

std::string to_repr(const value& v) {
  switch (v.type()) {
    case value::kind::undefined:
      return "Undefined";
    case value::kind::none:
      return "None";
    case value::kind::boolean:
      return v.as_bool() ? "True" : "False";
    case value::kind::integer:
      return std::to_string(v.as_int());
    case value::kind::floating:
      return pytext::python_float_repr(v.as_double());
    case value::kind::string:
      return pytext::python_str_repr(v.str());
    case value::kind::list:
      return sequence_repr(v.list_ref());
    case value::kind::dict:
      return dict_repr(v.dict_ref());
    case value::kind::ns:
      return "<Namespace " + dict_repr(v.dict_ref()) + ">";
    case value::kind::callable:
      return "<function " + v.callable_ref().name + ">";
  }
  return {};
}

bool equals(const value& a, const value& b) {
  using k = value::kind;
  if (a.is_number() && b.is_number()) {
    if (a.type() == k::floating || b.type() == k::floating) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case k::undefined:
    case k::none:
      return true;
    case k::string:
      return a.str() == b.str();
    case k::list: {
      const auto& x = a.list_ref();
      const auto& y = b.list_ref();
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!equals(x.items[i], y.items[i])) return false;
      return true;
    }
    case k::dict: {
      const auto& x = a.dict_ref();
      const auto& y = b.dict_ref();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [key, val] : x.items) {
        const value* other = y.find(key);
        if (!other || !equals(val, *other)) return false;
      }
      return true;
    }
    case k::ns:
      return &a.namespace_ref() == &b.namespace_ref();
    case k::callable:
      return &a.callable_ref() == &b.callable_ref();
    default:
      return false;
  }
}

bool less(const value& a, const value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.type() == value::kind::floating || b.type() == value::kind::floating)
      return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8: code point order
  if (a.is_list() && b.is_list() && a.list_ref().tuple == b.list_ref().tuple) {
    const auto& x = a.list_ref().items;
    const auto& y = b.list_ref().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  throw template_error(fmt::format("'<' not supported between instances of '{}' and '{}'",
                                   a.type_name(), b.type_name()));
}

bool contains(const value& container, const value& item) {
  switch (container.type()) {
    case value::kind::undefined:
      return false;
    case value::kind::string:
      if (!item.is_string())
        throw template_error(
            fmt::format("'in <string>' requires string as left operand, not {}", item.type_name()));
      return container.str().find(item.str()) != std::string::npos;
    case value::kind::list:
      for (const auto& x : container.list_ref().items)
        if (equals(x, item)) return true;
      return false;
    case value::kind::dict:
    case value::kind::ns:
      return item.is_string() && container.dict_ref().find(item.str()) != nullptr;
    default:
      throw template_error(
          fmt::format("argument of type '{}' is not iterable", container.type_name()));
  }
}

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = b < 0x80             ? 1
                 : (b & 0xE0) == 0xC0 ? 2
                 : (b & 0xF0) == 0xE0 ? 3
                 : (b & 0xF8) == 0xF0 ? 4
                                      : 1;
    if (i + len > s.size()) len = 1;
    out.emplace_back(s.substr(i, len));
    i += len;
  }
  return out;
}

value_list iterate(const value& v) {
  switch (v.type()) {
    case value::kind::undefined:
      return {};
    case value::kind::list:
      return v.list_ref().items;
    case value::kind::dict:
    case value::kind::ns: {
      value_list keys;
      for (const auto& kv : v.dict_ref().items) keys.emplace_back(kv.first);
      return keys;
    }
    case value::kind::string: {
      value_list chars;
      for (auto& c : code_points(v.str())) chars.emplace_back(std::move(c));
      return chars;
    }
    default:
      throw template_error(fmt::format("'{}' object is not iterable", v.type_name()));
  }
}

std::int64_t length(const value& v) {
  switch (v.type()) {
    case value::kind::undefined:
      return 0;
    case value::kind::string: {
      std::int64_t n = 0;
      for (char c : v.str()) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
      return n;
    }
    case value::kind::list:
      return static_cast<std::int64_t>(v.list_ref().items.size());
    case value::kind::dict:
    case value::kind::ns:
      return static_cast<std::int64_t>(v.dict_ref().items.size());
    default:
      throw template_error(fmt::format("object of type '{}' has no len()", v.type_name()));
  }
}

}  // namespace conclave::jinja
