// The tokenizer's NFC shortcut (normalize only around characters NFC could change) gives
// what utf8proc's NFC of the whole string gives, on random mixes of tricky characters.
#include <catch2/catch.hpp>
#include <random>

#include "model/tokenizer/unicode.h"
#include "tests/model/tokenizer/tokenizer_fixture.h"

namespace {

std::string utf8(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s += static_cast<char>(c);
  } else if (c < 0x800) {
    s += static_cast<char>(0xC0 | (c >> 6));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += static_cast<char>(0xE0 | (c >> 12));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (c >> 18));
    s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  }
  return s;
}

std::string normalized(std::string_view s) {
  std::string out;
  return conclave::tokenizer::detail::normalize_nfc(s, out) ? out : std::string(s);
}

}  // namespace

TEST_CASE("normalize_nfc equals NFC of the whole string", "[tokenizer][nfc]") {
  const char32_t pool[] = {
      'a', 'e', 'o', 'A', ' ', '<', '>', '=', 0xE9, 0xC5, 0x1EC7, 0x01EB,  // starters, precomposed
      0x0301, 0x0300, 0x0302, 0x0308, 0x0323, 0x0327, 0x0328, 0x0338, 0x0345,  // combining
                                                                               // marks
      0x05B0, 0x05C1, 0x093C, 0x0F71, 0x0F72, 0x0F73, 0x0344,          // other classes, exclusions
      0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x3131,                  // Hangul L, V, T, LV, LVT
      0x212B, 0x2126, 0x212A, 0x0958, 0xFB2A, 0x2ADC,                  // singletons, exclusions
      0x0B47, 0x0B3E, 0x0B57, 0x0DD9, 0x0DCF, 0x0DDF, 0x1B05, 0x1B35,  // two-part vowels
      0x4E2D, 0x1F600, 0x1D15E, 0x1D165, 0x110A5, 0x110BA,             // CJK, emoji, musical
  };
  std::mt19937_64 rng(7);
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    for (size_t n = rng() % 12; n > 0; --n) s += utf8(pool[rng() % std::size(pool)]);
    INFO("round " << round);
    REQUIRE(normalized(s) == conclave::test::nfc(s));
  }
  std::string unchanged;
  CHECK_FALSE(
      conclave::tokenizer::detail::normalize_nfc("plain ASCII and caf\u00E9 \u4E2D", unchanged));
  CHECK(normalized("e\u0301") == "\u00E9");
  CHECK(normalized("\u1100\u1161\u11A8") == "\uAC01");
}
