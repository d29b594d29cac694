// Sampling on the device: per row of logits, the request's penalties, temperature, top-k,
// top-p, min-p and the draw, with engine::sampler's semantics and order (its CPU twin is
// engine::sample_spec). Only the tokens come back to the host. Plain C++ header.
//
// How: penalties are scattered per token; temperature and each row's max/argmax run over
// 16 slices of the row. Top-k and top-p remove a prefix of the row's ascending (value, id)
// order (HF sorts stably, so ties go in id order); a row keeps the first entry it retains
// (its cut) and everything below it counts as removed. Rows with a top-k of at most 1024
// find the cut without a sort (radix select of the k-th value, the few larger entries
// sorted in shared memory, ties at the k-th value counted); the others are sorted whole
// (radix sort of (row, value) keys, 16 rows per sort). Then the surviving mass per slice
// (double, min-p applied) and a walk in id order to the first token whose cumulative
// mass exceeds u times the total.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// One row to sample, as the kernels read it.
struct sample_row {
  int32_t logit_row = 0;  ///< row of the logits matrix
  int32_t n = 0;          ///< ids below n are sampled (1..vocab)
  int32_t top_k = 0;      ///< 0: off
  int32_t pen_begin = 0;  ///< first of this row's penalty entries
  int32_t pen_count = 0;
  int32_t sort_slot = -1;    ///< set by device_sampler
  float temperature = 0.0f;  ///< 0: greedy
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  double u = 0.0;  ///< the host's uniform draw in [0, 1)
};

/// A penalty entry (gpu::penalty_entry's layout).
struct sample_penalty {
  int32_t token = 0;
  int32_t repeated = 0;
  float subtract = 0.0f;
};

class device_sampler {
 public:
  /// Workspace for rows of `vocab` logits (sort buffers for kSortRows rows at a time).
  explicit device_sampler(size_t vocab);
  ~device_sampler();
  device_sampler(const device_sampler&) = delete;
  device_sampler& operator=(const device_sampler&) = delete;

  /// Rows with top-k or top-p sorted per radix sort call.
  static constexpr size_t kSortRows = 16;
  /// Device bytes the workspace holds.
  size_t workspace_bytes() const;

  /// Samples `count` rows from `logits` (fp32 rows of `vocab`; the sampled rows are changed
  /// in place) on stream `s`. The tokens are in tokens() once the stream has synchronised;
  /// rows and penalties are copied before this returns. Throws std::invalid_argument for
  /// a row outside the limits, std::runtime_error for a device error.
  void sample(float* logits, const sample_row* rows, size_t count, const sample_penalty* pen,
              size_t pen_count, stream_t s);
  /// Pinned host memory: tokens[i] for rows[i] of the last sample().
  const int32_t* tokens() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave::gpu::cuda
