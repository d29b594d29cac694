// cuBLAS wrapper. Row-major y = x W^T is column-major y^T = W x^T: W is the column-major
// [k, n] matrix transposed, x the column-major [k, m] one.
#include "gpu/cuda/gemm.h"

#include <limits>
#include <stdexcept>

#include "gpu/cuda/check.h"

namespace conclave::gpu::cuda {
namespace {

cudaDataType_t data_type(elem t) {
  return t == elem::f32 ? CUDA_R_32F : CUDA_R_16BF;
}

int to_int(size_t v) {
  if (v > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw std::invalid_argument("GEMM dimension exceeds int");
  return static_cast<int>(v);
}

}  // namespace

blas::blas() {
  cublasHandle_t h = nullptr;
  CONCLAVE_CUBLAS_CHECK(cublasCreate(&h));
  handle_ = h;
  CONCLAVE_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
}

blas::~blas() {
  if (handle_ != nullptr) cublasDestroy(static_cast<cublasHandle_t>(handle_));
}

void blas::set_stream(stream_t s) {
  CONCLAVE_CUBLAS_CHECK(cublasSetStream(static_cast<cublasHandle_t>(handle_), s));
}

void blas::set_workspace(void* p, size_t bytes) {
  CONCLAVE_CUBLAS_CHECK(cublasSetWorkspace(static_cast<cublasHandle_t>(handle_), p, bytes));
}

void blas::linear(const void* x, const void* w, elem t, float* y, size_t m, size_t n, size_t k) {
  linear_out(x, w, t, y, elem::f32, m, n, k);
}

void blas::linear_out(const void* x, const void* w, elem t, void* y, elem yt, size_t m, size_t n,
                      size_t k) {
  if (m == 0 || n == 0) return;
  const float alpha = 1.0f, beta = 0.0f;
  CONCLAVE_CUBLAS_CHECK(cublasGemmEx(
      static_cast<cublasHandle_t>(handle_), CUBLAS_OP_T, CUBLAS_OP_N, to_int(n), to_int(m),
      to_int(k), &alpha, w, data_type(t), to_int(k), x, data_type(t), to_int(k), &beta, y,
      data_type(yt), to_int(n), t == elem::f32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
}

}  // namespace conclave::gpu::cuda
