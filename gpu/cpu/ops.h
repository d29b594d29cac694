// CPU reference ops of the Qwen3 forward pass, in fp32. Each is the CPU twin that the
// CUDA kernels are tested against. Row-major throughout; shapes in the comments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace conclave::gpu::cpu {

class thread_pool;

/// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w        x, out: [rows, dim]; w: [dim]
void rms_norm(const float* x, const float* w, float* out, size_t rows, size_t dim, float eps);

/// y[m, n] = x[m, k] · w[n, k]^T (+ bias[n])            OpenBLAS sgemm / sgemv
/// With a pool, the output columns are split over its threads, each calling OpenBLAS on
/// its slice: OpenBLAS itself runs single-threaded (see single_threaded_blas()).
void linear(const float* x, const float* w, const float* bias, float* y, size_t m, size_t n,
            size_t k, thread_pool* pool = nullptr);

/// Makes OpenBLAS run every call on its caller's thread. Its own thread server is not
/// safe here: a fork() elsewhere in the process (the tool sandbox starts processes) runs
/// OpenBLAS's fork handler, which can leave a threaded call waiting for ever.
void single_threaded_blas();

/// Rotates x[row, head, :] in place by position positions[row] (rotate-half layout).
/// x: [rows, row_stride] with heads of head_dim starting at column 0. cos and sin are
/// multiplied by `scale` (yarn's attention scaling) first, as transformers does.
void apply_rope(float* x, size_t rows, size_t row_stride, size_t heads, size_t head_dim,
                const int32_t* positions, const float* inv_freq, float scale = 1.0f);

/// out[r, j] = silu(gate_up[r, j]) * gate_up[r, m + j]   gate_up: [rows, 2m]; out: [rows, m]
void swiglu(const float* gate_up, float* out, size_t rows, size_t m);

/// In-place numerically stable softmax over n values.
void softmax(float* x, size_t n);

/// Router: softmax over experts (fp32), top-k (ties to the lower id), optional
/// renormalisation. logits: [tokens, experts] -> ids, weights: [tokens, k].
void router_topk(const float* logits, size_t tokens, size_t experts, size_t k, bool normalize,
                 int32_t* ids, float* weights);

/// One layer's paged KV cache: blocks of [block_size, kv_heads, head_dim] keys and values.
struct paged_kv {
  float* k = nullptr;
  float* v = nullptr;
  int32_t block_size = 16;
  int32_t kv_heads = 0;
  int32_t head_dim = 0;
  /// Sliding window W of this layer (0: full causal): a query at position p reads only
  /// the keys at p - W < j <= p, and no block table entry of a block wholly before that.
  int32_t window = 0;
  /// fp8 KV cache (the CUDA backend's --kv-cache-dtype fp8, emulated): each written key
  /// and value row of one KV head is stored as e4m3(x / s) * s, s = amax / 448 over the
  /// head's values (1 when all are zero): what the device reads back from its fp8 bytes
  /// and per-(token, head) scale.
  bool fp8 = false;
};

/// The fp8 KV rounding of one head's `n` values, in place (paged_kv::fp8); returns s.
float fp8_kv_round(float* x, size_t n);

/// A run of consecutive tokens of one sequence for attention.
struct attention_seq {
  size_t first_row = 0;    ///< row of its first token in q / out
  int32_t num_tokens = 0;  ///< tokens run this step
  int32_t num_cached = 0;  ///< position of the first token
  std::span<const int32_t> block_table;
};

/// Writes k_new/v_new ([rows, kv_heads*head_dim], rows at positions num_cached+i) into the
/// cache slots given by each sequence's block table.
void kv_cache_write(const paged_kv& kv, std::span<const attention_seq> seqs, const float* k_new,
                    const float* v_new, size_t kv_row_stride);

/// Causal GQA attention reading keys/values through block tables (within kv.window).
/// q: [rows, q_row_stride] (heads × head_dim at column 0); out: [rows, heads*head_dim].
void paged_attention(const paged_kv& kv, std::span<const attention_seq> seqs, const float* q,
                     size_t q_row_stride, size_t heads, float* out, thread_pool* pool);

}  // namespace conclave::gpu::cpu
