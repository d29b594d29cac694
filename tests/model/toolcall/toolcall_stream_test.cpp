// The case table through the tool-call parser: the whole-text result must match the
// expectation, and every chunking (each fixed size from 1 byte to the whole text, plus
// seeded random ones) must give the same result while keeping the streaming invariants.
#include "tests/model/toolcall/parser_harness.h"

using namespace conclave::test;

TEST_CASE("the tool-call table has at least 40 model outputs", "[toolcall]") {
  CHECK(conclave::test::tool_cases().size() >= 40);
}

TEST_CASE("tool-call table: each output parses to its expected content and calls", "[toolcall]") {
  check_expected<tool_parser>(conclave::test::tool_cases());
}

TEST_CASE("tool-call table: every chunking gives the same result and keeps the invariants",
          "[toolcall]") {
  check_chunkings<tool_parser>(conclave::test::tool_cases());
}

TEST_CASE("random tag soup: same result for every chunking, invariants hold", "[toolcall]") {
  // Fragments of well-formed and broken calls glued at random: no crash, no lost or
  // repeated text, valid JSON arguments, and chunking never changes the outcome.
  static const std::vector<std::string> pieces = {"<tool_call>",
                                                  "</tool_call>",
                                                  "<function=get_weather>",
                                                  "<function=write_file>",
                                                  "<function=nope>",
                                                  "<function=set_config>",
                                                  "</function>",
                                                  "<parameter=city>",
                                                  "<parameter=days>",
                                                  "<parameter=content>",
                                                  "<parameter=config>",
                                                  "<parameter=tags>",
                                                  "<parameter=x>",
                                                  "</parameter>",
                                                  "\n",
                                                  "\n",
                                                  " ",
                                                  "Paris",
                                                  "3",
                                                  "1.5",
                                                  "{'a': (1,)}",
                                                  "[1, \"b\"]",
                                                  "None",
                                                  "é",
                                                  "😀",
                                                  "<",
                                                  "</",
                                                  "<tool",
                                                  "</para",
                                                  "text",
                                                  "\t"};
  const std::vector<tool_spec> tools = test_tools();
  std::mt19937 rng(99);
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1), count(1, 40), step(1, 11);
  size_t failures = 0;
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    if (round % 4 < 2) {
      for (size_t k = count(rng); k > 0; --k) text += pieces[pick(rng)];
    } else {
      // Well-formed calls, then some tags dropped and fragments inserted.
      text = round % 3 == 0 ? "Sure.\n" : "";
      for (size_t k = step(rng) % 3; k > 0; --k) {
        text += conclave::test::well_formed(k % 2 ? "get_weather" : "write_file",
                                            {{k % 2 ? "city" : "path", "Zürich"},
                                             {k % 2 ? "days" : "content", "2\n</parameter>"}}) +
                "\n";
      }
      for (size_t m = step(rng) % 4; m > 0; --m) {
        const size_t at = text.empty() ? 0 : pick(rng) * text.size() / pieces.size();
        const size_t lt = text.find('<', at);
        if (m % 2 == 0 && lt != std::string::npos) {
          text.erase(lt, text.find('>', lt) - lt + 1);
        } else if ((at >= text.size() || (static_cast<unsigned char>(text[at]) & 0xC0) != 0x80)) {
          text.insert(std::min(at, text.size()), pieces[pick(rng)]);
        }
      }
    }
    tool_case c{"soup", text, "", {}};
    if (round % 2 == 1) c.policy = unknown_tool_policy::reject;
    failures += check_soup<tool_parser>(text, tools, c, rng);
  }
  CHECK(failures == 0);
}
