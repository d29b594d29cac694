#include "gpu/cuda/check.h"
#include "gpu/cuda/moe_combine.h"
#include "gpu/cuda/pdl.cuh"

namespace conclave::gpu::cuda {
namespace {

// Block (token, slice of 256 columns): one column per thread, the k rows' loads
// independent of each other.
__global__ void combine_kernel(const float* down, const int32_t* slot_row, const float* weights,
                               size_t k, size_t hidden, float* out) {
  dev::pdl_wait();
  dev::pdl_trigger();
  const size_t t = blockIdx.x;
  const size_t i = static_cast<size_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (i < hidden) {
    float acc = 0.0f;
#pragma unroll 8
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
  const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>((hidden + 255) / 256));
  launch_pdl(combine_kernel, grid, dim3(256), 0, s, down, slot_row, weights, k, hidden, out);
}

}  // namespace conclave::gpu::cuda
