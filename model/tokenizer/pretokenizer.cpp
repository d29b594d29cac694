// PCRE2 wrapper for the Split pre-tokenizer. Matching uses pcre2_jit_match (no per-call
// checks: the tokenizer validates UTF-8 before it gets here) with a per-thread JIT stack.
#include "model/tokenizer/pretokenizer.h"

#include <spdlog/fmt/fmt.h>

#include <stdexcept>

#include "model/model_error.h"

namespace conclave::tokenizer::detail {
namespace {

constexpr std::string_view white_space =
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

// Advances past one UTF-8 character (used after an empty match).
size_t next_char(std::string_view s, size_t i) {
  ++i;
  while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
  return i;
}

}  // namespace

std::string oniguruma_whitespace(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  size_t class_start = 0;  // index just after '[' or '[^', where ']' is still literal
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      if (e == 'Q') return std::string(p);  // quoted literals: leave the pattern untouched
      if (e == 's') {
        out += in_class ? std::string(white_space) : fmt::format("[{}]", white_space);
      } else if (e == 'S' && !in_class) {
        out += fmt::format("[^{}]", white_space);
      } else {
        out += c;
        out += e;
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      class_start = i + 1;
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      const size_t close = p.find(":]", i + 2);
      if (close != std::string_view::npos) {
        out.append(p.substr(i, close + 2 - i));
        i = close + 1;
        continue;
      }
    }
    if (in_class && c == ']' && i != class_start) in_class = false;
    out += c;
  }
  return out;
}

regex_scratch::regex_scratch() {
  md_ = pcre2_match_data_create(2, nullptr);
  mc_ = pcre2_match_context_create(nullptr);
  // Long runs of one class (whitespace, punctuation) backtrack deeply; 64 MiB is ample
  // for any single request and only touched when needed.
  stack_ = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
  if (md_ == nullptr || mc_ == nullptr || stack_ == nullptr) throw std::bad_alloc();
  pcre2_jit_stack_assign(mc_, nullptr, stack_);
  // The default limit (10 million backtracks) trips on a long whitespace run, where one
  // match legitimately backtracks over the whole run; the cost stays linear in the match.
  pcre2_set_match_limit(mc_, UINT32_MAX);
}

regex_scratch::~regex_scratch() {
  pcre2_jit_stack_free(stack_);
  pcre2_match_context_free(mc_);
  pcre2_match_data_free(md_);
}

split_regex::split_regex(std::string_view pattern, std::string_view where) {
  const std::string rewritten = oniguruma_whitespace(pattern);
  int err = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                        PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
  if (code_ == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw model::model_error(fmt::format("{}: regex does not compile at offset {}: {}", where,
                                         offset, reinterpret_cast<const char*>(msg)));
  }
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

split_regex::~split_regex() {
  pcre2_code_free(code_);
}

bool split_regex::find(std::string_view text, size_t from, regex_scratch& scratch, size_t& begin,
                       size_t& end) const {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (from <= text.size()) {
    const int rc = jit_ ? pcre2_jit_match(code_, subject, text.size(), from, 0,
                                          scratch.match_data(), scratch.context())
                        : pcre2_match(code_, subject, text.size(), from, PCRE2_NO_UTF_CHECK,
                                      scratch.match_data(), scratch.context());
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw std::runtime_error(
          fmt::format("pre-tokenizer regex failed: {}", reinterpret_cast<const char*>(msg)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.match_data());
    if (ov[1] > ov[0]) {
      begin = ov[0];
      end = ov[1];
      return true;
    }
    if (ov[0] >= text.size()) return false;  // empty matches are not pieces
    from = next_char(text, ov[0]);
  }
  return false;
}

}  // namespace conclave::tokenizer::detail
