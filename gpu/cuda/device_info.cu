// CUDA device enumeration. Every runtime call is checked; failures mean "no GPU here",
// which is the normal case on CI machines.
#include <cuda_runtime.h>

#include "gpu/cuda/device_info.h"

#include "gpu/cuda/check.h"

namespace conclave::gpu::cuda {

int current_sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    CONCLAVE_CUDA_CHECK(cudaGetDevice(&dev));
    CONCLAVE_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return n;
}

std::string device_uuid(int ordinal) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, ordinal) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  const auto* b = reinterpret_cast<const unsigned char*>(prop.uuid.bytes);
  std::string out = "GPU-";
  static const char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 15];
  }
  return out;
}

std::vector<device_info> list_devices(std::string* why_none) {
  std::vector<device_info> out;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why_none != nullptr) *why_none = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return out;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    device_info d;
    d.index = i;
    d.name = prop.name;
    d.total_bytes = prop.totalGlobalMem;
    d.sm_count = prop.multiProcessorCount;
    d.major = prop.major;
    d.minor = prop.minor;
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      d.free_bytes = free_b;
    out.push_back(d);
  }
  if (out.empty() && why_none != nullptr) *why_none = "no CUDA device";
  return out;
}

}  // namespace conclave::gpu::cuda
