// UTF-8 validation, lossy decoding and NFC (utf8proc) for the tokenizer. The NFC quick
// check uses a table of code points that can never change under NFC in any context.
#include "model/tokenizer/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace conclave::tokenizer::detail {
namespace {

constexpr uint32_t max_code_point = 0x10FFFF;

// Length of the well-formed sequence at s[i..n) (Unicode Table 3-7), or, when ill-formed,
// minus the length of its maximal subpart. `incomplete` is set when the sequence is a valid
// prefix cut off by the end of the input.
inline int sequence_length(const unsigned char* s, size_t i, size_t n, bool& incomplete) {
  incomplete = false;
  const unsigned c = s[i];
  if (c < 0x80) return 1;
  int len = 0;
  unsigned lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    if (i + k >= n) {
      incomplete = true;
      return -k;
    }
    const unsigned b = s[i + k];
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return -k;
  }
  return len;
}

inline uint32_t decode_at(const unsigned char* s, size_t i, int len) {
  switch (len) {
    case 1:
      return s[i];
    case 2:
      return ((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
    case 3:
      return ((s[i] & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
    default:
      return ((s[i] & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) |
             (s[i + 3] & 0x3Fu);
  }
}

inline bool is_ascii8(const unsigned char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return (w & 0x8080808080808080ull) == 0;
}

// Code points that may change under NFC in some context: non-starters, characters NFC
// replaces, characters that compose with what precedes them, and characters whose
// decomposition starts with one of those. Everything else is inert, so a string of inert
// characters is already NFC.
class nfc_unsafe_set {
 public:
  nfc_unsafe_set() : bits_((max_code_point + 64) / 64, 0) {
    std::vector<bool> second(max_code_point + 1, false);
    std::vector<std::pair<uint32_t, uint32_t>> firsts;  // (code point, first of its decomposition)
    utf8proc_int32_t buf[32];
    for (uint32_t c = 0; c <= max_code_point; ++c) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      const auto* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
      if (p->combining_class != 0) set(c);
      const bool hangul = c >= 0xAC00 && c <= 0xD7A3;
      if (!hangul && (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0)) continue;
      int boundclass = UTF8PROC_BOUNDCLASS_START;
      const auto n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 32,
                                             UTF8PROC_DECOMPOSE, &boundclass);
      if (n <= 0 || n > 32 || (n == 1 && static_cast<uint32_t>(buf[0]) == c)) continue;
      for (utf8proc_ssize_t k = 1; k < n; ++k) second[static_cast<uint32_t>(buf[k])] = true;
      firsts.emplace_back(c, static_cast<uint32_t>(buf[0]));
      const auto m = utf8proc_normalize_utf32(
          buf, n, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_STABLE));
      if (m != 1 || static_cast<uint32_t>(buf[0]) != c) set(c);
    }
    for (uint32_t c = 0; c <= max_code_point; ++c) {
      if (second[c]) set(c);
    }
    for (const auto& [c, first] : firsts) {
      if (second[first]) set(c);
    }
  }
  bool unsafe(uint32_t c) const { return (bits_[c >> 6] >> (c & 63)) & 1u; }

 private:
  void set(uint32_t c) { bits_[c >> 6] |= uint64_t{1} << (c & 63); }
  std::vector<uint64_t> bits_;
};

const nfc_unsafe_set& unsafe_set() {
  static const nfc_unsafe_set set;
  return set;
}

}  // namespace

size_t find_invalid_utf8(std::string_view sv, bool& ascii) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  const size_t n = sv.size();
  ascii = true;
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n && is_ascii8(s + i)) {
      i += 8;
      continue;
    }
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    ascii = false;
    bool incomplete = false;
    const int len = sequence_length(s, i, n, incomplete);
    if (len < 0) return i;
    i += static_cast<size_t>(len);
  }
  return utf8_valid;
}

size_t append_utf8_lossy(std::string& out, std::string_view sv, bool final) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  const size_t n = sv.size();
  size_t i = 0, run = 0;  // [run, i) is well-formed and not yet copied
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    bool incomplete = false;
    const int len = sequence_length(s, i, n, incomplete);
    if (len > 0) {
      i += static_cast<size_t>(len);
      continue;
    }
    out.append(sv.data() + run, i - run);
    if (incomplete && !final) return i;
    out += "\xEF\xBF\xBD";
    i += static_cast<size_t>(-len);
    run = i;
  }
  out.append(sv.data() + run, n - run);
  return n;
}

void prepare_nfc() {
  unsafe_set();
}

bool normalize_nfc(std::string_view sv, std::string& out) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  const size_t n = sv.size();
  const nfc_unsafe_set* set = nullptr;
  const auto char_len = [&](size_t i) -> size_t {
    const size_t len = s[i] < 0x80 ? 1 : s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : 2;
    return std::min(len, n - i);
  };
  const auto unsafe = [&](size_t i, size_t len) {
    if (s[i] < 0x80) return false;
    if (set == nullptr) set = &unsafe_set();
    return len < 2 || set->unsafe(decode_at(s, i, static_cast<int>(len)));
  };
  constexpr size_t none = static_cast<size_t>(-1);
  size_t i = 0, prev = none, copied = 0;
  bool changed = false;
  while (i < n) {
    if (i + 8 <= n && is_ascii8(s + i)) {
      prev = i + 7;
      i += 8;
      continue;
    }
    const size_t len = char_len(i);
    if (!unsafe(i, len)) {
      prev = i;
      i += len;
      continue;
    }
    // The previous character may compose or reorder with this one; the stretch ends at
    // the next character that nothing before it can affect.
    const size_t start = prev == none ? i : prev;
    size_t end = i + len;
    while (end < n) {
      const size_t l = char_len(end);
      if (!unsafe(end, l)) break;
      end += l;
    }
    if (!changed) out.clear();
    changed = true;
    out.append(sv.data() + copied, start - copied);
    utf8proc_uint8_t* result = nullptr;
    const auto m = utf8proc_map(s + start, static_cast<utf8proc_ssize_t>(end - start), &result,
                                static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(result, &std::free);
    if (m < 0) throw std::invalid_argument(std::string("NFC failed: ") + utf8proc_errmsg(m));
    out.append(reinterpret_cast<const char*>(result), static_cast<size_t>(m));
    copied = i = end;
    prev = none;
  }
  if (changed) out.append(sv.data() + copied, n - copied);
  return changed;
}

}  // namespace conclave::tokenizer::detail
