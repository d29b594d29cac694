// Reading a built-in's arguments the way Python binds them: by position or by keyword,
// with defaults, and an error for anything left over. Internal to model/jinja/.
#pragma once

#include <spdlog/fmt/fmt.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/jinja/value.h"

namespace conclave::jinja {

class call_args {
 public:
  /// `names`: the parameters in order (after the value a filter or method acts on).
  call_args(std::string_view fn, value_list& pos, kwarg_list& kw,
            std::initializer_list<std::string_view> names)
      : fn_(fn), pos_(pos), kw_(kw), names_(names) {
    if (pos_.size() > names_.size())
      throw template_error(fmt::format("{}() takes at most {} argument(s) ({} given)", fn_,
                                       names_.size(), pos_.size()));
    for (const auto& [k, v] : kw_) {
      bool known = false;
      for (auto n : names_) known = known || n == k;
      if (!known)
        throw template_error(fmt::format("{}() got an unexpected keyword argument '{}'", fn_, k));
    }
  }

  /// The argument `name` (absent: undefined).
  value get(std::string_view name) const {
    size_t i = 0;
    for (auto n : names_) {
      if (n == name) break;
      ++i;
    }
    if (i < pos_.size()) return pos_[i];
    for (const auto& [k, v] : kw_)
      if (k == name) return v;
    return value::undefined(std::string(name));
  }
  bool has(std::string_view name) const { return !get(name).is_undefined(); }

  std::int64_t get_int(std::string_view name, std::int64_t dflt) const {
    value v = get(name);
    if (v.is_undefined() || v.is_none()) return dflt;
    if (v.type() != value::kind::integer && v.type() != value::kind::boolean)
      throw template_error(fmt::format("{}(): {} must be an integer", fn_, name));
    return v.as_int();
  }
  bool get_bool(std::string_view name, bool dflt) const {
    value v = get(name);
    return v.is_undefined() ? dflt : v.truthy();
  }
  std::optional<std::string> get_str(std::string_view name) const {
    value v = get(name);
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_string()) throw template_error(fmt::format("{}(): {} must be a string", fn_, name));
    return v.str();
  }
  std::string need_str(std::string_view name) const {
    auto s = get_str(name);
    if (!s) throw template_error(fmt::format("{}() missing argument '{}'", fn_, name));
    return *s;
  }

 private:
  std::string_view fn_;
  value_list& pos_;
  kwarg_list& kw_;
  std::vector<std::string_view> names_;  // copied: an initializer_list's array would dangle
};

/// The string a method is called on, or an error naming the method.
inline const std::string& need_string(const value& v, std::string_view what) {
  if (!v.is_string())
    throw template_error(fmt::format("{} needs a string, got '{}'", what, v.type_name()));
  return v.str();
}

}  // namespace conclave::jinja
