// Splits a thinking model's output (Qwen3: `<think>\nREASONING\n</think>\n\nANSWER`) into
// reasoning and answer text as it streams, for OpenAI's `reasoning_content` (as vLLM and
// SGLang send it). Plain C++; the text pipeline feeds it decoded text before the
// tool-call parser, which sees the answer only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace conclave::chat {

/// Whether `prompt` ends inside an open `<think>` block (the template opened it for the
/// model, as Qwen3's thinking-only templates do): the output then starts as reasoning.
bool prompt_opens_thinking(std::string_view prompt);

class reasoning_parser {
 public:
  struct piece {
    bool reasoning = false;  // reasoning_content, else content
    std::string text;
  };

  /// `in_thinking`: the output starts inside a `<think>` block (prompt_opens_thinking).
  /// Otherwise it is reasoning only if it begins, after optional whitespace, with `<think>`;
  /// anything else makes the whole output content (a later `<think>` is text).
  explicit reasoning_parser(bool in_thinking);

  /// The next decoded text (split anywhere). Held back: a possible partial `<think>` or
  /// `</think>` tag, and whitespace that may turn out to end the reasoning.
  std::vector<piece> feed(std::string_view text);
  /// End of output: releases what is held. An unclosed block's text is all reasoning.
  std::vector<piece> finish();

 private:
  enum class state { start, reasoning, after_reasoning, content };
  void emit(std::vector<piece>& out, bool reasoning, std::string text);

  state state_;
  bool reasoning_started_ = false;  // some reasoning text was sent (leading whitespace ends)
  std::string held_;                // undecided text
};

}  // namespace conclave::chat
