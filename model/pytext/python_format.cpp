// Python-compatible text forms of JSON values (see python_format.h): float repr,
// json.dumps, str()/repr() and str.strip().
#include "model/pytext/python_format.h"

#include <utf8proc.h>

#include <spdlog/fmt/fmt.h>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <stdexcept>

namespace conclave::pytext {
namespace {

// Decodes the code point at s[i], advancing i; -1 (and one byte) for a malformed
// sequence, which callers escape byte-wise instead of guessing.
int32_t next_code_point(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  int32_t cp = 0;
  if (b0 < 0x80) {
    ++i;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07;
  } else {
    ++i;
    return -1;
  }
  if (i + len > s.size()) {
    ++i;
    return -1;
  }
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return -1;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  i += len;
  return cp;
}

// Python's str.isprintable() for one non-ASCII code point.
bool python_printable(int32_t cp) {
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return false;
    default:
      return true;
  }
}

std::string integer_text(const boost::json::value& v) {
  return v.is_int64() ? std::to_string(v.get_int64()) : std::to_string(v.get_uint64());
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
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
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
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
    case boost::json::kind::uint64:
      out += integer_text(v);
      break;
    case boost::json::kind::double_: {
      // json.dumps spells the non-finite floats the JavaScript way.
      const double d = v.get_double();
      if (std::isnan(d)) {
        out += "NaN";
      } else if (std::isinf(d)) {
        out += d < 0 ? "-Infinity" : "Infinity";
      } else {
        out += python_float_repr(d);
      }
      break;
    }
    case boost::json::kind::string:
      append_json_string(out, v.get_string());
      break;
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ", ";
        first = false;
        append_json(out, e);
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
        append_json_string(out, kv.key());
        out += ": ";
        append_json(out, kv.value());
      }
      out += '}';
      break;
    }
  }
}

// repr() of a value inside a list or dict: like str() except that strings are quoted.
void append_repr(std::string& out, const boost::json::value& v) {
  if (v.is_string()) {
    out += python_str_repr(v.get_string());
  } else {
    out += to_python_scalar(v);
  }
}

// The UTF-8 forms of the code points Python's str.isspace() accepts.
constexpr std::array<std::string_view, 29> python_whitespace = {
    "\t",           "\n",           "\v",           "\f",           "\r",
    "\x1c",         "\x1d",         "\x1e",         "\x1f",         " ",
    "\xc2\x85",     "\xc2\xa0",     "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81",
    "\xe2\x80\x82", "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86",
    "\xe2\x80\x87", "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8",
    "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80"};

}  // namespace

std::string python_float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
  // to_chars without a precision gives the shortest round-trip digits, as Python's
  // repr does (both pick the nearest such digits); only the layout differs.
  std::array<char, 64> buf{};
  const auto res =
      std::to_chars(buf.data(), buf.data() + buf.size(), x, std::chars_format::scientific);
  if (res.ec != std::errc{}) throw std::logic_error("python_float_repr: to_chars failed");
  const std::string_view sci(buf.data(), static_cast<size_t>(res.ptr - buf.data()));
  const size_t e_pos = sci.find('e');
  std::string out;
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c == '-') {
      out += '-';
    } else if (c != '.') {
      digits += c;
    }
  }
  int exponent = 0;
  const std::string_view exp_text = sci.substr(e_pos + 1);
  std::from_chars(exp_text.data() + (exp_text[0] == '+' ? 1 : 0), exp_text.data() + exp_text.size(),
                  exponent);
  // decpt: where the decimal point goes relative to the digits (value = 0.DIGITS * 10^decpt);
  // CPython's float_repr switches to scientific outside -4 < decpt <= 16.
  const int decpt = exponent + 1;
  const int ndigits = static_cast<int>(digits.size());
  if (decpt <= -4 || decpt > 16) {
    out += digits[0];
    if (ndigits > 1) out += '.' + digits.substr(1);
    const int e = decpt - 1;
    out += fmt::format("e{}{:02d}", e < 0 ? '-' : '+', e < 0 ? -e : e);
  } else if (decpt <= 0) {
    out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  } else if (decpt >= ndigits) {
    out += digits + std::string(static_cast<size_t>(decpt - ndigits), '0') + ".0";
  } else {
    out += digits.substr(0, static_cast<size_t>(decpt)) + '.' +
           digits.substr(static_cast<size_t>(decpt));
  }
  return out;
}

std::string to_python_json(const boost::json::value& v) {
  std::string out;
  append_json(out, v);
  return out;
}

std::string to_python_scalar(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return "None";
    case boost::json::kind::bool_:
      return v.get_bool() ? "True" : "False";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
      return integer_text(v);
    case boost::json::kind::double_:
      return python_float_repr(v.get_double());
    case boost::json::kind::string:
      return std::string(v.get_string());
    case boost::json::kind::array: {
      std::string out = "[";
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ", ";
        first = false;
        append_repr(out, e);
      }
      return out + ']';
    }
    case boost::json::kind::object: {
      std::string out = "{";
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ", ";
        first = false;
        out += python_str_repr(kv.key());
        out += ": ";
        append_repr(out, kv.value());
      }
      return out + '}';
    }
  }
  throw std::logic_error("to_python_scalar: unknown JSON kind");
}

std::string python_str_repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const int32_t cp = next_code_point(s, i);
    if (cp < 0) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(s[start]));
    } else if (cp == quote || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp < 0x20 || cp == 0x7f) {
      out += fmt::format("\\x{:02x}", cp);
    } else if (cp < 0x7f || python_printable(cp)) {
      out += s.substr(start, i - start);
    } else if (cp <= 0xff) {
      out += fmt::format("\\x{:02x}", cp);
    } else if (cp <= 0xffff) {
      out += fmt::format("\\u{:04x}", cp);
    } else {
      out += fmt::format("\\U{:08x}", cp);
    }
  }
  out += quote;
  return out;
}

std::string_view python_strip(std::string_view s) {
  for (bool changed = true; changed && !s.empty();) {
    changed = false;
    for (std::string_view ws : python_whitespace) {
      if (s.starts_with(ws)) {
        s.remove_prefix(ws.size());
        changed = true;
      }
      if (s.ends_with(ws)) {
        s.remove_suffix(ws.size());
        changed = true;
      }
    }
  }
  return s;
}

}  // namespace conclave::pytext
