// Tokenizer semantics on small synthetic tokenizer.json files, where the expected ids
// follow from the merges by hand: merge order and ties, added-token matching, and the
// loader's refusals.
#include <catch2/catch.hpp>
#include <stdexcept>

#include "model/model_error.h"
#include "tests/fixture.h"
#include "tests/model/tokenizer/tokenizer_fixture.h"

using conclave::model::model_error;
using conclave::test::tiny_spec;
using conclave::tokenizer::tokenizer;

namespace {

tokenizer load(const conclave::test::temp_dir& dir, const std::string& json) {
  return tokenizer::from_file(conclave::test::write_file(dir.path(), "tokenizer.json", json));
}

std::vector<int32_t> bytes_of(std::string_view s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

}  // namespace

TEST_CASE("BPE applies the lowest rank first and the leftmost pair on ties", "[tokenizer][tiny]") {
  conclave::test::temp_dir dir;
  tiny_spec spec;
  spec.merges = {{"b", "c"}, {"a", "b"}, {"a", "a"}, {"a", "bc"}, {"aa", "a"}};
  // ids: bc 256, ab 257, aa 258, abc 259, aaa 260
  const auto tok = load(dir, conclave::test::tiny_tokenizer_json(spec));
  CHECK(tok.encode("abc") == std::vector<int32_t>{259});  // bc first, then a+bc
  CHECK(tok.encode("ab") == std::vector<int32_t>{257});
  CHECK(tok.encode("aaa") == std::vector<int32_t>{260});         // (aa)a, not a(aa)
  CHECK(tok.encode("aaaa") == std::vector<int32_t>{258, 258});   // leftmost aa, then aa
  CHECK(tok.encode("aaaaa") == std::vector<int32_t>{258, 260});  // aa aa a, then aa+a
  CHECK(tok.encode("xyz") == bytes_of("xyz"));
  CHECK(tok.decode(tok.encode("abcab")) == "abcab");
  // Pieces over 128 bytes take the heap path: same order, so 150 x aa + a, then aa + a.
  for (size_t n : {101, 301}) {
    std::vector<int32_t> expect((n - 3) / 2, 258);
    expect.push_back(260);
    CHECK(tok.encode(std::string(n, 'a')) == expect);
  }
}

TEST_CASE("a token that the merges cannot rebuild is not taken whole", "[tokenizer][tiny]") {
  conclave::test::temp_dir dir;
  tiny_spec spec;
  // "abc" exists as a token (via ab + c) but b+c has the lower rank, so "abc" encodes to
  // a + bc, exactly as HF's BPE (which never looks a piece up whole) does.
  spec.merges = {{"b", "c"}, {"a", "b"}, {"ab", "c"}};
  const auto tok = load(dir, conclave::test::tiny_tokenizer_json(spec));
  REQUIRE(tok.token_id("abc") == 258);
  for (int round = 0; round < 2; ++round) {  // the second time the answer comes from caches
    CHECK(tok.encode("abc") == std::vector<int32_t>{'a', 256});
    CHECK(tok.encode("ab") == std::vector<int32_t>{257});
  }
}

TEST_CASE("legacy space-separated merges load like pairs", "[tokenizer][tiny]") {
  conclave::test::temp_dir dir;
  tiny_spec spec;
  spec.merges = {{" ", "t"}, {"h", "e"}, {" t", "he"}};
  spec.legacy_merges = true;
  const auto tok = load(dir, conclave::test::tiny_tokenizer_json(spec));
  CHECK(tok.encode(" the") == std::vector<int32_t>{258});
  CHECK(tok.token(258) == "\xC4\xA0the");  // "Ġthe"
}

TEST_CASE("added tokens: leftmost, then longest, and special ones skipped whole",
          "[tokenizer][tiny]") {
  conclave::test::temp_dir dir;
  tiny_spec spec;
  spec.added_tokens = {{"<a>", 300, true},
                       {"<a>b", 301, false},
                       {"a>b<", 302, false},
                       {"b", 303, false},
                       {"a>z", 304, false}};
  const auto tok = load(dir, conclave::test::tiny_tokenizer_json(spec));
  CHECK(tok.encode("<a>b") == std::vector<int32_t>{301});  // longest at the leftmost start
  CHECK(tok.encode("x<a>c") == std::vector<int32_t>{'x', 300, 'c'});
  CHECK(tok.encode("<a>b<") == std::vector<int32_t>{301, '<'});  // "<a>b" starts before "a>b<"
  // With allow_special false a special match is stepped over whole (HF skips the match
  // and goes on after it): "a>z" starts inside "<a>" and is not found, "b" after it is.
  CHECK(tok.encode("<a>c", false) == bytes_of("<a>c"));
  CHECK(tok.encode("<a>z", false) == bytes_of("<a>z"));
  CHECK(tok.encode("<a>z", true) == std::vector<int32_t>{300, 'z'});
  CHECK(tok.encode("a>z") == std::vector<int32_t>{304});
  auto expect = bytes_of("<a>x");
  expect.push_back(303);
  CHECK(tok.encode("<a>xb", false) == expect);
  CHECK(tok.encode("<a>b", false) == std::vector<int32_t>{301});  // the longest is not special
  CHECK(tok.is_special(300));
  CHECK_FALSE(tok.is_special(301));
  CHECK(tok.vocab_size() == 305);
  CHECK(tok.decode(std::vector<int32_t>{'x', 300, 301, 'y'}, true) == "x<a>by");
}

TEST_CASE("normalized added tokens match after NFC", "[tokenizer][tiny]") {
  conclave::test::temp_dir dir;
  tiny_spec spec;
  spec.added_tokens = {{"\u00E9t\u00E9", 300, false, true}, {"<raw>", 301, true, false}};
  const auto tok = load(dir, conclave::test::tiny_tokenizer_json(spec));
  CHECK(tok.encode("e\u0301te\u0301!") == std::vector<int32_t>{300, '!'});
  CHECK(tok.encode("<raw>e\u0301t\u00E9") == std::vector<int32_t>{301, 300});
}

TEST_CASE("without a normalizer text is not composed", "[tokenizer][tiny]") {
  conclave::test::temp_dir dir;
  tiny_spec spec;
  spec.normalizer = "null";
  const auto tok = load(dir, conclave::test::tiny_tokenizer_json(spec));
  CHECK(tok.decode(tok.encode("e\u0301")) == "e\u0301");
}

TEST_CASE("a lone ByteLevel pre-tokenizer uses GPT-2's regex", "[tokenizer][tiny]") {
  conclave::test::temp_dir dir;
  tiny_spec spec;
  spec.merges = {{"1", "2"}, {"12", "3"}};
  spec.pre_tokenizer =
      R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true})";
  const auto gpt2 = load(dir, conclave::test::tiny_tokenizer_json(spec));
  CHECK(gpt2.encode("123") == std::vector<int32_t>{257});  // \p{N}+ keeps digits together
  spec.pre_tokenizer.clear();
  const auto qwen_like = load(dir, conclave::test::tiny_tokenizer_json(spec));
  CHECK(qwen_like.encode("123") == bytes_of("123"));  // \p{N}: one digit per piece
}

