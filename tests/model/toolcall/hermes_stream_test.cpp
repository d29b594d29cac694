// The JSON (Qwen3 / Hermes) tool-call parser against its case table: expected results,
// every chunking, the streaming invariants, and random soups of JSON and tag fragments.
#include "model/toolcall/hermes_parser.h"
#include "tests/model/toolcall/parser_harness.h"

using namespace conclave::test;

TEST_CASE("the JSON tool-call table has at least 40 model outputs", "[toolcall][hermes]") {
  CHECK(hermes_cases().size() >= 40);
}

TEST_CASE("JSON tool-call table: each output parses to its expected content and calls",
          "[toolcall][hermes]") {
  check_expected<hermes_parser>(hermes_cases());
}

TEST_CASE("JSON tool-call table: every chunking gives the same result and keeps the invariants",
          "[toolcall][hermes]") {
  check_chunkings<hermes_parser>(hermes_cases());
}

TEST_CASE("JSON tool-call soup: same result for every chunking, invariants hold",
          "[toolcall][hermes]") {
  static const std::vector<std::string> pieces = {"<tool_call>",
                                                  "</tool_call>",
                                                  "{",
                                                  "}",
                                                  "[",
                                                  "]",
                                                  "\"name\"",
                                                  "\"arguments\"",
                                                  ": ",
                                                  ",",
                                                  "\"get_weather\"",
                                                  "\"write_file\"",
                                                  "\"nope\"",
                                                  "\"city\"",
                                                  "\"days\"",
                                                  "\"content\"",
                                                  "\"Paris\"",
                                                  "\"3\"",
                                                  "3",
                                                  "1.5e2",
                                                  "null",
                                                  "true",
                                                  "'",
                                                  "\\",
                                                  "\\u00e9",
                                                  "\\ud83d",
                                                  "\\n",
                                                  "\"",
                                                  " ",
                                                  "\n",
                                                  "é",
                                                  "😀",
                                                  "<",
                                                  "</tool",
                                                  "text",
                                                  "\t"};
  const std::vector<tool_spec> tools = test_tools();
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1), count(1, 50), step(1, 11);
  size_t failures = 0;
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    if (round % 2 == 0) {
      for (size_t k = count(rng); k > 0; --k) text += pieces[pick(rng)];
    } else {
      // Well-formed calls with fragments inserted at random places.
      text =
          "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\", "
          "\"days\": 2}}\n"
          "</tool_call>\nok <tool_call>{\"name\": \"write_file\", \"arguments\": {\"path\": \"a\", "
          "\"content\": \"x\\n</tool_call>\"}}</tool_call>";
      for (size_t m = step(rng) % 4; m > 0; --m) {
        size_t at = pick(rng) * text.size() / pieces.size();
        while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
        text.insert(at, pieces[pick(rng)]);
      }
    }
    tool_case c{"soup", text, "", {}};
    if (round % 3 == 1) c.policy = unknown_tool_policy::reject;
    failures += check_soup<hermes_parser>(text, tools, c, rng);
  }
  CHECK(failures == 0);
}
