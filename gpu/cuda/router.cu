#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/router.h"

namespace conclave::gpu::cuda {
namespace {

constexpr int kMaxK = 32;

__global__ void router_kernel(const float* logits, size_t experts, size_t k, bool normalize,
                              int32_t* ids, float* weights) {
  extern __shared__ float p[];  // [experts]
  __shared__ float scratch[32];
  const size_t t = blockIdx.x;
  const float* x = logits + t * experts;
  float mx = -INFINITY;
  for (size_t e = threadIdx.x; e < experts; e += blockDim.x) mx = fmaxf(mx, x[e]);
  mx = dev::block_max(mx, scratch);
  float sum = 0.0f;
  for (size_t e = threadIdx.x; e < experts; e += blockDim.x) {
    p[e] = expf(x[e] - mx);
    sum += p[e];
  }
  sum = dev::block_sum(sum, scratch);
  const float inv = 1.0f / sum;
  for (size_t e = threadIdx.x; e < experts; e += blockDim.x) p[e] *= inv;
  __syncthreads();
  if (threadIdx.x != 0) return;
  // k is small: k serial passes, ties to the lower id (the CPU order).
  int32_t chosen[kMaxK];
  float total = 0.0f;
  for (size_t j = 0; j < k; ++j) {
    int32_t best = -1;
    for (size_t e = 0; e < experts; ++e) {
      bool taken = false;
      for (size_t i = 0; i < j; ++i) taken = taken || chosen[i] == static_cast<int32_t>(e);
      if (taken) continue;
      if (best < 0 || p[e] > p[best]) best = static_cast<int32_t>(e);
    }
    chosen[j] = best;
    total += p[best];
  }
  for (size_t j = 0; j < k; ++j) {
    ids[t * k + j] = chosen[j];
    weights[t * k + j] = normalize ? p[chosen[j]] / total : p[chosen[j]];
  }
}

}  // namespace

void router_topk(const float* logits, size_t tokens, size_t experts, size_t k, bool normalize,
                 int32_t* ids, float* weights, stream_t s) {
  if (tokens == 0) return;
  if (k == 0 || k > kMaxK || k > experts)
    throw std::invalid_argument("router_topk: k must be in [1, min(32, experts)]");
  router_kernel<<<static_cast<unsigned>(tokens), 128, experts * sizeof(float), s>>>(
      logits, experts, k, normalize, ids, weights);
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
