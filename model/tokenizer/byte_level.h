// GPT-2's byte-level alphabet (bytes_to_unicode): every byte maps to one printable code
// point so BPE vocabularies can be stored as text. Internal to model/tokenizer/.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace conclave::tokenizer::detail {

/// Code points of the alphabet are all below this.
constexpr uint32_t byte_level_limit = 324;

struct byte_level_tables {
  std::array<uint16_t, 256> to_char{};              ///< byte -> code point
  std::array<int16_t, byte_level_limit> to_byte{};  ///< code point -> byte, -1 if none
};

constexpr byte_level_tables make_byte_level_tables() {
  byte_level_tables t;
  for (auto& b : t.to_byte) b = -1;
  // Printable Latin-1 maps to itself; the remaining bytes get 256, 257, ... in byte order.
  const auto printable = [](uint32_t b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  uint16_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const uint16_t c = printable(b) ? static_cast<uint16_t>(b) : next++;
    t.to_char[b] = c;
    t.to_byte[c] = static_cast<int16_t>(b);
  }
  return t;
}

inline constexpr byte_level_tables byte_level = make_byte_level_tables();

/// Appends the byte-level text of `bytes` (each byte as its UTF-8 encoded code point).
inline void append_byte_level(std::string& out, std::string_view bytes) {
  for (unsigned char b : bytes) {
    const uint16_t c = byte_level.to_char[b];
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
}

/// Maps byte-level text back to bytes; false (out unspecified) when a character is not
/// in the alphabet, in which case HF's ByteLevel decoder keeps the text's own bytes.
inline bool byte_level_to_bytes(std::string_view text, std::string& out) {
  out.clear();
  for (size_t i = 0; i < text.size();) {
    const auto c0 = static_cast<unsigned char>(text[i]);
    uint32_t cp = 0;
    if (c0 < 0x80) {
      cp = c0;
      i += 1;
    } else if ((c0 & 0xE0) == 0xC0 && i + 1 < text.size()) {
      cp = ((c0 & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu);
      i += 2;
    } else {
      return false;  // three- and four-byte characters are all above the alphabet
    }
    if (cp >= byte_level_limit || byte_level.to_byte[cp] < 0) return false;
    out += static_cast<char>(byte_level.to_byte[cp]);
  }
  return true;
}

}  // namespace conclave::tokenizer::detail
