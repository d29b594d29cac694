// JSON text helpers for the tool-call parser (see json_text.h).
#include "model/toolcall/json_text.h"

#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>
#include <cmath>

namespace conclave::toolcall {
namespace {

bool is_continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

// Expected length from the lead byte (0: not a lead byte), and the valid range of the
// second byte (which rules out overlongs, surrogates and values past U+10FFFF).
struct lead_info {
  size_t length;
  unsigned char lo, hi;
};

lead_info lead(unsigned char c) {
  if (c < 0x80) return {1, 0, 0};
  if (c >= 0xC2 && c <= 0xDF) return {2, 0x80, 0xBF};
  if (c == 0xE0) return {3, 0xA0, 0xBF};
  if (c == 0xED) return {3, 0x80, 0x9F};
  if (c >= 0xE1 && c <= 0xEF) return {3, 0x80, 0xBF};
  if (c == 0xF0) return {4, 0x90, 0xBF};
  if (c >= 0xF1 && c <= 0xF3) return {4, 0x80, 0xBF};
  if (c == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// How many bytes from pos are a consistent (maybe unfinished) start of a character.
size_t valid_prefix(std::string_view s, size_t pos, const lead_info& li) {
  size_t n = 1;
  while (n < li.length && pos + n < s.size()) {
    const auto c = static_cast<unsigned char>(s[pos + n]);
    const bool ok = n == 1 ? (c >= li.lo && c <= li.hi) : is_continuation(c);
    if (!ok) break;
    ++n;
  }
  return n;
}

}  // namespace

size_t utf8_char_length(std::string_view s, size_t pos) {
  const lead_info li = lead(static_cast<unsigned char>(s[pos]));
  if (li.length <= 1) return li.length;
  return valid_prefix(s, pos, li) == li.length ? li.length : 0;
}

size_t incomplete_utf8_tail(std::string_view s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const size_t pos = s.size() - back;
    const auto c = static_cast<unsigned char>(s[pos]);
    if (is_continuation(c)) continue;
    const lead_info li = lead(c);
    if (li.length <= back) return 0;  // ASCII, invalid, or complete
    return valid_prefix(s, pos, li) == back ? back : 0;
  }
  return 0;
}

void append_json_escaped(std::string& out, std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const size_t n = utf8_char_length(text, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
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
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
}

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  append_json_escaped(out, text);
  out += '"';
  return out;
}

void append_json(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      out += "null";
      break;
    case boost::json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      break;
    case boost::json::kind::int64:
      out += fmt::format("{}", v.get_int64());
      break;
    case boost::json::kind::uint64:
      out += fmt::format("{}", v.get_uint64());
      break;
    case boost::json::kind::double_: {
      const double d = v.get_double();
      // JSON has no NaN/Infinity; shortest round-trip form otherwise ("0.1", "1e+20").
      out += std::isfinite(d) ? fmt::format("{}", d) : "null";
      break;
    }
    case boost::json::kind::string:
      out += '"';
      append_json_escaped(out, v.get_string());
      out += '"';
      break;
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out += ", ";
        first = false;
        append_json(out, item);
      }
      out += ']';
      break;
    }
    case boost::json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ", ";
        first = false;
        out += json_quote(kv.key());
        out += ": ";
        append_json(out, kv.value());
      }
      out += '}';
      break;
    }
  }
}

}  // namespace conclave::toolcall
