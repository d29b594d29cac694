// cuda_weights: a model's tensors in device memory, arranged for the CUDA forward (q/k/v
// fused into one matrix; every expert's gate and up fused and all experts of a layer in
// one buffer). Matrices are bf16 or fp32 (`t`); norms and biases are always fp32.
// Filled from a mapped checkpoint (converted on upload) or generated on the device.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "gpu/cuda/device_buffer.h"
#include "gpu/cuda/moe_gemv.h"
#include "gpu/cuda/quant_ops.h"
#include "model/model_config.h"

namespace conclave::model {
class checkpoint;
}

namespace conclave::gpu::cuda {

/// A projection matrix [n, k] (or a stack of them: experts' slots, row after row): plain
/// `t` in `data`, or quantized in the device layout of gpu/quant_layout.h (q.method fp8 /
/// awq: data, scales, zeros).
struct qmatrix {
  quant_layout q;
  device_buffer data, scales, zeros;

  bool quantized() const { return q.method != model::quant_method::none; }
  size_t bytes() const { return data.bytes() + scales.bytes() + zeros.bytes(); }
  qview view() const { return {q, data.get(), scales.get(), zeros.get()}; }
  /// Allocates `rows` rows of `k` inputs (plain: of `t`).
  void allocate(size_t rows, size_t k, elem t);
};

struct cuda_layer {
  device_buffer input_norm, post_norm, q_norm, k_norm;  ///< fp32
  qmatrix qkv;
  device_buffer qkv_bias;  ///< [q + 2 kv, hidden]; bias fp32, empty unless attention_bias
  qmatrix o;
  device_buffer o_bias;  ///< [hidden, q]
  bool moe = false;
  device_buffer router;  ///< [experts, hidden]
  qmatrix gate_up;       ///< moe: [experts, 2 m, hidden]; dense: [2 i, hidden]
  qmatrix down;          ///< moe: [experts, hidden, m]; dense: [hidden, i]
  /// A rank of an expert-parallel replica: the experts it holds, ascending; gate_up and
  /// down then hold only these, slot i being expert experts[i]. Empty with every expert
  /// loaded (one rank: slot e is expert e).
  std::vector<int32_t> experts;
  bool sparse = false;  ///< whether `experts` lists the slots (expert-parallel layout)
};

struct cuda_weights {
  elem t = elem::bf16;
  /// The projections' device layout when any is quantized (method none: all plain).
  quant_layout quant;
  device_buffer embed;  ///< [vocab, hidden]
  device_buffer final_norm;
  device_buffer lm_head;  ///< empty when tied
  std::vector<cuda_layer> layers;
  size_t bytes = 0;  ///< device bytes of all weights

  const void* output_matrix() const { return lm_head.get() ? lm_head.get() : embed.get(); }
};

/// Rows [row0, row0 + rows) of `w` ([., k]) as a plain `t` matrix: a pointer into `w`
/// when it is plain, else those rows dequantized into `scratch` (at least rows * k of `t`)
/// on stream `s` (the caller orders the scratch's reuse on that stream).
const void* plain_rows(const qmatrix& w, size_t row0, size_t rows, size_t k, elem t,
                       const device_buffer& scratch, stream_t s);

/// Points `a`'s weight fields (w, q, scales, zeros) at `w`, plain or quantized.
void set_gemv_weights(gemv_args& a, const qmatrix& w);

/// Bytes of `t` the dequantization scratch needs for the largest projection of `c`
/// (0 when `w` keeps nothing quantized).
size_t dequant_scratch_bytes(const model::model_config& c, const cuda_weights& w, elem t);

/// Which routed experts a rank loads: (layer, expert) -> whether this rank holds it.
using cuda_expert_filter = std::function<bool(int64_t layer, int64_t expert)>;

/// Uploads every tensor `ckpt`'s config needs, converting to `t` (norms to fp32). With a
/// filter, a MoE layer holds only the experts it accepts (cuda_layer::experts).
/// A quantized checkpoint with t = bf16 keeps each fused projection quantized when all its
/// parts are stored with the checkpoint's method (repacked on the host to the device
/// layout); a fused matrix whose parts disagree is dequantized to `t` (logged). With t =
/// f32 (the exactness mode) every projection is dequantized to fp32 on load. A folder of
/// weights generated on the device (ckpt.random_weights()) gets random_cuda_weights' values;
/// so do the experts reload_cuda_experts adds.
cuda_weights load_cuda_weights(const model::checkpoint& ckpt, elem t,
                               const cuda_expert_filter& holds = {});

/// Switches MoE layer `layer` of `w` (sparse) to hold `experts` (ascending): experts kept
/// are copied on the device, gained ones loaded from `ckpt`, lost ones freed with the old
/// buffers. Nothing changes when it throws.
void reload_cuda_experts(const model::checkpoint& ckpt, cuda_weights& w, size_t layer,
                         std::vector<int32_t> experts);

/// Generates every tensor of `c` on the device: the values gen-model writes for `seed`
/// and `init_std` in its default dtype (bf16; norms kept in fp32 hold bf16 values). With
/// c.quant fp8 or awq (and t = bf16) the projections gen-model quantizes are quantized on
/// the device per (row, group) of c.quant's input block (fp8 block_in, awq group_size): not
/// gen-model's values then (its fp8 scales are per 128 x 128 block), but the same layout and bytes.
/// `holds` (may be empty: all) picks the experts made, as load_cuda_weights does; an
/// expert's values do not depend on which others are made.
cuda_weights random_cuda_weights(const model::model_config& c, elem t, uint64_t seed,
                                 float init_std, const cuda_expert_filter& holds = {});

}  // namespace conclave::gpu::cuda
