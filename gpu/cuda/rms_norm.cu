#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/pdl.cuh"
#include "gpu/cuda/rms_norm.h"

namespace conclave::gpu::cuda {
namespace {

template <class T>
__global__ void add_rms_norm_kernel(float* x, const float* add, const float* bias, const float* w,
                                    T* out, const int32_t* rows_index, size_t dim, float eps) {
  __shared__ float scratch[32];
  dev::pdl_wait();
  dev::pdl_trigger();
  const size_t i = blockIdx.x;
  const size_t r = rows_index != nullptr ? static_cast<size_t>(rows_index[i]) : i;
  float* xr = x + r * dim;
  float ss = 0.0f;
  for (size_t j = threadIdx.x; j < dim; j += blockDim.x) {
    float v = xr[j];
    if (add != nullptr) {
      v = __fadd_rn(v, add[r * dim + j]);
      if (bias != nullptr) v = __fadd_rn(v, bias[j]);
      xr[j] = v;
    }
    ss = __fmaf_rn(v, v, ss);
  }
  ss = dev::block_sum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  T* o = out + i * dim;
  for (size_t j = threadIdx.x; j < dim; j += blockDim.x)
    dev::st(o + j, __fmul_rn(w[j], __fmul_rn(xr[j], inv)));
}

}  // namespace

void add_rms_norm(float* x, const float* add, const float* bias, const float* w, void* out,
                  elem out_t, const int32_t* rows_index, size_t rows, size_t dim, float eps,
                  stream_t s) {
  if (rows == 0) return;
  const unsigned threads = dim >= 2048 ? 1024 : (dim >= 512 ? 256 : 128);
  CONCLAVE_DISPATCH_ELEM(
      out_t, T,
      launch_pdl(add_rms_norm_kernel<T>, dim3(static_cast<unsigned>(rows)), dim3(threads), 0, s, x,
                 add, bias, w, static_cast<T*>(out), rows_index, dim, eps));
}

}  // namespace conclave::gpu::cuda
