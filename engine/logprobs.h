// logprobs: the log-probability of a sampled token and its strongest alternatives, as
// OpenAI's `logprobs` / `top_logprobs` report them. Computed from the model's raw logits
// (log-softmax before temperature, penalties and truncation), as vLLM does by default.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace conclave::engine {

/// Largest number of alternatives a request may ask for per token.
inline constexpr int32_t max_top_logprobs = 20;

struct token_logprobs {
  float logprob = 0.0f;                        ///< of the sampled token
  std::vector<std::pair<int32_t, float>> top;  ///< best first; lower id first on ties
};

/// log_softmax(logits)[chosen] and the `top_n` largest entries. `chosen` must index
/// `logits`; a -inf logit gives -inf (clients see it as the most negative float).
token_logprobs compute_logprobs(std::span<const float> logits, int32_t chosen, int32_t top_n);

}  // namespace conclave::engine
