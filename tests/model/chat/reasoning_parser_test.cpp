// The reasoning / answer split: exact results for the shapes thinking models produce, and
// the same result however the text is chunked.
#include <catch2/catch.hpp>

#include "model/chat/reasoning_parser.h"

using conclave::chat::prompt_opens_thinking;
using conclave::chat::reasoning_parser;

namespace {

struct split {
  std::string reasoning, content;
  bool operator==(const split& o) const { return reasoning == o.reasoning && content == o.content; }
};

std::ostream& operator<<(std::ostream& os, const split& s) {
  return os << "{reasoning: \"" << s.reasoning << "\", content: \"" << s.content << "\"}";
}

void fold(split& s, const std::vector<reasoning_parser::piece>& pieces,
          bool& reasoning_after_content) {
  for (const auto& p : pieces) {
    if (p.reasoning && !s.content.empty()) reasoning_after_content = true;
    (p.reasoning ? s.reasoning : s.content) += p.text;
  }
}

// Whole text in chunks of `chunk` bytes (0: at once).
split run(std::string_view text, bool in_thinking, size_t chunk = 0) {
  reasoning_parser p(in_thinking);
  split s;
  bool late = false;
  if (chunk == 0) {
    fold(s, p.feed(text), late);
  } else {
    for (size_t i = 0; i < text.size(); i += chunk) fold(s, p.feed(text.substr(i, chunk)), late);
  }
  fold(s, p.finish(), late);
  CHECK_FALSE(late);  // reasoning never follows content
  return s;
}

}  // namespace

TEST_CASE("reasoning parser: Qwen3's shapes", "[chat][reasoning]") {
  struct row {
    const char* text;
    bool in_thinking;
    split expected;
  };
  const row rows[] = {
      {"<think>\nLet me add.\n</think>\n\n4", false, {"Let me add.", "4"}},
      {"<think>\n\n</think>\n\nHi", false, {"", "Hi"}},
      {"  <think>a</think>b", false, {"a", "b"}},
      {"Hello <think>x</think>", false, {"", "Hello <think>x</think>"}},  // not at the start
      {"plain answer", false, {"", "plain answer"}},
      {"<think>\ncut off mid thought\n", false, {"cut off mid thought", ""}},  // max_tokens
      {"<thi", false, {"", "<thi"}},                                           // never completed
      {"  ", false, {"", "  "}},
      {"step 1\nstep 2\n</think>\n\nanswer\n", true, {"step 1\nstep 2", "answer\n"}},
      {"</think>answer", true, {"", "answer"}},
      {"a < b </thinking> c </think> d", true, {"a < b </thinking> c", "d"}},
      {"<think>x</think>y</think>z", false, {"x", "y</think>z"}},
      {"<think>\n<tool_call>\n{}\n</tool_call>\n</think>\n\n<tool_call>",
       false,
       {"<tool_call>\n{}\n</tool_call>", "<tool_call>"}},
      {"<think>多语言 🎉\n</think>\n\n答案", false, {"多语言 🎉", "答案"}},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    CHECK(run(r.text, r.in_thinking) == r.expected);
  }
}

TEST_CASE("reasoning parser: every chunking gives the same split", "[chat][reasoning]") {
  const char* texts[] = {"<think>\nLet me add.\n  \n</think>\n\n4 and <think> more",
                         "   <think> a\n</thin k></think>  \n b", "<thinking>not a tag",
                         "\n\n<think>\n\n\n", "x</think>y"};
  for (const char* t : texts) {
    for (bool in_thinking : {false, true}) {
      const split whole = run(t, in_thinking);
      for (size_t chunk = 1; chunk <= 9; ++chunk) {
        INFO(t << " chunk " << chunk << " in_thinking " << in_thinking);
        CHECK(run(t, in_thinking, chunk) == whole);
      }
    }
  }
}

TEST_CASE("prompt_opens_thinking: only the generation prompt's own open block",
          "[chat][reasoning]") {
  CHECK(prompt_opens_thinking("<|im_start|>assistant\n<think>\n"));
  CHECK_FALSE(prompt_opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  CHECK_FALSE(prompt_opens_thinking("<|im_start|>assistant\n"));
  CHECK_FALSE(prompt_opens_thinking("user: what is <think>?<|im_end|>\n<|im_start|>assistant\n"));
}
