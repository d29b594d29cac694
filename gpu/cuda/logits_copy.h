// The host side of a step's logits: which sequences the device sampler draws, and the copy
// of the other sequences' logits rows into step_output. Plain C++ header.
#pragma once

#include <span>
#include <vector>

#include "gpu/backend.h"
#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// Whether sequence `s`'s token is drawn on the device.
inline bool device_sampled(const step_sequence& s) {
  return s.sample != nullptr && !s.all_logits;
}

/// Queues copies on `s` of the logits rows of the sequences sampled on the host (runs of
/// them in one copy) from `logits` ([rows, vocab] fp32 on the device; sequence i owns rows
/// [row_begin[i], row_begin[i + 1])) into out.logits, and lays out out.row_begin over
/// what is copied. The caller synchronizes `s` before reading out.logits.
void copy_host_sampled_logits(std::span<const step_sequence> batch,
                              const std::vector<size_t>& row_begin, const float* logits,
                              size_t vocab, step_output& out, stream_t s);

}  // namespace conclave::gpu::cuda
