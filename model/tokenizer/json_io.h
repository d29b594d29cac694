// JSON in and out for `conclave tokenize`: arrays of strings and of id arrays, and string
// literals written with the escaping JSON requires (other UTF-8 is kept as is).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace conclave::tokenizer {

/// Parses a JSON array of strings; anything else (or invalid UTF-8) throws
/// std::invalid_argument naming the first bad element.
std::vector<std::string> parse_json_strings(std::string_view json);

/// Parses a JSON array of arrays of integers in [0, 2^31); throws std::invalid_argument.
std::vector<std::vector<int32_t>> parse_json_id_lists(std::string_view json);

/// Appends `s` as a JSON string literal: ", \ and control characters escaped.
void append_json_string(std::string& out, std::string_view s);

}  // namespace conclave::tokenizer
