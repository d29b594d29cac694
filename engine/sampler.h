// sampler: turns one row of logits into the next token. Order of transforms follows HF
// generate: repetition penalty, presence/frequency penalties (OpenAI), temperature,
// top-k, top-p, min-p, then a draw from the request's own seeded generator.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "engine/sampling_params.h"

namespace conclave::engine {

/// Per-sequence sampling state: its random generator and output token counts.
class sampler {
 public:
  explicit sampler(const sampling_params& params);

  /// Applies the penalties and warpers to `logits` in place; removed tokens become -inf.
  /// `prompt` and `output` are the sequence's tokens so far.
  void transform(std::span<float> logits, std::span<const int32_t> prompt,
                 std::span<const int32_t> output) const;

  /// The distribution sampling draws from (softmax of transformed logits); for tests.
  std::vector<double> distribution(std::span<const float> logits, std::span<const int32_t> prompt,
                                   std::span<const int32_t> output) const;

  /// Picks the next token: argmax when greedy (lowest id on ties), else a draw.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> prompt,
                 std::span<const int32_t> output);

  const sampling_params& params() const { return params_; }

  /// Advances the generator past the draws of `n` earlier samples (one per non-greedy
  /// token), so a request resumed elsewhere draws what it would have drawn.
  void skip_draws(size_t n) {
    if (!params_.greedy()) rng_.discard(n);
  }

 private:
  sampling_params params_;
  std::mt19937_64 rng_;
  mutable std::vector<float> scratch_;
};

/// argmax, lowest index on ties.
int32_t argmax(std::span<const float> logits);

}  // namespace conclave::engine
