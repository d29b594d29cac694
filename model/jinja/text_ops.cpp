// Python's str methods over UTF-8 (see text_ops.h). Case mapping and character classes
// come from utf8proc, so non-ASCII text behaves as in Python.
#include "model/jinja/text_ops.h"

#include <utf8proc.h>

#include <spdlog/fmt/fmt.h>

#include "model/jinja/value.h"

namespace conclave::jinja::text {
namespace {

struct cp_span {
  std::int32_t cp;
  size_t begin, end;  // byte range in the source
};

std::vector<cp_span> decode(std::string_view s) {
  std::vector<cp_span> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp = 0;
    auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                              static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (n <= 0) {  // malformed: one byte, kept as is
      out.push_back({-1, i, i + 1});
      ++i;
      continue;
    }
    out.push_back({cp, i, i + static_cast<size_t>(n)});
    i += static_cast<size_t>(n);
  }
  return out;
}

void encode(std::string& out, std::int32_t cp) {
  utf8proc_uint8_t buf[4];
  auto n = utf8proc_encode_char(cp, buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

bool is_space_cp(std::int32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x1F:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_alpha_cp(std::int32_t cp) {
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return true;
    default:
      return false;
  }
}

bool is_digit_cp(std::int32_t cp) {
  return utf8proc_category(cp) == UTF8PROC_CATEGORY_ND;
}

bool is_cased(std::int32_t cp) {
  return utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp;
}

// The unconditional one-to-many mappings of Unicode's SpecialCasing.txt that Python
// applies and utf8proc's one-to-one tables lack (the Latin ones; Greek and Armenian
// ones map one-to-one here).
const char* special_upper(std::int32_t cp) {
  switch (cp) {
    case 0xDF:
      return "SS";
    case 0xFB00:
      return "FF";
    case 0xFB01:
      return "FI";
    case 0xFB02:
      return "FL";
    case 0xFB03:
      return "FFI";
    case 0xFB04:
      return "FFL";
    case 0xFB05:
    case 0xFB06:
      return "ST";
    case 0x149:
      return "\xCA\xBCN";
    default:
      return nullptr;
  }
}

std::string map_case(std::string_view s, bool to_upper) {
  std::string out;
  out.reserve(s.size());
  for (const auto& c : decode(s)) {
    if (c.cp < 0) {
      out += s[c.begin];
    } else if (const char* special = to_upper ? special_upper(c.cp) : nullptr) {
      out += special;
    } else if (!to_upper && c.cp == 0x130) {  // İ -> i + combining dot above
      out += "i\xCC\x87";
    } else {
      encode(out, to_upper ? utf8proc_toupper(c.cp) : utf8proc_tolower(c.cp));
    }
  }
  return out;
}

}  // namespace

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right) {
  const auto cps = decode(s);
  std::vector<std::int32_t> set;
  if (chars)
    for (const auto& c : decode(*chars)) set.push_back(c.cp);
  auto strippable = [&](std::int32_t cp) {
    if (!chars) return is_space_cp(cp);
    for (auto x : set)
      if (x == cp) return true;
    return false;
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strippable(cps[b].cp)) ++b;
  if (right)
    while (e > b && strippable(cps[e - 1].cp)) --e;
  if (b == e) return {};
  return std::string(s.substr(cps[b].begin, cps[e - 1].end - cps[b].begin));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               std::int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep) {
    if (sep->empty()) throw template_error("empty separator");
    if (!from_right) {
      size_t start = 0;
      while (maxsplit < 0 || static_cast<std::int64_t>(parts.size()) < maxsplit) {
        const size_t at = s.find(*sep, start);
        if (at == std::string_view::npos) break;
        parts.emplace_back(s.substr(start, at - start));
        start = at + sep->size();
      }
      parts.emplace_back(s.substr(start));
      return parts;
    }
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<std::int64_t>(parts.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t at = s.rfind(*sep, end - sep->size());
      if (at == std::string_view::npos) break;
      parts.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
      end = at;
    }
    parts.emplace_back(s.substr(0, end));
    return {parts.rbegin(), parts.rend()};
  }
  // Runs of whitespace; leading and trailing whitespace gives no empty part.
  const auto cps = decode(s);
  std::vector<std::pair<size_t, size_t>> words;  // byte ranges
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && is_space_cp(cps[i].cp)) ++i;
    if (i == cps.size()) break;
    size_t j = i;
    while (j < cps.size() && !is_space_cp(cps[j].cp)) ++j;
    words.emplace_back(cps[i].begin, cps[j - 1].end);
    i = j;
  }
  if (maxsplit < 0 || static_cast<std::int64_t>(words.size()) <= maxsplit + 1) {
    for (auto [b, e] : words) parts.emplace_back(s.substr(b, e - b));
    return parts;
  }
  const auto k = static_cast<size_t>(maxsplit);
  if (!from_right) {
    for (size_t w = 0; w < k; ++w)
      parts.emplace_back(s.substr(words[w].first, words[w].second - words[w].first));
    // The rest runs from the next word to the end, trailing whitespace stripped.
    parts.push_back(strip(s.substr(words[k].first), std::nullopt, false, true));
    return parts;
  }
  const size_t first_kept = words.size() - k;
  parts.push_back(strip(s.substr(0, words[first_kept - 1].second), std::nullopt, true, false));
  for (size_t w = first_kept; w < words.size(); ++w)
    parts.emplace_back(s.substr(words[w].first, words[w].second - words[w].first));
  return parts;
}

