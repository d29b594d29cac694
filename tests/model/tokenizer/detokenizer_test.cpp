// incremental_detokenizer: push() never emits part of a character, and push() over all
// ids followed by flush() is exactly decode(ids), also for ids that split characters.
#include <catch2/catch.hpp>
#include <random>
#include <stdexcept>

#include "tests/model/tokenizer/tokenizer_fixture.h"

using conclave::test::qwen3;
using conclave::tokenizer::incremental_detokenizer;

namespace {

struct streamed {
  std::string text;
  bool pieces_valid = true;  ///< every push() result was well-formed UTF-8
};

streamed stream(const std::vector<int32_t>& ids, bool skip_special) {
  incremental_detokenizer d(qwen3(), skip_special);
  streamed out;
  for (const int32_t id : ids) {
    const std::string piece = d.push(id);
    out.pieces_valid = out.pieces_valid && conclave::test::valid_utf8(piece);
    out.text += piece;
  }
  out.text += d.flush();
  return out;
}

// Ids whose bytes are one byte of the given kind, found through token_bytes.
std::vector<int32_t> single_byte_ids(unsigned lo, unsigned hi) {
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < static_cast<int32_t>(qwen3().vocab_size()); ++id) {
    if (!qwen3().contains(id)) continue;
    const auto b = qwen3().token_bytes(id);
    if (b.size() == 1 && static_cast<unsigned char>(b[0]) >= lo &&
        static_cast<unsigned char>(b[0]) <= hi) {
      ids.push_back(id);
    }
  }
  return ids;
}

}  // namespace

TEST_CASE("streaming every corpus entry one id at a time gives decode()", "[detokenizer]") {
  for (size_t i = 0; i < conclave::test::reference_texts().size(); ++i) {
    const auto& ref = conclave::test::reference_texts()[i];
    INFO("corpus[" << i << "] = " << ref.text);
    for (const bool skip : {false, true}) {
      const auto s = stream(ref.ids, skip);
      CHECK(s.text == qwen3().decode(ref.ids, skip));
      CHECK(s.pieces_valid);
    }
    CHECK(stream(ref.ids, false).text == ref.decoded);
  }
}

TEST_CASE("random id sequences stream to decode(), split characters included", "[detokenizer]") {
  const auto lead = single_byte_ids(0xC2, 0xF4);
  const auto continuation = single_byte_ids(0x80, 0xBF);
  const auto invalid = single_byte_ids(0xF5, 0xFF);
  REQUIRE(lead.size() == 0xF4 - 0xC2 + 1);
  REQUIRE(continuation.size() == 0x40);
  // Ids of multi-byte characters' pieces, from real text.
  const auto multi = qwen3().encode(
      "中文 日本語 한국어 🚀👨‍👩‍👧 é ü ñ Ωμέγα नमस्ते");
  std::vector<int32_t> specials;
  for (int32_t id = 0; id < static_cast<int32_t>(qwen3().vocab_size()); ++id) {
    if (qwen3().is_special(id)) specials.push_back(id);
  }
  std::mt19937_64 rng(12345);
  const auto pick = [&](const std::vector<int32_t>& v) { return v[rng() % v.size()]; };
  for (int round = 0; round < 3000; ++round) {
    std::vector<int32_t> ids(1 + rng() % 24);
    for (auto& id : ids) {
      switch (rng() % 6) {
        case 0:
          id = pick(lead);
          break;
        case 1:
          id = pick(continuation);
          break;
        case 2:
          id = pick(multi);
          break;
        case 3:
          id = rng() % 4 == 0 ? pick(specials) : pick(invalid);
          break;
        default:
          id = static_cast<int32_t>(rng() % 151643);
      }
    }
    for (const bool skip : {false, true}) {
      const auto s = stream(ids, skip);
      INFO("round " << round);
      REQUIRE(s.text == qwen3().decode(ids, skip));
      REQUIRE(s.pieces_valid);
    }
  }
}

TEST_CASE("incomplete characters are held back, then replaced on flush", "[detokenizer]") {
  const auto& tok = qwen3();
  const auto ids = tok.encode("\u4E2D");  // 3 bytes; find ids of its single bytes
  std::vector<int32_t> bytes;
  for (unsigned char c : std::string("\u4E2D")) {
    for (int32_t id : single_byte_ids(c, c)) bytes.push_back(id);
  }
  REQUIRE(bytes.size() == 3);
  incremental_detokenizer d(tok);
  CHECK(d.push(bytes[0]).empty());
  CHECK(d.push(bytes[1]).empty());
  CHECK(d.push(bytes[2]) == "\u4E2D");
  CHECK(d.flush().empty());
  CHECK(d.push(bytes[0]).empty());
  CHECK(d.push(bytes[1]).empty());
  CHECK(d.push(*tok.token_id("a")) == "\uFFFDa");  // a truncated sequence is one U+FFFD
  CHECK(d.push(bytes[0]).empty());
  CHECK(d.flush() == "\uFFFD");
  CHECK(d.flush().empty());
  CHECK_THROWS_AS(d.push(-1), std::invalid_argument);
  CHECK_THROWS_AS(d.push(static_cast<int32_t>(tok.vocab_size())), std::invalid_argument);
  CHECK(ids.size() == 1);
}

TEST_CASE("ill-formed bytes become U+FFFD per maximal subpart (Unicode 3.9, Table 3-8)",
          "[detokenizer]") {
  // The standard's example: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  std::vector<int32_t> ids;
  for (unsigned char c :
       {0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63, 0x80, 0xBF, 0x64}) {
    ids.push_back(single_byte_ids(c, c).at(0));
  }
  const std::string expect = "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd";
  CHECK(qwen3().decode(ids) == expect);
  CHECK(stream(ids, false).text == expect);
  // Overlong, surrogate and out-of-range leads: each byte is its own subpart.
  std::vector<int32_t> bad;
  for (unsigned char c : {0xE0, 0x80, 0xED, 0xA0, 0x80, 0xF4, 0x90})
    bad.push_back(single_byte_ids(c, c).at(0));
  CHECK(qwen3().decode(bad) == "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD");
}
