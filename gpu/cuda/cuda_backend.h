// The CUDA backend: one GPU, weights and paged KV cache in device memory, own kernels for
// everything but the GEMMs (cuBLAS). Plain C++ header (no CUDA includes).
#pragma once

#include <memory>
#include <string>

#include "gpu/backend.h"

namespace conclave::gpu::cuda {

/// Device time of the last forward step (CUDA events).
struct step_timing {
  double forward_ms = 0;    ///< embedding to logits, on the device
  double total_ms = 0;      ///< forward() wall time incl. metadata upload and the logits copy
  double sample_ms = 0;     ///< device sampling and the logits copy, after the forward
  size_t rows_sampled = 0;  ///< sequences whose token was drawn on the device
  size_t experts_run = 0;   ///< routed-expert GEMM pairs run, summed over the layers
  /// With set_attention_timing(true), outside graphs: the layers' attention kernels
  /// (prefill tiles and paged attention), summed, from CUDA events around them; else 0.
  double attention_ms = 0;
};

/// One MoE layer's routed part timed alone (`conclave bench moe`).
struct moe_layer_timing {
  double us = 0;           ///< mean device time per run
  size_t experts_run = 0;  ///< experts that got rows
  bool graph = false;      ///< replayed as a CUDA graph (else launched, host syncs included)
  std::string path;        ///< the kernels that ran, as the step chose them
};

class cuda_backend_api : public backend {
 public:
  virtual step_timing last_timing() const = 0;
  /// Bytes of weights on the device.
  virtual size_t weight_bytes() const = 0;
  /// Turns the fast kernels (backend option cuda_fast_paths) on or off.
  virtual void set_fast_paths(bool on) = 0;
  /// Turns decode-step CUDA graphs on or off (backend option cuda_graphs sets the start);
  /// graphs only run while the fast paths are on.
  virtual void set_cuda_graphs(bool on) = 0;
  /// Whether the last forward step was a graph replay.
  virtual bool last_step_was_graph() const = 0;
  /// Times each layer's attention with CUDA events (step_timing::attention_ms; `bench
  /// long`); off by default.
  virtual void set_attention_timing(bool on) = 0;
  /// The first MoE layer's routed part (router projection, top-k and permutation, the
  /// experts, the weighted combine) on `tokens` rows of random normalized input, with the
  /// kernels a step of that many tokens would use; mean over `iters` runs, replayed as a
  /// CUDA graph where a decode step would be one. Throws without a MoE layer.
  virtual moe_layer_timing time_moe_layer(size_t tokens, int iters) = 0;
};

/// With an expert-parallel `rank`: only this rank's experts are loaded and every MoE layer
/// exchanges its rows with the other ranks through `rank.comm` (host buffers, Gloo:
/// staged through pinned memory; device buffers, NCCL: where they are).
std::unique_ptr<cuda_backend_api> make_cuda_backend(const model::checkpoint& ckpt,
                                                    const backend_options& opts,
                                                    rank_context rank = {});

/// Random weights generated on the device for `c` (gen-model's values for seed/std); with
/// an expert-parallel `rank`, only its experts. Such a rank cannot change its placement
/// (no checkpoint to load experts from).
std::unique_ptr<cuda_backend_api> make_cuda_backend_random(const model::model_config& c,
                                                           const backend_options& opts,
                                                           uint64_t seed, float init_std,
                                                           rank_context rank = {});

}  // namespace conclave::gpu::cuda
