// attention_timer: CUDA events around each layer's attention kernels in an eager step
// (`bench long` reads the sum as step_timing::attention_ms). Plain C++ header.
#pragma once

#include <cstddef>
#include <vector>

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

class attention_timer {
 public:
  attention_timer() = default;
  attention_timer(const attention_timer&) = delete;
  attention_timer& operator=(const attention_timer&) = delete;
  ~attention_timer();

  /// Turns timing on or off (events for `layers` layers made on first use).
  void enable(bool on, size_t layers);
  bool enabled() const { return on_; }
  /// Whether the step being queued records its events (only eager steps, when enabled).
  void arm(bool armed) { armed_ = armed && on_; }
  void before(size_t layer, stream_t s);
  void after(size_t layer, stream_t s);
  /// The armed step's attention time, summed over the layers (its stream has synced).
  double total_ms() const;

 private:
  bool on_ = false, armed_ = false;
  std::vector<void*> events_;  ///< cudaEvent_t: before / after each layer's attention
};

}  // namespace conclave::gpu::cuda
