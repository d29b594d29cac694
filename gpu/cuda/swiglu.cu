#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/pdl.cuh"
#include "gpu/cuda/swiglu.h"

namespace conclave::gpu::cuda {
namespace {

// Block (row, slice of 256 columns): no index division.
template <class T>
__global__ void swiglu_kernel(const float* gate_up, size_t m, T* out) {
  dev::pdl_wait();
  dev::pdl_trigger();
  const size_t r = blockIdx.x;
  const size_t j = static_cast<size_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= m) return;
  const float g = gate_up[r * 2 * m + j], u = gate_up[r * 2 * m + m + j];
  dev::st(out + r * m + j, dev::silu_mul(g, u));
}

}  // namespace

void swiglu(const float* gate_up, size_t rows, size_t m, void* out, elem t, stream_t s) {
  if (rows == 0 || m == 0) return;
  if (rows > 0x7fffffff || (m + 255) / 256 > 65535)
    throw std::invalid_argument("swiglu: too many rows or columns");
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>((m + 255) / 256));
  CONCLAVE_DISPATCH_ELEM(
      t, T, launch_pdl(swiglu_kernel<T>, grid, dim3(256), 0, s, gate_up, m, static_cast<T*>(out)));
}

}  // namespace conclave::gpu::cuda
