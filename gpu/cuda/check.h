// Checked CUDA / cuBLAS calls: any failure throws std::runtime_error naming the call
// site and the error, so a device error surfaces as an exception, never as UB.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace conclave::gpu::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error at ") + file + ":" + std::to_string(line) +
                           ": " + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                           ")");
}

[[noreturn]] inline void throw_cublas(cublasStatus_t s, const char* what, const char* file,
                                      int line) {
  throw std::runtime_error(std::string("cuBLAS error at ") + file + ":" + std::to_string(line) +
                           ": " + what + ": " + cublasGetStatusName(s) + " (" +
                           cublasGetStatusString(s) + ")");
}

}  // namespace conclave::gpu::cuda

#define CONCLAVE_CUDA_CHECK(call)                                                  \
  do {                                                                             \
    const cudaError_t conclave_err_ = (call);                                      \
    if (conclave_err_ != cudaSuccess)                                              \
      ::conclave::gpu::cuda::throw_cuda(conclave_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define CONCLAVE_CUBLAS_CHECK(call)                                                 \
  do {                                                                              \
    const cublasStatus_t conclave_st_ = (call);                                     \
    if (conclave_st_ != CUBLAS_STATUS_SUCCESS)                                      \
      ::conclave::gpu::cuda::throw_cublas(conclave_st_, #call, __FILE__, __LINE__); \
  } while (0)

/// After a kernel launch: launch-configuration errors surface here.
#define CONCLAVE_CUDA_LAUNCH_CHECK() CONCLAVE_CUDA_CHECK(cudaGetLastError())
