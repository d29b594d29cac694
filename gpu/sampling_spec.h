// sampling_spec: what a backend needs to sample a sequence's next token on its device.
// Shared by the backend interface and engine::sampler (which builds it); no other includes.
#pragma once

#include <cstdint>
#include <span>

namespace conclave::gpu {

/// One token whose logit a request's penalties change before sampling: when `repeated`,
/// HF's repetition penalty (s < 0 ? s * p : s / p), then `subtract` (OpenAI's presence +
/// frequency penalty for output tokens, else 0). Built by engine::sampler.
struct penalty_entry {
  int32_t token = 0;
  int32_t repeated = 0;
  float subtract = 0.0f;
};

/// How a sequence's next token is drawn when the backend samples on its device: the
/// request's sampling_params without what needs the host (a grammar constraint, logprobs).
/// The transforms and their order are engine::sampler's; `u` is the request's draw for
/// this token (sampler::draw), so every backend picks the same token for it.
struct device_sampling {
  float temperature = 0.0f;  ///< 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  double u = 0.0;           ///< uniform in [0, 1); unused when greedy
  int32_t vocab_limit = 0;  ///< only ids below this are sampled (0: the whole vocabulary)
  std::span<const penalty_entry> penalties;  ///< distinct tokens, ids below vocab_limit
};

}  // namespace conclave::gpu
