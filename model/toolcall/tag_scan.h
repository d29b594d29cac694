// Recognising the tool-call tags in a text that may end in the middle of one: every
// answer is yes, no, or "more" (the text so far cannot decide; never at end of text).
#pragma once

#include <cstddef>
#include <string_view>

namespace conclave::toolcall::detail {

enum class match { yes, no, more };

enum class tag {
  tool_call_open,
  tool_call_close,
  function_open,
  function_close,
  parameter_open,
  parameter_close
};

using tag_mask = unsigned;
constexpr tag_mask bit(tag t) {
  return 1u << static_cast<unsigned>(t);
}
constexpr tag_mask closer_tags =
    bit(tag::tool_call_close) | bit(tag::function_close) | bit(tag::parameter_close);
constexpr tag_mask opener_tags =
    bit(tag::tool_call_open) | bit(tag::function_open) | bit(tag::parameter_open);
constexpr tag_mask all_tags = closer_tags | opener_tags;

/// Longest function or parameter name accepted inside `<function=...>`.
constexpr size_t max_name_bytes = 256;
/// Most digits a drifted `</parameterN>` closer carries.
constexpr size_t max_drift_digits = 3;
/// Longest whitespace run a structural look-ahead skips (keeps held-back text bounded).
constexpr size_t max_gap_bytes = 256;

inline bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

struct tag_match {
  match m = match::no;
  tag kind = tag::tool_call_open;
  std::string_view name;  ///< trimmed name of `<function=` / `<parameter=`
  size_t end = 0;         ///< index just past the tag
};

/// Reads a tag of `mask` starting at s[pos]. `final`: s is the whole rest of the text.
/// `</parameter>` is also read in its drifted forms, `</parameterN>` and a bare
/// `</parameter` (before whitespace, '<' or the end).
tag_match read_tag(std::string_view s, size_t pos, tag_mask mask, bool final);

struct gap_match {
  match m = match::no;
  size_t end = 0;  ///< first non-space index, or s.size() at the end of a final text
};

/// Skips whitespace from pos; no when the run is longer than max_gap_bytes.
gap_match skip_gap(std::string_view s, size_t pos, bool final);

}  // namespace conclave::toolcall::detail
