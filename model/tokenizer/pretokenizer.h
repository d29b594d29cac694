// The Split pre-tokenizer: the regex from tokenizer.json, compiled with PCRE2 (UTF, UCP,
// JIT), cutting a text segment into pieces (matches and the gaps between them, HF's
// "Isolated" behaviour). Internal to model/tokenizer/.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace conclave::tokenizer::detail {

/// Rewrites `\s` and `\S` outside character classes, and `\s` inside them, to Unicode's
/// White_Space set, which is what Oniguruma (HF tokenizers' regex engine) matches; PCRE2's
/// UCP `\s` also matches U+180E. Other syntax is left as is.
std::string oniguruma_whitespace(std::string_view pattern);

/// Per-thread matching state (match data and a JIT stack); not shareable between threads.
class regex_scratch {
 public:
  regex_scratch();
  ~regex_scratch();
  regex_scratch(const regex_scratch&) = delete;
  regex_scratch& operator=(const regex_scratch&) = delete;
  pcre2_match_data* match_data() const { return md_; }
  pcre2_match_context* context() const { return mc_; }

 private:
  pcre2_match_data* md_ = nullptr;
  pcre2_match_context* mc_ = nullptr;
  pcre2_jit_stack* stack_ = nullptr;
};

class split_regex {
 public:
  /// Compiles `pattern`; a pattern PCRE2 rejects is a model_error naming `where`.
  split_regex(std::string_view pattern, std::string_view where);
  ~split_regex();
  split_regex(const split_regex&) = delete;
  split_regex& operator=(const split_regex&) = delete;

  /// Calls fn(piece) for every non-empty piece of `text` in order; the pieces tile `text`.
  template <class F>
  void split(std::string_view text, regex_scratch& scratch, F&& fn) const;

 private:
  // Start and end of the first non-empty match at or after `from`; false when none.
  bool find(std::string_view text, size_t from, regex_scratch& scratch, size_t& begin,
            size_t& end) const;
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

template <class F>
void split_regex::split(std::string_view text, regex_scratch& scratch, F&& fn) const {
  size_t pos = 0, begin = 0, end = 0;
  while (pos < text.size() && find(text, pos, scratch, begin, end)) {
    if (begin > pos) fn(text.substr(pos, begin - pos));
    fn(text.substr(begin, end - begin));
    pos = end;
  }
  if (pos < text.size()) fn(text.substr(pos));
}

}  // namespace conclave::tokenizer::detail