TEST_CASE("whitespace follows Unicode White_Space, as in HF's Oniguruma", "[tokenizer][tiny]") {
  conclave::test::temp_dir dir;
  tiny_spec spec;
  spec.merges = {{"\xE1", "\xA0"},
                 {"\xE1\xA0", "\x8E"},
                 {"\xE1\xA0\x8E", "!"},
                 {"\xC2", "\xA0"},
                 {"\xC2\xA0", "!"}};
  const auto tok = load(dir, conclave::test::tiny_tokenizer_json(spec));
  // U+00A0 is whitespace, so " ?[^\s\p{L}\p{N}]+" leaves it out of the "!" piece.
  CHECK(tok.encode("\u00A0!") == std::vector<int32_t>{259, '!'});
  // U+180E is not (PCRE2's UCP \s would say it is), so it is one piece with "!".
  CHECK(tok.encode("\u180E!") == std::vector<int32_t>{258});
}

TEST_CASE("the loader refuses other tokenizer families with the key at fault",
          "[tokenizer][tiny]") {
  conclave::test::temp_dir dir;
  tiny_spec spec;
  spec.merges = {{"a", "b"}};
  const std::string good = conclave::test::tiny_tokenizer_json(spec);
  REQUIRE_NOTHROW(load(dir, good));
  const struct {
    std::string from, to, key;
  } edits[] = {
      {R"("type":"BPE")", R"("type":"WordPiece")", "model.type"},
      {R"("dropout":null)", R"("dropout":0.1)", "model.dropout"},
      {R"("byte_fallback":false)", R"("byte_fallback":true)", "model.byte_fallback"},
      {R"("continuing_subword_prefix":"")", R"("continuing_subword_prefix":"##")",
       "model.continuing_subword_prefix"},
      {R"("normalizer":{"type":"NFC"})", R"("normalizer":{"type":"NFKC"})", "normalizer.type"},
      {R"("type":"Split")", R"("type":"Punctuation")", "pre_tokenizer.pretokenizers[0].type"},
      {R"("behavior":"Isolated")", R"("behavior":"Removed")",
       "pre_tokenizer.pretokenizers[0].behavior"},
      {R"("invert":false)", R"("invert":true)", "pre_tokenizer.pretokenizers[0].invert"},
      {R"("add_prefix_space":false,"trim_offsets":false,"use_regex":false}])",
       R"("add_prefix_space":true,"trim_offsets":false,"use_regex":false}])",
       "pre_tokenizer.pretokenizers[1].add_prefix_space"},
      {R"("decoder":{"type":"ByteLevel")", R"("decoder":{"type":"WordPiece")", "decoder.type"},
      {R"(["a","b"])", R"(["a","q"])", "model.merges[0]"},
      {R"(["a","b"])", R"(["a"])", "model.merges[0]"},
      {R"("vocab":{)", R"("vocab":{"zz":-3,)", "model.vocab"},
      {R"("Regex":)", R"("Regex":"(unclosed",)" + std::string(R"("x":)"), "regex"},
  };
  for (const auto& e : edits) {
    INFO(e.from << " -> " << e.to);
    const auto path = conclave::test::write_file(dir.path(), "bad.json",
                                                 conclave::test::replace_once(good, e.from, e.to));
    try {
      tokenizer::from_file(path);
      FAIL("loaded");
    } catch (const model_error& err) {
      const std::string msg = err.what();
      CHECK(msg.find(path.string()) != std::string::npos);
      CHECK(msg.find(e.key) != std::string::npos);
      CHECK(msg.find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("unreadable and non-JSON files are model errors", "[tokenizer][tiny]") {
  conclave::test::temp_dir dir;
  CHECK_THROWS_AS(tokenizer::from_file(dir.path() / "missing.json"), model_error);
  CHECK_THROWS_AS(
      tokenizer::from_file(conclave::test::write_file(dir.path(), "x.json", "{not json")),
      model_error);
  CHECK_THROWS_AS(tokenizer::from_file(conclave::test::write_file(dir.path(), "y.json", "[1, 2]")),
                  model_error);
  tiny_spec spec;
  // A vocabulary without all 256 bytes is not byte-level.
  const std::string no_byte =
      conclave::test::replace_once(conclave::test::tiny_tokenizer_json(spec), R"("A":65,)", "");
  CHECK_THROWS_WITH(tokenizer::from_file(conclave::test::write_file(dir.path(), "z.json", no_byte)),
                    Catch::Contains("0x41"));
}
