// The device sampler's rows from the engine's sampling specs. C++20 (std::span through
// gpu/sampling_spec.h): for the backend and tests, not for .cu files.
#pragma once

#include <algorithm>
#include <vector>

#include "gpu/cuda/sampling.h"
#include "gpu/sampling_spec.h"

namespace conclave::gpu::cuda {

/// Appends the row that samples `d` from logits row `logit_row` (of a vocabulary of
/// `vocab` ids) and its penalty entries.
inline void append_sample_row(const device_sampling& d, int32_t logit_row, int32_t vocab,
                              std::vector<sample_row>& rows, std::vector<sample_penalty>& pen) {
  sample_row r;
  r.logit_row = logit_row;
  r.n = d.vocab_limit > 0 ? std::min(d.vocab_limit, vocab) : vocab;
  r.top_k = d.top_k;
  r.temperature = d.temperature;
  r.top_p = d.top_p;
  r.min_p = d.min_p;
  r.repetition_penalty = d.repetition_penalty;
  r.u = d.u;
  r.pen_begin = static_cast<int32_t>(pen.size());
  r.pen_count = static_cast<int32_t>(d.penalties.size());
  for (const penalty_entry& e : d.penalties) pen.push_back({e.token, e.repeated, e.subtract});
  rows.push_back(r);
}

}  // namespace conclave::gpu::cuda
