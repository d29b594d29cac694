// The values a Jinja chat template computes with, with Python's semantics where a
// template can see them: str() and repr() text, truthiness, equality across int, float
// and bool, ordering, and Jinja's Undefined (prints as "", is false, iterates empty; any
// other use is an error).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace conclave::jinja {

/// A template that cannot be compiled or rendered. `what()` is one line and names the
/// template line when known ("line 12: unknown filter 'wordwrap'").
class template_error : public std::runtime_error {
 public:
  explicit template_error(const std::string& what) : std::runtime_error(what) {}
};

/// `raise_exception(message)` called by the template: the message is the template's, meant
/// for the client (a bad conversation), not a fault of the template.
class raised_error : public template_error {
 public:
  explicit raised_error(const std::string& message) : template_error(message) {}
};

class value;
using value_list = std::vector<value>;
using kwarg_list = std::vector<std::pair<std::string, value>>;

struct list_data {
  value_list items;
  bool tuple = false;  // a tuple prints as (a, b) and never equals a list
};

struct dict_data {
  std::vector<std::pair<std::string, value>> items;  // insertion order, as Python's dict
  const value* find(std::string_view key) const;
  void set(std::string key, value v);
};

/// A function the template can call: a macro, a built-in global or a bound method.
struct callable_data {
  std::string name;
  std::function<value(value_list&, kwarg_list&)> fn;
};

class value {
 public:
  enum class kind : std::uint8_t {
    undefined,
    none,
    boolean,
    integer,
    floating,
    string,
    list,
    dict,
    ns,  // namespace(): the one mutable object, shared by reference
    callable
  };

  value() = default;  // undefined
  static value undefined(std::string name = {});
  static value none();
  value(bool b);                                         // NOLINT(google-explicit-constructor)
  value(int v) : value(static_cast<std::int64_t>(v)) {}  // NOLINT
  value(std::int64_t v);                                 // NOLINT
  value(double v);                                       // NOLINT
  value(std::string s);                                  // NOLINT
  value(const char* s) : value(std::string(s)) {}        // NOLINT
  static value list(value_list items, bool tuple = false);
  static value dict(std::vector<std::pair<std::string, value>> items = {});
  static value make_namespace(std::vector<std::pair<std::string, value>> items = {});
  static value function(std::string name, std::function<value(value_list&, kwarg_list&)> fn);

  kind type() const { return k_; }
  bool is_undefined() const { return k_ == kind::undefined; }
  bool is_none() const { return k_ == kind::none; }
  bool is_string() const { return k_ == kind::string; }
  bool is_number() const {
    return k_ == kind::integer || k_ == kind::floating || k_ == kind::boolean;
  }
  bool is_list() const { return k_ == kind::list; }
  bool is_dict() const { return k_ == kind::dict || k_ == kind::ns; }

  bool as_bool() const { return b_; }
  std::int64_t as_int() const;  // bool and integer
  double as_double() const;     // any number
  const std::string& str() const { return s_; }
  const list_data& list_ref() const { return *list_; }
  const dict_data& dict_ref() const { return *dict_; }
  dict_data& namespace_ref() const { return *dict_; }  // kind::ns only
  const callable_data& callable_ref() const { return *fn_; }
  /// The variable name an undefined value came from ("" when unknown).
  const std::string& undefined_name() const { return s_; }

  /// Python's bool(x).
  bool truthy() const;
  /// Python's type name ("str", "int", "NoneType", ...), for error messages.
  std::string type_name() const;

 private:
  kind k_ = kind::undefined;
  bool b_ = false;
  std::int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<list_data> list_;
  std::shared_ptr<dict_data> dict_;
  std::shared_ptr<callable_data> fn_;
};

/// Python's str(x) (Jinja prints this); undefined prints as "".
std::string to_str(const value& v);
/// Python's repr(x): what str() of a list or dict shows of its items.
std::string to_repr(const value& v);
/// Python's `==` (1 == 1.0 == True; a tuple never equals a list; undefined equals only
/// undefined).
bool equals(const value& a, const value& b);
/// Python's `<` between numbers, strings (code point order) or sequences; other pairs
/// throw template_error as Python raises TypeError.
bool less(const value& a, const value& b);
/// Python's `x in container` for a string, list, tuple, dict (keys) or undefined (empty).
bool contains(const value& container, const value& item);
/// The items `for x in v` visits: a list's items, a dict's keys, a string's characters
/// (code points); undefined gives none; anything else throws.
value_list iterate(const value& v);
/// Python's len(): code points of a string, items of a list or dict; 0 for undefined.
std::int64_t length(const value& v);

/// UTF-8 text split into code points (each a std::string of 1-4 bytes).
std::vector<std::string> code_points(std::string_view s);

}  // namespace conclave::jinja
