// The filters, tests, global functions and methods a chat template may use, with the
// behaviour of jinja2 3.1 and of Hugging Face's chat-template environment (its `tojson`
// keeps key order and does not escape HTML; `raise_exception`, `strftime_now`).
#pragma once

#include <string_view>

#include "model/jinja/value.h"

namespace conclave::jinja {

bool has_filter(std::string_view name);
bool has_test(std::string_view name);
bool has_global(std::string_view name);
/// A method some built-in type has (`startswith`, `items`, `get`, ...): a call of any other
/// attribute is refused when the template is compiled.
bool has_method(std::string_view name);

value apply_filter(std::string_view name, const value& v, value_list& args, kwarg_list& kwargs);
bool apply_test(std::string_view name, const value& v, value_list& args);
/// The global function `name` (range, namespace, dict, raise_exception, strftime_now).
value global_function(std::string_view name);
/// `obj.name` when obj has such a method (a bound callable), else undefined.
value bound_method(const value& obj, std::string_view name);

/// json.dumps(v) as Hugging Face's `tojson` filter: key order kept, non-ASCII raw,
/// separators ", " and ": " (or "," and ": " with an indent); `indent` < 0: none.
std::string to_json(const value& v, int indent = -1, bool sort_keys = false);

}  // namespace conclave::jinja
