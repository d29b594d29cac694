// Tag recognition for the tool-call parser (see tag_scan.h).
#include "model/toolcall/tag_scan.h"

#include <array>

namespace conclave::toolcall::detail {
namespace {

struct tag_text {
  tag kind;
  std::string_view text;
  bool named;  // text is the prefix, then NAME '>'
};

constexpr std::array<tag_text, 6> tag_texts{{
    {tag::tool_call_open, "<tool_call>", false},
    {tag::tool_call_close, "</tool_call>", false},
    {tag::function_open, "<function=", true},
    {tag::function_close, "</function>", false},
    {tag::parameter_open, "<parameter=", true},
    {tag::parameter_close, "</parameter>", false},
}};

match match_literal(std::string_view s, std::string_view lit, bool final) {
  const size_t n = s.size() < lit.size() ? s.size() : lit.size();
  if (s.substr(0, n) != lit.substr(0, n)) return match::no;
  if (n == lit.size()) return match::yes;
  return final ? match::no : match::more;
}

// NAME '>' after a named tag's prefix. Names are one line without '<' so that prose
// like "<parameter=x and more" is not mistaken for a tag.
tag_match read_name(std::string_view s, size_t start, bool final) {
  tag_match r;
  for (size_t j = start; j < s.size(); ++j) {
    const char c = s[j];
    if (c == '>') {
      std::string_view name = s.substr(start, j - start);
      while (!name.empty() && is_space(name.front())) name.remove_prefix(1);
      while (!name.empty() && is_space(name.back())) name.remove_suffix(1);
      if (name.empty()) return r;
      r.m = match::yes;
      r.name = name;
      r.end = j + 1;
      return r;
    }
    if (c == '<' || c == '\n' || j - start >= max_name_bytes) return r;
  }
  r.m = final ? match::no : match::more;
  return r;
}

// A drifted `</parameter>`: `</parameter` then up to max_drift_digits digits, closed by
// '>' or left bare before whitespace, '<' or the end of text (`</parameter1>`,
// `</parameter`). Whether it ends a value is decided by what follows, as for the exact
// closer; the drift itself is dropped.
tag_match read_drifted_parameter_close(std::string_view s, size_t pos, bool final) {
  constexpr std::string_view stem = "</parameter";
  const std::string_view rest = s.substr(pos);
  const match m = match_literal(rest, stem, final);
  if (m != match::yes) return {m, tag::parameter_close, {}, 0};
  size_t j = stem.size();
  while (j < rest.size() && j - stem.size() < max_drift_digits && rest[j] >= '0' && rest[j] <= '9')
    ++j;
  if (j == rest.size())
    return {final ? match::yes : match::more, tag::parameter_close, {}, pos + j};
  if (rest[j] == '>') return {match::yes, tag::parameter_close, {}, pos + j + 1};
  if (rest[j] == '<' || is_space(rest[j])) return {match::yes, tag::parameter_close, {}, pos + j};
  return {match::no, tag::parameter_close, {}, 0};
}

}  // namespace

tag_match read_tag(std::string_view s, size_t pos, tag_mask mask, bool final) {
  const std::string_view rest = s.substr(pos);
  bool more = false;
  for (const tag_text& t : tag_texts) {
    if ((mask & bit(t.kind)) == 0) continue;
    if (t.kind == tag::parameter_close) {
      const tag_match d = read_drifted_parameter_close(s, pos, final);
      if (d.m == match::yes) return d;
      if (d.m == match::more) more = true;
      continue;
    }
    const match m = match_literal(rest, t.text, final);
    if (m == match::more) more = true;
    if (m != match::yes) continue;
    if (!t.named) return {match::yes, t.kind, {}, pos + t.text.size()};
    tag_match r = read_name(s, pos + t.text.size(), final);
    r.kind = t.kind;
    return r;  // the tag texts differ early, so no other one can match here
  }
  return {more ? match::more : match::no, tag::tool_call_open, {}, 0};
}

gap_match skip_gap(std::string_view s, size_t pos, bool final) {
  size_t k = pos;
  while (k < s.size() && is_space(s[k])) {
    if (k - pos >= max_gap_bytes) return {match::no, k};
    ++k;
  }
  if (k == s.size() && !final) return {match::more, k};
  return {match::yes, k};
}

}  // namespace conclave::toolcall::detail
