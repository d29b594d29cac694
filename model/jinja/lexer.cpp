// Jinja's lexer as Hugging Face configures it (see lexer.h). Follows jinja2's rules:
// lstrip_blocks strips spaces before `{%`/`{#` only when the tag starts its line,
// trim_blocks drops one newline after `%}`/`#}` (never after `}}`), `-` strips all
// whitespace on its side, and a tag's end is only recognised with brackets balanced.
#include "model/jinja/lexer.h"

#include <spdlog/fmt/fmt.h>

#include <cctype>
#include <charconv>
#include <cstdlib>

#include "model/jinja/value.h"
#include "model/pytext/utf8.h"

namespace conclave::jinja {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string normalise_newlines(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out += src[i];
    }
  }
  return out;
}

class lexer {
 public:
  explicit lexer(std::string src) : src_(std::move(src)) {
    // keep_trailing_newline=False: one final newline of the template is not output.
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<token> run() {
    while (pos_ < src_.size()) {
      const size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        emit_text(src_.substr(pos_));
        advance_to(src_.size());
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      const char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      std::string text = src_.substr(pos_, tag - pos_);
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && kind != '{') {
        const size_t l_pos = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if ((l_pos > 0 || line_starting_) && l_pos < text.size()) {
          bool blank = true;
          for (size_t i = l_pos; i < text.size(); ++i) blank = blank && is_space(text[i]);
          if (blank) text.resize(l_pos);
        }
      }
      emit_text(std::move(text));
      advance_to(tag);
      size_t inner = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        comment(inner);
      } else if (kind == '%' && raw_block(inner)) {
        continue;
      } else {
        advance_to(inner);
        expression(kind == '%');
      }
    }
    out_.push_back(token{token_type::eof, {}, 0, 0, line_});
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw template_error(fmt::format("line {}: {}", line_, what));
  }

  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    }
    return std::string::npos;
  }

  void advance_to(size_t p) {
    for (size_t i = pos_; i < p; ++i) line_ += src_[i] == '\n';
    if (p > pos_) line_starting_ = src_[p - 1] == '\n';
    pos_ = p;
  }

  void emit_text(std::string text) {
    if (!text.empty()) out_.push_back(token{token_type::text, std::move(text), 0, 0, line_});
  }

  // After a `%}`/`#}`/`}}` at `end` (one past it), with the end's sign `sign`: `-` eats
  // all whitespace, a block or comment end eats one newline (trim_blocks) unless `+`.
  void finish_tag(size_t end, char sign, bool trim) {
    size_t p = end;
    if (sign == '-') {
      while (p < src_.size() && is_space(src_[p])) ++p;
    } else if (trim && sign != '+' && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    advance_to(p);
  }

  void comment(size_t inner) {
    const size_t close = src_.find("#}", inner);
    if (close == std::string::npos) fail("unclosed comment");
    const char sign = close > inner && (src_[close - 1] == '-' || src_[close - 1] == '+')
                          ? src_[close - 1]
                          : '\0';
    finish_tag(close + 2, sign, true);
  }

  // `{% raw %}...{% endraw %}`: the body is text, tags in it are not interpreted.
  bool raw_block(size_t inner) {
    size_t p = inner;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    char sign = '\0';
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
    if (src_.compare(p, 2, "%}") != 0) return false;
    finish_tag(p + 2, sign, true);
    // The body runs to the first `{%[-] endraw [-]%}`.
    for (size_t e = src_.find("{%", pos_); e != std::string::npos; e = src_.find("{%", e + 2)) {
      size_t q = e + 2;
      const bool strip_before = q < src_.size() && src_[q] == '-';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q += 6;
      while (q < src_.size() && is_space(src_[q])) ++q;
      char end_sign = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) end_sign = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) continue;
      std::string body = src_.substr(pos_, e - pos_);
      if (strip_before) {
        while (!body.empty() && is_space(body.back())) body.pop_back();
      }
      emit_text(std::move(body));
      advance_to(e);
      finish_tag(q + 2, end_sign, true);
      return true;
    }
    fail("unclosed raw block");
  }

  void expression(bool block) {
    out_.push_back(token{block ? token_type::block_begin : token_type::var_begin, {}, 0, 0, line_});
    std::vector<char> balance;
    while (true) {
      size_t p = pos_;
      while (p < src_.size() && is_space(src_[p])) ++p;
      advance_to(p);
      if (pos_ >= src_.size()) fail(block ? "unclosed block tag '{%'" : "unclosed tag '{{'");
      if (balance.empty() && end_tag(block)) return;
      const char c = src_[pos_];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos_;
        while (e < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
          ++e;
        out_.push_back(token{token_type::name, src_.substr(pos_, e - pos_), 0, 0, line_});
        advance_to(e);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        number();
      } else if (c == '\'' || c == '"') {
        string_literal(c);
      } else {
        op(balance);
      }
    }
  }

  bool end_tag(bool block) {
    const char close = block ? '%' : '}';
    size_t p = pos_;
    char sign = '\0';
    if (src_[p] == '-' || (block && src_[p] == '+')) sign = src_[p++];
    if (p + 1 < src_.size() && src_[p] == close && src_[p + 1] == '}') {
      out_.push_back(token{block ? token_type::block_end : token_type::var_end, {}, 0, 0, line_});
      finish_tag(p + 2, sign, block);
      return true;
    }
    return false;
  }

  void number() {
    size_t e = pos_;
    auto digits = [&] {
      while (e < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
        ++e;
    };
    digits();
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      is_float = true;
      ++e;
      digits();
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
        is_float = true;
        e = q;
        digits();
      }
    }
    std::string text;
    for (size_t i = pos_; i < e; ++i)
      if (src_[i] != '_') text += src_[i];
    token t{is_float ? token_type::floating : token_type::integer, text, 0, 0, line_};
    if (is_float) {
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      auto r = std::from_chars(text.data(), text.data() + text.size(), t.int_value);
      if (r.ec != std::errc()) fail("integer literal too large: " + text);
    }
    out_.push_back(std::move(t));
    advance_to(e);
  }

  void string_literal(char quote) {
    std::string out;
    size_t p = pos_ + 1;
    while (true) {
      if (p >= src_.size()) fail("unclosed string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) fail("unclosed string literal");
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '0':
          out += '\0';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case '\n':
          break;  // a line continuation
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (p + n > src_.size()) fail("truncated \\" + std::string(1, e) + " escape");
          std::uint32_t cp = 0;
          auto r = std::from_chars(src_.data() + p, src_.data() + p + n, cp, 16);
          if (r.ec != std::errc() || r.ptr != src_.data() + p + n)
            fail("bad \\" + std::string(1, e) + " escape in a string literal");
          pytext::append_utf8(out, cp);
          p += n;
          break;
        }
        default:  // Python keeps an unknown escape as written
          out += '\\';
          out += e;
      }
    }
    out_.push_back(token{token_type::string, std::move(out), 0, 0, line_});
    advance_to(p + 1);
  }

  void op(std::vector<char>& balance) {
    static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* t : two) {
      if (src_.compare(pos_, 2, t) == 0) {
        out_.push_back(token{token_type::op, t, 0, 0, line_});
        advance_to(pos_ + 2);
        return;
      }
    }
    const char c = src_[pos_];
    static const std::string_view singles = "+-*/%~[](){}<>=.:|,;";
    if (singles.find(c) == std::string_view::npos)
      fail(fmt::format("unexpected character '{}' in a tag", c));
    if (c == '(' || c == '[' || c == '{') {
      balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty() || balance.back() != c) fail(fmt::format("unexpected '{}'", c));
      balance.pop_back();
    }
    out_.push_back(token{token_type::op, std::string(1, c), 0, 0, line_});
    advance_to(pos_ + 1);
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<token> out_;
};

}  // namespace

std::vector<token> lex(std::string_view source) {
  return lexer(normalise_newlines(source)).run();
}

}  // namespace conclave::jinja
