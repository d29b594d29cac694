// memory_plan: the device memory one rank of a replica needs, computed before anything
// loads (docs/cli.md, `conclave plan`). Per device: the weights by dtype (quantized data,
// scales and zeros exactly as gpu/quant_layout.h lays them out, plain matrices in the
// weight dtype, norms and biases fp32), the paged KV cache and how many tokens and
// full-length sequences it holds, the step workspaces the CUDA backend allocates, and an
// estimate for CUDA graphs; then a verdict against the device's budget and, when the
// model does not fit, what would (more ranks, a quantization), found by re-planning.
//
// The budget mirrors the CUDA backend (gpu/cuda/cuda_backend.cpp): weights and the
// buffers made before the KV cache, and the KV cache itself, share
// gpu_memory_utilization x total minus what the device already holds (the CUDA context);
// the step workspaces, grown on the first steps, and the CUDA graphs come out of the
// (1 - utilization) x total the KV cache leaves free. Host-only arithmetic, no CUDA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/model_config.h"

namespace conclave::gpu {

inline constexpr size_t kGiB = size_t{1} << 30;
inline constexpr size_t kMiB = size_t{1} << 20;

/// The CUDA backend's step buffers for steps of up to `rows` tokens (its ensure_workspace
/// sizes each buffer with exactly these numbers).
struct step_buffers {
  size_t x = 0, hn = 0, qkv = 0, attn = 0, proj = 0, router_logits = 0, ids = 0, wts = 0,
         offsets = 0, active = 0, row_token = 0, slot_row = 0, xs = 0, gu = 0, act = 0, dn = 0,
         final_out = 0, logits = 0;

  size_t total() const;
};
/// `elem_bytes`: the weight dtype's (bf16 2, f32 4). `logits` holds logit_rows rows (each
/// sequence's last token; every token only for all_logits callers), at most `rows`.
step_buffers cuda_step_buffers(const model::model_config& c, size_t rows, size_t elem_bytes,
                               size_t logit_rows = SIZE_MAX);
/// The logits of `rows` rows (fp32, the whole vocabulary each).
inline size_t logits_bytes(const model::model_config& c, size_t rows) {
  return rows * static_cast<size_t>(c.vocab_size) * 4;
}

/// Everything a plan depends on.
struct plan_inputs {
  model::model_config model;  ///< its `quant` says how the linear weights are stored
  std::string model_name;     ///< for the verdict line (a preset's name or the folder)
  /// Whether the linear weight `name` is stored quantized (with model.quant's method).
  /// Unset: model.quant.quantized() && model::quantizes_weight(name), what gen-model and
  /// Qwen's FP8 checkpoints do; `conclave plan --model` asks the checkpoint instead.
  std::function<bool(std::string_view)> stored_quantized;
  int ranks = 1;                     ///< GPUs of the replica (expert parallel over more than one)
  size_t device_bytes = 141 * kGiB;  ///< one GPU's memory (H200: 141 GiB)
  /// What the device holds before the model loads (the CUDA context, other processes):
  /// measured (total - free) at start-up, else the estimate below.
  size_t device_used_bytes = 512 * kMiB;
  bool device_used_measured = false;
  double gpu_memory_utilization = 0.90;
  size_t weight_elem_bytes = 2;  ///< plain matrices and the KV cache: bf16 2, f32 4
  bool kv_fp8 = false;           ///< kv_cache_dtype fp8 (gpu::kv_row_bytes)
  int32_t block_size = 16;       ///< KV tokens per block
  int32_t num_kv_blocks = 0;     ///< > 0: the KV cache has exactly this many blocks
  size_t kv_cache_bytes = 0;     ///< > 0: the KV cache takes this much (else what is left)
  int64_t max_model_len = 0;     ///< 0: the model's max_position_embeddings
  int32_t max_num_batched_tokens = 2048;
  int32_t max_num_seqs = 64;
  bool cuda_graphs = true;  ///< decode graphs (a replica of one rank only)
};

/// Weights on one device, by dtype.
struct weight_breakdown {
  size_t quant_data = 0;    ///< fp8 bytes or packed int4 words
  size_t quant_scales = 0;  ///< fp8: fp32 scales; awq: fp16 scales and uint8 zeros
  size_t plain = 0;         ///< matrices in the weight dtype (embeddings, router, lm_head...)
  size_t norms = 0;         ///< fp32 norms and biases
  int64_t params = 0;       ///< logical parameters held

  size_t total() const { return quant_data + quant_scales + plain + norms; }
};

struct memory_plan {
  plan_inputs in;
  int64_t max_model_len = 0;     ///< resolved
  int64_t experts_per_rank = 0;  ///< the largest share of every MoE layer's experts
  weight_breakdown weights;
  size_t fixed_bytes = 0;  ///< cuBLAS workspace, device sampler, RoPE table (before the KV)
  // KV cache.
  size_t kv_bytes_per_token = 0;
  size_t kv_bytes_per_block = 0;
  int32_t kv_blocks = 0;  ///< usable blocks (the backend allocates one scratch block more)
  size_t kv_bytes = 0;    ///< allocated, the scratch block included
  int64_t kv_tokens = 0;
  int64_t full_sequences = 0;  ///< max_model_len sequences the cache holds at once
  size_t one_sequence_kv_bytes = 0;
  // Lazily allocated, out of the reserve.
  size_t workspace_bytes = 0;  ///< step buffers, attention split, expert exchange, graph meta
  size_t graph_bytes = 0;      ///< CUDA graph executables: an estimate
  // Budget.
  size_t budget_bytes = 0;   ///< utilization x total - used: weights, fixed and KV
  size_t reserve_bytes = 0;  ///< (1 - utilization) x total: workspaces and graphs
  size_t total_bytes = 0;    ///< everything planned, the context included

  /// With a bf16 / f32 cache: what an fp8 KV cache would hold in the same memory (the
  /// table, the start-up lines and the verdict's suggestions read it).
  struct kv_alternative {
    size_t kv_bytes = 0;
    int64_t kv_tokens = 0, full_sequences = 0;
    bool fits = false;
  };
  std::optional<kv_alternative> fp8_kv;

  bool fits = false;
  size_t shortfall_bytes = 0;  ///< per device, when it does not fit
  std::string reason;          ///< why not (empty when it fits)
  // Suggestions (only computed when it does not fit).
  std::optional<int> min_ranks;         ///< the fewest GPUs that fit at this quantization
  std::vector<std::string> quant_fits;  ///< quantizations (fp8, awq) that fit on in.ranks
  /// The lowest gpu_memory_utilization (a hundredth at most 0.99) at which it fits as is.
  std::optional<double> min_utilization;

  /// One line: fits, or by how much it does not and what would.
  std::string verdict() const;
  /// A few lines for a log (the start-up plan).
  std::vector<std::string> summary_lines() const;
  /// The readable table `conclave plan` prints.
  std::string table() const;
};

/// Plans `in`; with `suggest`, a plan that does not fit also re-plans for its suggestions.
/// Throws std::invalid_argument for impossible inputs (ranks < 1, max_model_len beyond
/// the model's, utilization outside (0, 1], a zero device).
memory_plan plan_memory(const plan_inputs& in, bool suggest = true);

/// The weights of one device alone (the planner's first step), for tests and tools.
weight_breakdown plan_weights(const plan_inputs& in);

/// `q` with the method's defaults (fp8 128 x 128 blocks, awq groups of 128); "none",
/// "fp8" or "awq", else std::invalid_argument.
model::quant_config default_quant(std::string_view method);

}  // namespace conclave::gpu
