// JSON text for tool-call arguments: incremental string escaping (valid UTF-8 out, even
// for pieces of a string) and compact value serialisation with ", " and ": ".
#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <string>
#include <string_view>

namespace conclave::toolcall {

/// Appends `text` escaped as the inside of a JSON string (no quotes). Invalid UTF-8
/// bytes become U+FFFD, so every piece of a streamed string is valid JSON text.
void append_json_escaped(std::string& out, std::string_view text);

/// `text` as a quoted JSON string.
std::string json_quote(std::string_view text);

/// Appends the JSON text of `v`: objects as {"k": v, ...}, numbers in shortest form.
void append_json(std::string& out, const boost::json::value& v);

/// Number of bytes at the end of `s` that start a UTF-8 character not complete yet
/// (0 when `s` ends on a character boundary or in bytes that can never be valid).
size_t incomplete_utf8_tail(std::string_view s);

/// Length of the valid UTF-8 character at s[pos], 0 when the bytes there are not one.
size_t utf8_char_length(std::string_view s, size_t pos);

}  // namespace conclave::toolcall
