// `conclave tokenize` through the real binary: JSON in, JSON out, and exit code 2 with one
// line on stderr for bad input.
#include <simdjson.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "model/tokenizer/json_io.h"
#include "tests/fixture.h"
#include "tests/model/tokenizer/tokenizer_fixture.h"

namespace {

struct run_result {
  int code = -1;
  std::string out, err;
};

std::string read_all(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

run_result run_tokenize(const conclave::test::temp_dir& dir, const std::string& args,
                        std::string_view stdin_text) {
  const auto in = conclave::test::write_file(dir.path(), "stdin", stdin_text);
  const auto out = dir.path() / "stdout", err = dir.path() / "stderr";
  const std::string cmd = std::string("'") + CONCLAVE_BINARY + "' tokenize " + args + " < '" +
                          in.string() + "' > '" + out.string() + "' 2> '" + err.string() + "'";
  const int status = std::system(cmd.c_str());
  run_result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_all(out);
  r.err = read_all(err);
  return r;
}

std::string tokenizer_arg() {
  return "--tokenizer '" + conclave::test::qwen3_path().string() + "'";
}

std::string json_strings(const std::vector<std::string>& texts) {
  std::string s = "[";
  for (size_t i = 0; i < texts.size(); ++i) {
    if (i > 0) s += ',';
    conclave::tokenizer::append_json_string(s, texts[i]);
  }
  return s + "]";
}

size_t lines(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

}  // namespace

TEST_CASE("conclave tokenize encodes and decodes the corpus round trip", "[tokenizer][cli]") {
  conclave::test::temp_dir dir;
  const auto& corpus = conclave::test::corpus();
  const auto enc = run_tokenize(dir, tokenizer_arg() + " --json", json_strings(corpus));
  REQUIRE(enc.code == 0);
  CHECK(enc.err.empty());
  CHECK(lines(enc.out) == 1);
  // stdout is one JSON array of id arrays, equal to the library's ids.
  const auto lists = conclave::tokenizer::parse_json_id_lists(enc.out);
  REQUIRE(lists.size() == corpus.size());
  for (size_t i = 0; i < corpus.size(); ++i)
    CHECK(lists[i] == conclave::test::reference_texts()[i].ids);

  const auto dec = run_tokenize(dir, tokenizer_arg() + " --decode", enc.out);
  REQUIRE(dec.code == 0);
  CHECK(lines(dec.out) == 1);
  const auto texts = conclave::tokenizer::parse_json_strings(dec.out);
  REQUIRE(texts.size() == corpus.size());
  for (size_t i = 0; i < corpus.size(); ++i) CHECK(texts[i] == conclave::test::nfc(corpus[i]));
}

TEST_CASE("conclave tokenize --no-special and --skip-special", "[tokenizer][cli]") {
  conclave::test::temp_dir dir;
  const std::string text = "<|im_start|>user\nhi<|im_end|>";
  const auto with = run_tokenize(dir, tokenizer_arg(), json_strings({text}));
  const auto without = run_tokenize(dir, tokenizer_arg() + " --no-special", json_strings({text}));
  REQUIRE(with.code == 0);
  REQUIRE(without.code == 0);
  CHECK(conclave::tokenizer::parse_json_id_lists(with.out)[0] ==
        conclave::test::qwen3().encode(text));
  CHECK(conclave::tokenizer::parse_json_id_lists(without.out)[0] ==
        conclave::test::qwen3().encode(text, false));
  const auto skipped = run_tokenize(dir, tokenizer_arg() + " --decode --skip-special", with.out);
  REQUIRE(skipped.code == 0);
  CHECK(conclave::tokenizer::parse_json_strings(skipped.out) ==
        std::vector<std::string>{"user\nhi"});
  // Control characters and quotes come back escaped, other UTF-8 as is.
  const std::string odd = std::string("q\"b\\s\x01\x7f\t\n\xC3\xA9", 11);
  const auto enc = run_tokenize(dir, tokenizer_arg(), json_strings({odd, ""}));
  const auto dec = run_tokenize(dir, tokenizer_arg() + " --decode", enc.out);
  REQUIRE(dec.code == 0);
  CHECK(dec.out == "[\"q\\\"b\\\\s\\u0001\\u007f\\t\\n\xC3\xA9\",\"\"]\n");
}

TEST_CASE("conclave tokenize: bad input exits 2 with one line on stderr", "[tokenizer][cli]") {
  conclave::test::temp_dir dir;
  const struct {
    std::string args, input, expect;
  } cases[] = {
      {"", "not json", "not JSON"},
      {"", "{\"a\": 1}", "array of strings"},
      {"", "[\"ok\", 3]", "input[1]"},
      {"", "[\"\xFF\"]", "UTF-8"},
      {"", "[\"\\ud800\"]", "JSON"},
      {"--decode", "[[1, 2], [\"a\"]]", "input[1][0]"},
      {"--decode", "[[1, 99999999]]", "99999999"},
      {"--decode", "[[-1]]", "input[0][0]"},
      {"--decode", "[[1.5]]", "input[0][0]"},
      {"--decode", "[1, 2]", "input[0]"},
  };
  for (const auto& c : cases) {
    INFO(c.args << " " << c.input);
    const auto r = run_tokenize(dir, tokenizer_arg() + " " + c.args, c.input);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(lines(r.err) == 1);
    CHECK(r.err.find(c.expect) != std::string::npos);
  }
  const auto no_file = run_tokenize(dir, "", "[]");
  CHECK(no_file.code == 2);
  CHECK(no_file.err.find("--tokenizer") != std::string::npos);
  const auto missing =
      run_tokenize(dir, "--tokenizer '" + (dir.path() / "nope.json").string() + "'", "[]");
  CHECK(missing.code == 2);
  CHECK(lines(missing.err) == 1);
  CHECK(missing.err.find("nope.json") != std::string::npos);
}
