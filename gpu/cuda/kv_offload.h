// kv_offload: the CUDA backend's host tier of the KV cache. Preempted sequences' blocks
// are copied into pinned host memory and back (backend::transfer_kv) on a side stream:
// ordered after the compute stream's work so far, and the compute stream waits for them
// before its next kernel, so the host thread never blocks on a copy.
#pragma once

#include <cstddef>

#include "gpu/backend.h"
#include "gpu/cuda/common.h"
#include "gpu/cuda/device_buffer.h"

namespace conclave::gpu::cuda {

/// Where a block lives in the device cache: block b's keys of layer l start at
/// base + 2 l * layer_pitch + b * chunk, its values at base + (2 l + 1) * layer_pitch +
/// b * chunk (chunk: one block of one layer's keys, in bytes).
struct kv_cache_layout {
  char* base = nullptr;
  size_t layer_pitch = 0;
  size_t chunk = 0;
  size_t layers = 0;
};

class kv_offload {
 public:
  /// Pins host_blocks x (2 x layers x chunk) bytes.
  kv_offload(size_t host_blocks, const kv_cache_layout& layout);
  ~kv_offload();
  kv_offload(const kv_offload&) = delete;
  kv_offload& operator=(const kv_offload&) = delete;

  /// Enqueues `t` (checked by the caller): to_host copies, then to_device, on the side
  /// stream after `compute`'s queued work; `compute` waits for them.
  void run(const kv_transfer& t, stream_t compute);

 private:
  kv_cache_layout layout_;
  size_t block_bytes_ = 0;
  pinned_buffer host_;
  stream_t side_ = nullptr;
  void* before_ = nullptr;  ///< cudaEvent_t: the compute stream's work so far
  void* after_ = nullptr;   ///< cudaEvent_t: the copies
};

}  // namespace conclave::gpu::cuda
