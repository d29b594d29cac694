// sampling_params: how a request wants its next token chosen (HF / OpenAI semantics).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace conclave::engine {

namespace constrained {
class token_constraint;
}

struct sampling_params {
  float temperature = 1.0f;         ///< 0 (or below 1e-5) = greedy
  int32_t top_k = 0;                ///< 0 = off
  float top_p = 1.0f;               ///< 1 = off
  float min_p = 0.0f;               ///< 0 = off
  float repetition_penalty = 1.0f;  ///< HF: over prompt + output; 1 = off
  float presence_penalty = 0.0f;    ///< OpenAI: over output tokens
  float frequency_penalty = 0.0f;   ///< OpenAI: over output tokens
  std::optional<uint64_t> seed;     ///< same seed, same tokens
  int32_t max_tokens = 16;
  std::vector<int32_t> stop_token_ids;
  /// OpenAI's logit_bias: added to the token's logit before sampling (after the repetition
  /// penalty, with the presence/frequency penalties), -100 to 100; on host and device.
  std::vector<std::pair<int32_t, float>> logit_bias;
  bool ignore_eos = false;
  /// -1: no logprobs; else report the sampled token's logprob and this many alternatives.
  int32_t logprobs = -1;
  /// Non-zero: the request is one of a group sharing its prompt (the n choices of one
  /// OpenAI request). The first of a group an engine receives runs its prefill; the others
  /// wait for it and then find the prompt in the prefix cache (engine/prefill_groups.h).
  uint64_t prefill_group = 0;
  /// When set, only tokens the constraint allows are sampled (disallowed logits become
  /// -inf before any other transform), e.g. a forced tool call; shared, immutable.
  std::shared_ptr<const constrained::token_constraint> constraint;

  /// Temperatures below 1e-5 sample greedily (as vLLM does): dividing by them overflows.
  bool greedy() const { return temperature < 1e-5f; }
  /// Empty when valid, else a message naming the field ("temperature must be >= 0").
  std::string validate() const;
};

}  // namespace conclave::engine
