// Python-compatible text forms of JSON values: the Qwen3-Coder template is Jinja run by
// Python, so schemas and tool arguments reach the prompt as Python prints them.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>

namespace conclave::pytext {

/// Python's `repr(float)` (also `str(float)`): the shortest digits that round-trip, in
/// fixed notation when the decimal exponent is in [-4, 16) (`1.0`, `0.0001`,
/// `123456789.125`), otherwise scientific with a signed exponent of at least two digits
/// (`1e-05`, `1e+16`, `1.5e-07`); `-0.0`, `inf`, `-inf`, `nan`.
std::string python_float_repr(double x);

/// `json.dumps(x, ensure_ascii=False)`: separators `", "` and `": "`, key order kept,
/// non-ASCII text raw, `"`, `\` and control characters escaped (`\n`, `\u001b`), floats
/// as python_float_repr (`Infinity`, `-Infinity`, `NaN` for non-finite ones).
std::string to_python_json(const boost::json::value& v);

/// Python's `str(x)` for the value json.loads would give: strings raw, `True`, `False`,
/// `None`, integers as integers, floats as python_float_repr; arrays and objects as
/// Python's repr of a list or dict (`['string', 'null']`, `{'a': 1}`). This is what
/// Jinja's `| string` filter prints.
std::string to_python_scalar(const boost::json::value& v);

/// Python's `repr(str)`: single quotes unless the text holds `'` and no `"`; `\\`, the
/// quote, `\t`, `\n`, `\r` escaped, other non-printable code points as `\xNN`, `\uNNNN`
/// or `\UNNNNNNNN` (printability from utf8proc's Unicode categories, as Python's
/// `str.isprintable`).
std::string python_str_repr(std::string_view s);

/// Python's `str.strip()` (Jinja's `trim`): removes Unicode whitespace (the code points
/// for which `str.isspace()` is true) from both ends of UTF-8 text.
std::string_view python_strip(std::string_view s);

}  // namespace conclave::pytext
