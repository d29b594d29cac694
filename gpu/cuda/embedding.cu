#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/embedding.h"

namespace conclave::gpu::cuda {
namespace {

template <class T>
__global__ void embedding_kernel(const T* table, const int32_t* ids, size_t hidden, float* out) {
  const size_t r = blockIdx.x;
  const T* src = table + static_cast<size_t>(ids[r]) * hidden;
  float* dst = out + r * hidden;
  for (size_t i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = dev::ld(src + i);
}

}  // namespace

void embedding_gather(const void* table, elem t, const int32_t* ids, size_t rows, size_t hidden,
                      float* out, stream_t s) {
  if (rows == 0) return;
  CONCLAVE_DISPATCH_ELEM(t, T,
                         embedding_kernel<T><<<static_cast<unsigned>(rows), 256, 0, s>>>(
                             static_cast<const T*>(table), ids, hidden, out));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
