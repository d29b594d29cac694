// Python-literal syntax for tool arguments (models often write {'a': True, 'b': (1, 2)}):
// a small recursive-descent reader into Boost.JSON values. See value_convert.h.
#include <boost/json.hpp>
#include <charconv>
#include <optional>
#include <string>

#include "model/pytext/utf8.h"
#include "model/toolcall/json_text.h"
#include "model/toolcall/value_convert.h"

namespace conclave::toolcall {
namespace {

namespace json = boost::json;

constexpr int max_depth = 64;  // deeper nesting is not a literal we accept (no stack blow-up)

bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_ident(char c) {
  return is_ident_start(c) || (c >= '0' && c <= '9');
}

class py_reader {
 public:
  explicit py_reader(std::string_view s) : s_(s) {}

  std::optional<json::value> parse() {
    skip();
    std::optional<json::value> v = value(0);
    skip();
    if (!v || i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t'))
      ++i_;
  }

  std::optional<json::value> value(int depth) {
    if (depth > max_depth) return std::nullopt;
    skip();
    const char c = peek();
    if (c == '[') return sequence(']', depth, false);
    if (c == '(') return sequence(')', depth, true);
    if (c == '{') return braces(depth);
    if (c == '\'' || c == '"') return string(false);
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.') return number();
    if (is_ident_start(c)) return word();
    return std::nullopt;
  }

  // [a, b] and (a, b) -> arrays; (a) is just a in parentheses.
  std::optional<json::value> sequence(char close, int depth, bool tuple) {
    ++i_;
    json::array arr;
    bool comma = false;
    skip();
    if (peek() == close) {
      ++i_;
      return json::value(std::move(arr));
    }
    for (;;) {
      std::optional<json::value> v = value(depth + 1);
      if (!v) return std::nullopt;
      arr.push_back(std::move(*v));
      skip();
      if (peek() == ',') {
        ++i_;
        comma = true;
        skip();
        if (peek() == close) break;
        continue;
      }
      if (peek() == close) break;
      return std::nullopt;
    }
    ++i_;
    if (tuple && !comma && arr.size() == 1) return json::value(std::move(arr[0]));
    return json::value(std::move(arr));
  }

  // {k: v, ...} -> object (non-string keys as their JSON text); {a, b} (a set) -> array.
  std::optional<json::value> braces(int depth) {
    const size_t start = i_;
    ++i_;
    skip();
    if (peek() == '}') {
      ++i_;
      return json::value(json::object());
    }
    std::optional<json::value> first = value(depth + 1);
    if (!first) return std::nullopt;
    skip();
    if (peek() != ':') {
      i_ = start;
      return sequence('}', depth, false);
    }
    json::object obj;
    std::optional<json::value> key = std::move(first);
    for (;;) {
      if (peek() != ':') return std::nullopt;
      ++i_;
      std::optional<json::value> v = value(depth + 1);
      if (!v) return std::nullopt;
      std::string k;
      if (key->is_string()) {
        k = std::string(key->get_string());
      } else {
        append_json(k, *key);
      }
      obj[k] = std::move(*v);
      skip();
      if (peek() == ',') {
        ++i_;
        skip();
        if (peek() == '}') break;
      } else if (peek() == '}') {
        break;
      } else {
        return std::nullopt;
      }
      key = value(depth + 1);
      if (!key) return std::nullopt;
      skip();
    }
    ++i_;
    return json::value(std::move(obj));
  }

  std::optional<uint32_t> hex(size_t digits) {
    if (i_ + digits > s_.size()) return std::nullopt;
    uint32_t v = 0;
    const auto r = std::from_chars(s_.data() + i_, s_.data() + i_ + digits, v, 16);
    if (r.ec != std::errc() || r.ptr != s_.data() + i_ + digits) return std::nullopt;
    i_ += digits;
    return v;
  }

  // One escape after a backslash (i_ at the character after it).
  bool escape(std::string& out) {
    const char e = s_[i_++];
    switch (e) {
      case 'n':
        out += '\n';
        return true;
      case 't':
        out += '\t';
        return true;
      case 'r':
        out += '\r';
        return true;
      case 'b':
        out += '\b';
        return true;
      case 'f':
        out += '\f';
        return true;
      case 'v':
        out += '\v';
        return true;
      case 'a':
        out += '\a';
        return true;
      case '\n':
        return true;  // line continuation
      case '\\':
      case '\'':
      case '"':
      case '/':
        out += e;
        return true;
      case 'x':
      case 'u':
      case 'U': {
        const std::optional<uint32_t> cp = hex(e == 'x' ? 2 : e == 'u' ? 4 : 8);
        if (!cp) return false;
        uint32_t c = *cp;
        // A JSON-style surrogate pair \ud83d\ude00.
        if (e == 'u' && c >= 0xD800 && c <= 0xDBFF && s_.substr(i_, 2) == "\\u") {
          const size_t save = i_;
          i_ += 2;
          const std::optional<uint32_t> lo = hex(4);
          if (lo && *lo >= 0xDC00 && *lo <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (*lo - 0xDC00);
          } else {
            i_ = save;
          }
        }
        pytext::append_utf8(out, c);
        return true;
      }
      default:
        if (e >= '0' && e <= '7') {  // octal, up to three digits
          uint32_t v = static_cast<uint32_t>(e - '0');
          for (int k = 0; k < 2 && i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '7'; ++k)
            v = v * 8 + static_cast<uint32_t>(s_[i_++] - '0');
          pytext::append_utf8(out, v);
          return true;
        }
        out += '\\';  // Python keeps unknown escapes as written
        out += e;
        return true;
    }
  }

  std::optional<json::value> string(bool raw) {
    const char q = s_[i_];
    const bool triple = s_.substr(i_, 3) == std::string(3, q);
    i_ += triple ? 3 : 1;
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) return std::nullopt;
      const char c = s_[i_];
      if (c == q && (!triple || s_.substr(i_, 3) == std::string(3, q))) {
        i_ += triple ? 3 : 1;
        return json::value(json::string(out));
      }
      ++i_;
      if (c == '\\' && i_ < s_.size()) {
        if (raw) {
          out += c;
          out += s_[i_++];
        } else if (!escape(out)) {
          return std::nullopt;
        }
        continue;
      }
      out += c;
    }
  }

  std::optional<json::value> number() {
    const size_t start = i_;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      const bool sign_ok =
          (c == '+' || c == '-') && (i_ == start || s_[i_ - 1] == 'e' || s_[i_ - 1] == 'E');
      if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '_' || sign_ok))
        break;
      ++i_;
    }
    std::string text;
    for (size_t k = start; k < i_; ++k) {
      if (s_[k] != '_') text += s_[k];  // 1_000 is 1000 in Python
    }
    return parse_number(text);
  }

  std::optional<json::value> word() {
    const size_t start = i_;
    while (i_ < s_.size() && is_ident(s_[i_])) ++i_;
    const std::string_view w = s_.substr(start, i_ - start);
    if (w == "True" || w == "true") return json::value(true);
    if (w == "False" || w == "false") return json::value(false);
    if (w == "None" || w == "null") return json::value(nullptr);
    // String prefixes: r'..' is raw; u'..' and b'..' read as plain strings.
    if (w.size() <= 2 && (peek() == '\'' || peek() == '"') &&
        w.find_first_not_of("rRuUbB") == std::string_view::npos) {
      return string(w.find_first_of("rR") != std::string_view::npos);
    }
    return std::nullopt;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::optional<json::value> parse_python_literal(std::string_view text) {
  return py_reader(text).parse();
}

}  // namespace conclave::toolcall
