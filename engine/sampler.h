// sampler: turns one row of logits into the next token. Order of transforms follows HF
// generate: repetition penalty, presence/frequency penalties (OpenAI), temperature,
// top-k, top-p, min-p, then a draw. The draw for output token n is a pure function of the
// request's seed and n (SplitMix64 at counter n), so a request resumed elsewhere, or a
// step that failed and is run again, draws what it would have drawn.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "engine/sampling_params.h"
#include "gpu/sampling_spec.h"

namespace conclave::engine {

/// Per-sequence sampling: the request's parameters and seed.
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

  /// Picks the next token: argmax when greedy (lowest id on ties), else draw(output.size()).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> prompt,
                 std::span<const int32_t> output) const;
  /// The same with the draw `u` given: the first token, in id order, whose cumulative
  /// mass exceeds u times the total mass.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> prompt,
                 std::span<const int32_t> output, double u) const;

  /// The uniform draw in [0, 1) for output token `index` (53 bits; portable).
  double draw(size_t index) const;

  /// The penalties as per-token entries over ids below `vocab` (distinct tokens in first
  /// seen order, prompt then output); empty when the request has none. transform()
  /// applies exactly these, and a device sampler applies the same list.
  void penalty_entries(std::span<const int32_t> prompt, std::span<const int32_t> output,
                       size_t vocab, std::vector<gpu::penalty_entry>& out) const;

  /// What a device needs to sample like sample(logits.first(vocab_limit), ..., u);
  /// `penalties` must outlive the returned spec. Not for constrained requests.
  gpu::device_sampling device_spec(std::span<const int32_t> prompt, std::span<const int32_t> output,
                                   size_t vocab_limit, double u,
                                   std::vector<gpu::penalty_entry>& penalties) const;

  const sampling_params& params() const { return params_; }

 private:
  sampling_params params_;
  uint64_t seed_;
  mutable std::vector<float> scratch_;
  mutable std::vector<gpu::penalty_entry> penalty_scratch_;
};

/// What a device sampler must return for `spec` over the first spec.vocab_limit logits
/// (the CPU twin of gpu/cuda/sampling): the penalty entries, then sampler's transforms and
/// pick with the spec's draw.
int32_t sample_spec(std::span<const float> logits, const gpu::device_sampling& spec);

/// Applies penalty entries (penalty_entries()) to a row of logits.
void apply_penalties(std::span<float> logits, std::span<const gpu::penalty_entry> entries,
                     float repetition_penalty);

/// argmax, lowest index on ties.
int32_t argmax(std::span<const float> logits);

}  // namespace conclave::engine
