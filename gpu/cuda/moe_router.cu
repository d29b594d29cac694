#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/moe_router.h"

namespace conclave::gpu::cuda {
namespace {

constexpr int kMaxK = 32;
constexpr int kWarps = 4;  // tokens per block, one warp each

// (p, id) beats (q, jd): larger probability, ties to the lower id (the CPU order).
__device__ __forceinline__ bool beats(float p, int id, float q, int jd) {
  return p > q || (p == q && id < jd);
}

// One warp per token: softmax into shared memory, then k rounds of a warp argmax; a taken
// expert's probability is set to -1 (probabilities are >= 0). Lane j keeps the j-th pick.
__global__ void __launch_bounds__(kWarps * 32)
    router_kernel(const float* logits, size_t tokens, int experts, int k, bool normalize,
                  int32_t* ids, float* weights) {
  extern __shared__ float smem[];  // [kWarps][experts]
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const size_t t = static_cast<size_t>(blockIdx.x) * kWarps + static_cast<size_t>(warp);
  if (t >= tokens) return;
  float* p = smem + static_cast<size_t>(warp) * static_cast<size_t>(experts);
  const float* x = logits + t * static_cast<size_t>(experts);
  float mx = -INFINITY;
  for (int e = lane; e < experts; e += 32) mx = fmaxf(mx, x[e]);
  mx = dev::warp_max(mx);
  float sum = 0.0f;
  for (int e = lane; e < experts; e += 32) {
    const float v = expf(x[e] - mx);
    p[e] = v;
    sum += v;
  }
  const float inv = 1.0f / dev::warp_sum(sum);
  for (int e = lane; e < experts; e += 32) p[e] *= inv;
  __syncwarp();
  int my_id = 0;
  float my_p = 0.0f;
  for (int j = 0; j < k; ++j) {
    float bp = -2.0f;
    int bid = 0x7fffffff;
    for (int e = lane; e < experts; e += 32) {
      const float v = p[e];
      if (beats(v, e, bp, bid)) {
        bp = v;
        bid = e;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float op = __shfl_xor_sync(0xffffffffu, bp, o);
      const int oid = __shfl_xor_sync(0xffffffffu, bid, o);
      if (beats(op, oid, bp, bid)) {
        bp = op;
        bid = oid;
      }
    }
    if (lane == j) {
      my_id = bid;
      my_p = bp;
    }
    __syncwarp();
    if (lane == (bid & 31)) p[bid] = -1.0f;  // the owning lane marks it taken
    __syncwarp();
  }
  // The CPU sums the k weights in pick order.
  float total = 0.0f;
  for (int j = 0; j < k; ++j) total += __shfl_sync(0xffffffffu, my_p, j);
  if (lane < k) {
    ids[t * static_cast<size_t>(k) + static_cast<size_t>(lane)] = my_id;
    weights[t * static_cast<size_t>(k) + static_cast<size_t>(lane)] =
        normalize ? my_p / total : my_p;
  }
}

}  // namespace

void router_topk(const float* logits, size_t tokens, size_t experts, size_t k, bool normalize,
                 int32_t* ids, float* weights, stream_t s) {
  if (tokens == 0) return;
  if (k == 0 || k > kMaxK || k > experts || experts > 2048)
    throw std::invalid_argument("router_topk: k must be in [1, min(32, experts)], experts <= 2048");
  const unsigned blocks = static_cast<unsigned>((tokens + kWarps - 1) / kWarps);
  router_kernel<<<blocks, kWarps * 32, kWarps * experts * sizeof(float), s>>>(
      logits, tokens, static_cast<int>(experts), static_cast<int>(k), normalize, ids, weights);
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
