#include <algorithm>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/swiglu.h"

namespace conclave::gpu::cuda {
namespace {

template <class T>
__global__ void swiglu_kernel(const float* gate_up, size_t rows, size_t m, T* out) {
  const size_t n = rows * m;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t r = i / m, j = i % m;
    const float g = gate_up[r * 2 * m + j], u = gate_up[r * 2 * m + m + j];
    dev::st(out + i, __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u));
  }
}

}  // namespace

void swiglu(const float* gate_up, size_t rows, size_t m, void* out, elem t, stream_t s) {
  const size_t n = rows * m;
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>((n + 255) / 256, 65535));
  CONCLAVE_DISPATCH_ELEM(
      t, T, swiglu_kernel<T><<<blocks, 256, 0, s>>>(gate_up, rows, m, static_cast<T*>(out)));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
