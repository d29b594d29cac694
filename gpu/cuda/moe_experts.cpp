#include "gpu/cuda/moe_experts.h"

#include <algorithm>

#include "gpu/cuda/check.h"
#include "gpu/cuda/gemm.h"
#include "gpu/cuda/gemv_decode.h"
#include "gpu/cuda/moe_gemv.h"
#include "gpu/cuda/moe_permute.h"
#include "gpu/cuda/swiglu.h"

namespace conclave::gpu::cuda {
namespace {

/// gate/up's launch arguments (x through row_token: no gathered copy).
gemv_args gate_up_args(const expert_rows& a) {
  gemv_args g;
  g.x = a.x;
  g.x_rows = a.row_token;
  set_gemv_weights(g, *a.gate_up);
  g.t = a.t;
  g.offsets = a.offsets;
  g.active = a.active;
  g.experts = a.experts;
  g.grid_experts = std::min(a.experts, a.rows);  // one block row per expert with rows
  g.max_rows = a.max_rows;
  g.y = a.gu;
  g.n = 2 * a.m;
  g.k = a.h;
  return g;
}

}  // namespace

const char* grouped_experts(const expert_rows& a, size_t tokens, bool tensor_cores, bool fuse,
                            stream_t s) {
  gemv_args g = gate_up_args(a);
  const char* kernels;
  if (fuse && tensor_cores && tokens >= kExpertMmaMinTokens && grouped_mma_swiglu_ok(g)) {
    grouped_mma_swiglu(g, a.act, s);
    kernels = "tensor-core grouped GEMMs, SwiGLU in gate/up's";
  } else {
    kernels = grouped_matmul(g, tokens, tensor_cores, s);
    swiglu(a.gu, a.rows, a.m, a.act, a.t, s);
  }
  g.x = a.act;
  g.x_rows = nullptr;
  set_gemv_weights(g, *a.down);
  g.y = a.dn;
  g.n = a.h;
  g.k = a.m;
  grouped_matmul(g, tokens, tensor_cores, s);
  return kernels;
}

void gemm_experts(const expert_rows& a, blas& b, int32_t* host_off, void* xs,
                  const device_buffer& dq, stream_t s) {
  const size_t E = a.experts, h = a.h, m = a.m, es = elem_size(a.t);
  CONCLAVE_CUDA_CHECK(
      cudaMemcpyAsync(host_off, a.offsets, (E + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost, s));
  gather_rows(a.x, a.t, a.row_token, a.rows, h, xs, s);
  CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(s));
  // Each expert's run of rows [b, b + n) through `go`.
  auto per_expert = [&](auto&& go) {
    for (size_t e = 0; e < E; ++e) {
      const size_t r0 = static_cast<size_t>(host_off[e]),
                   n = static_cast<size_t>(host_off[e + 1]) - r0;
      if (n > 0) go(e, r0, n);
    }
  };
  per_expert([&](size_t e, size_t r0, size_t n) {
    b.linear(static_cast<char*>(xs) + r0 * h * es,
             plain_rows(*a.gate_up, e * 2 * m, 2 * m, h, a.t, dq, s), a.t, a.gu + r0 * 2 * m, n,
             2 * m, h);
  });
  swiglu(a.gu, a.rows, m, a.act, a.t, s);
  per_expert([&](size_t e, size_t r0, size_t n) {
    b.linear(static_cast<char*>(a.act) + r0 * m * es, plain_rows(*a.down, e * h, h, m, a.t, dq, s),
             a.t, a.dn + r0 * h, n, h, m);
  });
}

bool fused_token_experts(const expert_rows& a, const int32_t* ids, const int32_t* slot_row,
                         const float* weights, size_t k, float* out, stream_t s) {
  gemv_args g = gate_up_args(a);
  g.max_rows = 1;
  down_combine_args d;
  d.act = a.act;
  d.w = a.down->data.get();
  d.t = a.t;
  d.ids = ids;
  d.slot_row = slot_row;
  d.weights = weights;
  d.tokens = 1;
  d.k = k;
  d.n = a.h;
  d.m = a.m;
  d.out = out;
  if (a.down->quantized() || !row_gemv_ok(g) || !down_combine_ok(d)) return false;
  row_gemv_swiglu(g, a.act, s);
  down_combine(d, s);
  return true;
}

}  // namespace conclave::gpu::cuda
