// The Qwen3 tokenizer against the reference ids of tests/data/tokenizer (HF tokenizers;
// see tools/tokenizer_expected.py), plus its API, special tokens and bad input.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <stdexcept>
#include <thread>

#include "model/model_error.h"
#include "tests/model/tokenizer/tokenizer_fixture.h"

using conclave::test::corpus;
using conclave::test::qwen3;
using conclave::test::reference_texts;

namespace {

int32_t id_of(std::string_view token) {
  const auto id = qwen3().token_id(token);
  REQUIRE(id.has_value());
  return *id;
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace

TEST_CASE("the reference file covers the corpus", "[tokenizer]") {
  REQUIRE(corpus().size() >= 500);
  REQUIRE(reference_texts().size() == corpus().size());
  for (size_t i = 0; i < corpus().size(); ++i) REQUIRE(reference_texts()[i].text == corpus()[i]);
}

TEST_CASE("every corpus string encodes to the reference ids", "[tokenizer]") {
  size_t mismatches = 0;
  for (size_t i = 0; i < reference_texts().size(); ++i) {
    const auto& ref = reference_texts()[i];
    const auto ids = qwen3().encode(ref.text);
    if (ids != ref.ids) ++mismatches;
    INFO("corpus[" << i << "] = " << ref.text);
    CHECK(ids == ref.ids);
  }
  CHECK(mismatches == 0);
}

TEST_CASE("with allow_special false, special tokens encode as plain text", "[tokenizer]") {
  for (size_t i = 0; i < reference_texts().size(); ++i) {
    const auto& ref = reference_texts()[i];
    INFO("corpus[" << i << "] = " << ref.text);
    CHECK(qwen3().encode(ref.text, false) == ref.ids_no_special);
  }
}

TEST_CASE("decode(encode(s)) is NFC(s) and the reference text", "[tokenizer]") {
  for (size_t i = 0; i < reference_texts().size(); ++i) {
    const auto& ref = reference_texts()[i];
    INFO("corpus[" << i << "] = " << ref.text);
    const std::string text = qwen3().decode(qwen3().encode(ref.text));
    CHECK(text == conclave::test::nfc(ref.text));
    CHECK(text == ref.decoded);
    CHECK(qwen3().decode(ref.ids) == ref.decoded);
  }
}

TEST_CASE("added tokens are matched inline, whole, before normalization", "[tokenizer]") {
  const auto& tok = qwen3();
  const int32_t im_start = id_of("<|im_start|>"), im_end = id_of("<|im_end|>");
  const int32_t call = id_of("<tool_call>"), end_call = id_of("</tool_call>");
  CHECK(tok.encode("<|im_start|>user\nhi<|im_end|>") ==
        concat({{im_start}, tok.encode("user\nhi"), {im_end}}));
  CHECK(tok.encode("a<tool_call>b</tool_call>") ==
        concat({tok.encode("a"), {call}, tok.encode("b"), {end_call}}));
  // Look-alikes are text.
  for (std::string s : {"<|im_start", "<|im_start |>", "<tool_call >", "<|IM_START|>"}) {
    INFO(s);
    const auto ids = tok.encode(s);
    CHECK(std::find(ids.begin(), ids.end(), im_start) == ids.end());
    CHECK(std::find(ids.begin(), ids.end(), call) == ids.end());
    CHECK(tok.decode(ids) == s);
  }
  // The text around an added token is normalized on its own: NFC would turn ">" + U+0338
  // into U+226F, but the token is cut out first (HF's AddedVocabulary does the same).
  const std::string combining = "\u0338x";
  CHECK(tok.encode("<|im_end|>" + combining) == concat({{im_end}, tok.encode(combining)}));
  CHECK(tok.decode(tok.encode("<|im_end|>" + combining)) == "<|im_end|>" + combining);
  CHECK(tok.decode(tok.encode(">" + combining)) == "\u226Fx");
}

TEST_CASE("allow_special false keeps non-special added tokens", "[tokenizer]") {
  const auto& tok = qwen3();
  const int32_t im_start = id_of("<|im_start|>"), call = id_of("<tool_call>");
  const auto plain = tok.encode("<|im_start|><tool_call>", false);
  CHECK(std::find(plain.begin(), plain.end(), im_start) == plain.end());
  CHECK(plain.back() == call);
  CHECK(tok.decode(plain) == "<|im_start|><tool_call>");
  CHECK(tok.encode("<|im_start|><tool_call>", true) == std::vector<int32_t>{im_start, call});
}

TEST_CASE("token, token_id and flags agree with tokenizer.json", "[tokenizer]") {
  const auto& tok = qwen3();
  simdjson::dom::parser parser;
  const auto root = parser.load(conclave::test::qwen3_path().string());
  int64_t max_id = 0;
  size_t count = 0;
  for (auto [key, value] : root["model"]["vocab"].get_object()) {
    const auto id = static_cast<int32_t>(int64_t(value));
    max_id = std::max<int64_t>(max_id, id);
    ++count;
    if (tok.token(id) != key || tok.token_id(key) != id || tok.is_special(id)) {
      FAIL_CHECK("vocab entry " << key << " = " << id);
    }
  }
  CHECK(count == 151643);
  for (auto t : root["added_tokens"].get_array()) {
    const auto id = static_cast<int32_t>(int64_t(t["id"]));
    const std::string_view content = t["content"];
    max_id = std::max<int64_t>(max_id, id);
    CHECK(tok.token(id) == content);
    CHECK(tok.token_id(content) == id);
    CHECK(tok.is_special(id) == bool(t["special"]));
    CHECK(tok.token_bytes(id) == content);
  }
  CHECK(tok.vocab_size() == static_cast<size_t>(max_id + 1));
  CHECK(tok.token_bytes(id_of("\xC4\xA0")) == " ");  // "Ġ" is the space byte
  CHECK_FALSE(tok.token_id("not a token at all, surely"));
  CHECK_THROWS_AS(tok.token(-1), std::invalid_argument);
  CHECK_THROWS_AS(tok.token(static_cast<int32_t>(tok.vocab_size())), std::invalid_argument);
  CHECK_FALSE(tok.is_special(-5));
}

TEST_CASE("invalid UTF-8 is refused", "[tokenizer]") {
  for (std::string bad :
       {"\xFF", "abc\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "a\x80z", "\xE4\xB8"}) {
    INFO(bad);
    CHECK_THROWS_AS(qwen3().encode(bad), std::invalid_argument);
  }
  CHECK(qwen3().encode("").empty());
  const std::string nul("a\0b", 3);
  CHECK(qwen3().decode(qwen3().encode(nul)) == nul);
}

TEST_CASE("decode refuses unknown ids and can skip special tokens", "[tokenizer]") {
  const auto& tok = qwen3();
  const std::vector<int32_t> bad = {1, static_cast<int32_t>(tok.vocab_size())};
  CHECK_THROWS_AS(tok.decode(bad), std::invalid_argument);
  const std::vector<int32_t> negative = {-1};
  CHECK_THROWS_AS(tok.decode(negative), std::invalid_argument);
  const auto ids = tok.encode("<|im_start|>user\nhi<tool_call><|im_end|>");
  CHECK(tok.decode(ids, true) == "user\nhi<tool_call>");
  CHECK(tok.decode(ids, false) == "<|im_start|>user\nhi<tool_call><|im_end|>");
}

TEST_CASE("long runs take the heap path and round-trip", "[tokenizer]") {
  const auto& tok = qwen3();
  for (std::string run : {std::string(1 << 20, ' '), std::string(300000, 'a'),
                          std::string(100000, '\n'), std::string(200000, '='), [] {
                            std::string s;
                            for (int i = 0; i < 20000; ++i) s += "\u6F22\u5B57";
                            return s;
                          }()}) {
    const auto ids = tok.encode(run);
    CHECK(ids.size() < run.size() / 2);
    CHECK(tok.decode(ids) == run);
  }
  // A piece just over and just under the linear/heap boundary gives what the whole text does.
  for (size_t n : {127, 128, 129, 130, 200}) {
    const std::string s(n, 'x');
    CHECK(tok.decode(tok.encode(s)) == s);
    CHECK(tok.encode(s + " y") == concat({tok.encode(s), tok.encode(" y")}));
  }
}

TEST_CASE("encode is safe from several threads at once", "[tokenizer]") {
  std::vector<std::vector<std::vector<int32_t>>> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        results[t].clear();
        for (const auto& ref : reference_texts()) results[t].push_back(qwen3().encode(ref.text));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& r : results) {
    REQUIRE(r.size() == reference_texts().size());
    for (size_t i = 0; i < r.size(); ++i) CHECK(r[i] == reference_texts()[i].ids);
  }
}

TEST_CASE("a copy shares the tables and gives the same ids", "[tokenizer]") {
  const conclave::tokenizer::tokenizer copy = qwen3();
  CHECK(copy.vocab_size() == qwen3().vocab_size());
  CHECK(copy.encode("copy <|im_end|> me") == qwen3().encode("copy <|im_end|> me"));
  CHECK(copy.path() == conclave::test::qwen3_path());
}
