// JSON helpers for `conclave tokenize` (simdjson validates UTF-8 and escapes on input).
#include "model/tokenizer/json_io.h"

#include <simdjson.h>
#include <spdlog/fmt/fmt.h>

#include <climits>
#include <stdexcept>

namespace conclave::tokenizer {
namespace {

simdjson::dom::array parse_array(simdjson::dom::parser& parser, const simdjson::padded_string& text,
                                 std::string_view expected) {
  simdjson::dom::element doc;
  if (auto err = parser.parse(text).get(doc); err) {
    throw std::invalid_argument(fmt::format("input is not JSON: {}", simdjson::error_message(err)));
  }
  simdjson::dom::array a;
  if (doc.get(a)) throw std::invalid_argument(fmt::format("input must be {}", expected));
  return a;
}

}  // namespace

std::vector<std::string> parse_json_strings(std::string_view json) {
  simdjson::dom::parser parser;
  const simdjson::padded_string text(json);
  std::vector<std::string> out;
  size_t i = 0;
  for (auto e : parse_array(parser, text, "a JSON array of strings")) {
    std::string_view s;
    if (e.get(s)) throw std::invalid_argument(fmt::format("input[{}] is not a string", i));
    out.emplace_back(s);
    ++i;
  }
  return out;
}

std::vector<std::vector<int32_t>> parse_json_id_lists(std::string_view json) {
  simdjson::dom::parser parser;
  const simdjson::padded_string text(json);
  std::vector<std::vector<int32_t>> out;
  size_t i = 0;
  for (auto e : parse_array(parser, text, "a JSON array of arrays of token ids")) {
    simdjson::dom::array ids;
    if (e.get(ids))
      throw std::invalid_argument(fmt::format("input[{}] is not an array of token ids", i));
    auto& row = out.emplace_back();
    size_t j = 0;
    for (auto v : ids) {
      int64_t id = 0;
      if (v.get(id) || id < 0 || id > INT32_MAX) {
        throw std::invalid_argument(
            fmt::format("input[{}][{}] is not a token id (a non-negative integer)", i, j));
      }
      row.push_back(static_cast<int32_t>(id));
      ++j;
    }
    ++i;
  }
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace conclave::tokenizer