std::vector<std::string> splitlines(std::string_view s) {
  std::vector<std::string> lines;
  const auto cps = decode(s);
  size_t start = 0;  // byte offset
  for (size_t i = 0; i < cps.size(); ++i) {
    const auto cp = cps[i].cp;
    const bool brk = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C ||
                     cp == 0x1D || cp == 0x1E || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    if (!brk) continue;
    lines.emplace_back(s.substr(start, cps[i].begin - start));
    size_t next = cps[i].end;
    if (cp == '\r' && i + 1 < cps.size() && cps[i + 1].cp == '\n') next = cps[++i].end;
    start = next;
  }
  if (start < s.size()) lines.emplace_back(s.substr(start));
  return lines;
}

std::string replace(std::string_view s, std::string_view from, std::string_view to,
                    std::int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` around every code point
    const auto cps = decode(s);
    std::int64_t done = 0;
    for (const auto& c : cps) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out += s.substr(c.begin, c.end - c.begin);
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t start = 0;
  std::int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(from, start);
    if (at == std::string_view::npos) break;
    out += s.substr(start, at - start);
    out += to;
    start = at + from.size();
    ++done;
  }
  out += s.substr(start);
  return out;
}

std::int64_t find(std::string_view s, std::string_view sub, bool from_right) {
  const size_t at = from_right ? s.rfind(sub) : s.find(sub);
  if (at == std::string_view::npos) return -1;
  std::int64_t cps = 0;
  for (size_t i = 0; i < at; ++i) cps += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
  return cps;
}

std::int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) {
    std::int64_t n = 1;
    for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
  }
  std::int64_t n = 0;
  for (size_t at = s.find(sub); at != std::string_view::npos; at = s.find(sub, at + sub.size()))
    ++n;
  return n;
}

std::string lower(std::string_view s) {
  return map_case(s, false);
}
std::string upper(std::string_view s) {
  return map_case(s, true);
}

std::string capitalize(std::string_view s) {
  std::string out;
  bool first = true;
  for (const auto& c : decode(s)) {
    if (c.cp < 0) {
      out += s[c.begin];
    } else {
      const std::int32_t m = first ? utf8proc_totitle(c.cp) : utf8proc_tolower(c.cp);
      encode(out, m);
    }
    first = false;
  }
  return out;
}

std::string title(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (const auto& c : decode(s)) {
    if (c.cp < 0) {
      out += s[c.begin];
      prev_cased = false;
      continue;
    }
    encode(out, prev_cased ? utf8proc_tolower(c.cp) : utf8proc_totitle(c.cp));
    prev_cased = is_cased(c.cp);
  }
  return out;
}

std::string jinja_title(std::string_view s) {
  std::string out;
  bool word_start = true;
  for (const auto& c : decode(s)) {
    const bool sep = c.cp >= 0 && (is_space_cp(c.cp) || c.cp == '-' || c.cp == '(' || c.cp == '{' ||
                                   c.cp == '[' || c.cp == '<');
    if (c.cp < 0) {
      out += s[c.begin];
    } else if (sep) {
      encode(out, c.cp);
    } else {
      encode(out, word_start ? utf8proc_toupper(c.cp) : utf8proc_tolower(c.cp));
    }
    word_start = sep;
  }
  return out;
}

bool is_all(std::string_view s, std::string_view what) {
  const auto cps = decode(s);
  if (cps.empty()) return false;
  if (what == "islower" || what == "isupper") {
    bool any_cased = false;
    for (const auto& c : cps) {
      if (c.cp < 0 || !is_cased(c.cp)) continue;
      any_cased = true;
      const bool lower_now = utf8proc_tolower(c.cp) == c.cp;
      if ((what == "islower") != lower_now) return false;
    }
    return any_cased;
  }
  for (const auto& c : cps) {
    if (c.cp < 0) return false;
    bool ok = false;
    if (what == "isalpha") ok = is_alpha_cp(c.cp);
    if (what == "isdigit")
      ok = is_digit_cp(c.cp) || utf8proc_category(c.cp) == UTF8PROC_CATEGORY_NO;
    if (what == "isalnum") ok = is_alpha_cp(c.cp) || is_digit_cp(c.cp);
    if (what == "isspace") ok = is_space_cp(c.cp);
    if (!ok) return false;
  }
  return true;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::int64_t word_count(std::string_view s) {
  std::int64_t n = 0;
  bool in_word = false;
  for (const auto& c : decode(s)) {
    const bool w = c.cp >= 0 && (is_alpha_cp(c.cp) || is_digit_cp(c.cp) || c.cp == '_');
    if (w && !in_word) ++n;
    in_word = w;
  }
  return n;
}

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (const auto& c : decode(s)) {
    const std::int32_t cp = c.cp;
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp >= 0 && cp < 0x20) {
      out += fmt::format("\\u{:04x}", cp);
    } else if (cp >= 0x80 && ensure_ascii) {
      if (cp >= 0x10000) {
        const std::int32_t v = cp - 0x10000;
        out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        out += fmt::format("\\u{:04x}", cp);
      }
    } else {
      out += s.substr(c.begin, c.end - c.begin);
    }
  }
  out += '"';
}

}  // namespace conclave::jinja::text
