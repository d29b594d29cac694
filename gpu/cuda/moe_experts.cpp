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

/// down's launch arguments from gate/up's (x: the SwiGLU output).
gemv_args down_args(gemv_args g, const expert_rows& a) {
  g.x = a.act;
  g.x_rows = nullptr;
  set_gemv_weights(g, *a.down);
  g.y = a.dn;
  g.n = a.h;
  g.k = a.m;
  return g;
}

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
  g.qp = a.qp;
  return g;
}

}  // namespace

const char* grouped_experts(const expert_rows& a, size_t tokens, bool tensor_cores, bool fuse,
                            stream_t s) {
  gemv_args g = gate_up_args(a);
  const char* kernels;
  if (fuse && tensor_cores && tokens >= expert_mma_min_tokens(g) && grouped_mma_swiglu_ok(g) &&
      grouped_mma_chosen(g)) {
    grouped_mma_swiglu(g, a.act, s);
    kernels = "tensor-core grouped GEMMs, SwiGLU in gate/up's";
  } else {
    kernels = grouped_matmul(g, tokens, tensor_cores, s);
    swiglu(a.gu, a.rows, a.m, a.act, a.t, s);
  }
  grouped_matmul(down_args(g, a), tokens, tensor_cores, s);
  return kernels;
}

const char* gemm_experts(const expert_rows& a, blas& b, int32_t* host_off, void* xs,
                         const device_buffer& dq, stream_t s, const light_experts* light) {
  const size_t E = a.experts, h = a.h, m = a.m, es = elem_size(a.t);
  CONCLAVE_CUDA_CHECK(
      cudaMemcpyAsync(host_off, a.offsets, (E + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost, s));
  CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(s));
  gemv_args g = gate_up_args(a);
  // Light experts run gate/up and down on the tensor-core GEMM: both must take them.
  const bool grouped =
      light != nullptr && grouped_mma_chosen(g) && grouped_mma_chosen(down_args(g, a));
  // The light experts' list (ascending) and their most rows.
  size_t lights = 0, heavies = 0, most = 0;
  auto is_light = [&](size_t n) { return grouped && n <= kLightExpertRows; };
  for (size_t e = 0; e < E; ++e) {
    const size_t n = static_cast<size_t>(host_off[e + 1] - host_off[e]);
    if (n == 0) continue;
    if (is_light(n)) {
      light->host[lights++] = static_cast<int32_t>(e);
      most = std::max(most, n);
    } else {
      ++heavies;
    }
  }
  // Each heavy expert's run of rows [b, b + n) through `go`.
  auto per_heavy = [&](auto&& go) {
    for (size_t e = 0; e < E; ++e) {
      const size_t r0 = static_cast<size_t>(host_off[e]),
                   n = static_cast<size_t>(host_off[e + 1]) - r0;
      if (n > 0 && !is_light(n)) go(e, r0, n);
    }
  };
  // cuBLAS reads contiguous rows: only heavy experts need the gathered copy (the grouped
  // kernel reads x through row_token).
  if (heavies > 0) gather_rows(a.x, a.t, a.row_token, a.rows, h, xs, s);
  if (lights > 0) {
    CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(light->device, light->host, lights * sizeof(int32_t),
                                        cudaMemcpyHostToDevice, s));
    g.active = light->device;
    g.grid_experts = lights;
    g.max_rows = most;
    grouped_mma(g, s);
  }
  per_heavy([&](size_t e, size_t r0, size_t n) {
    b.linear(static_cast<char*>(xs) + r0 * h * es,
             plain_rows(*a.gate_up, e * 2 * m, 2 * m, h, a.t, dq, s), a.t, a.gu + r0 * 2 * m, n,
             2 * m, h);
  });
  swiglu(a.gu, a.rows, m, a.act, a.t, s);
  if (lights > 0) grouped_mma(down_args(g, a), s);
  per_heavy([&](size_t e, size_t r0, size_t n) {
    b.linear(static_cast<char*>(a.act) + r0 * m * es, plain_rows(*a.down, e * h, h, m, a.t, dq, s),
             a.t, a.dn + r0 * h, n, h, m);
  });
  if (lights == 0) return "cuBLAS GEMM per expert (host sync)";
  return heavies == 0
             ? "tensor-core grouped GEMMs (host sync: every expert light)"
             : "tensor-core grouped GEMMs for light experts, cuBLAS GEMM for heavy (host sync)";
}

bool fused_token_experts(const expert_rows& a, const int32_t* ids, const int32_t* slot_row,
                         const float* weights, size_t k, float* out, stream_t s) {
  gemv_args g = gate_up_args(a);
  g.max_rows = 1;
  down_combine_args d;
  d.act = a.act;
  d.w = a.down->data.get();
  d.t = a.t;
  d.q = a.down->q;
  d.scales = a.down->scales.get();
  d.zeros = a.down->zeros.get();
  d.ids = ids;
  d.slot_row = slot_row;
  d.weights = weights;
  d.tokens = 1;
  d.k = k;
  d.n = a.h;
  d.m = a.m;
  d.out = out;
  d.quant_row_mma = a.qp.row_mma;
  d.ids_settled = true;  // gate/up (row_gemv_swiglu) runs between ids' writer and down
  if (!row_gemv_ok(g) || !down_combine_ok(d)) return false;
  // Quantized weights: the row kernels unless switched off, or the tensor-core GEMM asked
  // for from one token (CONCLAVE_QUANT_MMA_MIN_ROWS=1).
  if ((a.gate_up->quantized() || a.down->quantized()) && (!a.qp.rows || a.qp.mma_min == 1))
    return false;
  row_gemv_swiglu(g, a.act, s);
  down_combine(d, s);
  return true;
}

}  // namespace conclave::gpu::cuda
