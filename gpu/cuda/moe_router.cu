#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/moe_route.cuh"
#include "gpu/cuda/moe_router.h"
#include "gpu/cuda/pdl.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 4;  // tokens per block, one warp each

// One warp per token (moe_route.cuh's route_token).
__global__ void __launch_bounds__(kWarps * 32)
    router_kernel(const float* logits, size_t tokens, int experts, int k, bool normalize,
                  int32_t* ids, float* weights) {
  extern __shared__ float smem[];  // [kWarps][experts]
  dev::pdl_wait();
  dev::pdl_trigger();
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const size_t t = static_cast<size_t>(blockIdx.x) * kWarps + static_cast<size_t>(warp);
  if (t >= tokens) return;
  dev::route_token(logits, t, experts, k, normalize,
                   smem + static_cast<size_t>(warp) * static_cast<size_t>(experts), ids, weights);
}

}  // namespace

void router_topk(const float* logits, size_t tokens, size_t experts, size_t k, bool normalize,
                 int32_t* ids, float* weights, stream_t s) {
  if (tokens == 0) return;
  if (k == 0 || k > dev::kMaxRouteK || k > experts || experts > 2048)
    throw std::invalid_argument("router_topk: k must be in [1, min(32, experts)], experts <= 2048");
  const unsigned blocks = static_cast<unsigned>((tokens + kWarps - 1) / kWarps);
  launch_pdl(router_kernel, dim3(blocks), dim3(kWarps * 32), kWarps * experts * sizeof(float), s,
             logits, tokens, static_cast<int>(experts), static_cast<int>(k), normalize, ids,
             weights);
}

}  // namespace conclave::gpu::cuda
