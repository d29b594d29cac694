#include "gpu/cuda/check.h"
#include "gpu/cuda/moe_combine.h"

namespace conclave::gpu::cuda {
namespace {

__global__ void combine_kernel(const float* down, const int32_t* slot_row, const float* weights,
                               size_t k, size_t hidden, float* out) {
  const size_t t = blockIdx.x;
  for (size_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float acc = 0.0f;
    for (size_t j = 0; j < k; ++j) {
      const size_t row = static_cast<size_t>(slot_row[t * k + j]);
      acc = __fadd_rn(acc, __fmul_rn(down[row * hidden + i], weights[t * k + j]));
    }
    out[t * hidden + i] = acc;
  }
}

}  // namespace

void moe_combine(const float* down, const int32_t* slot_row, const float* weights, size_t tokens,
                 size_t k, size_t hidden, float* out, stream_t s) {
  if (tokens == 0) return;
  combine_kernel<<<static_cast<unsigned>(tokens), 256, 0, s>>>(down, slot_row, weights, k, hidden,
                                                               out);
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
