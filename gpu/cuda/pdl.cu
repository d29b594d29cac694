#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_set>

#include "gpu/cuda/kernel_switch.h"
#include "gpu/cuda/pdl.cuh"

namespace conclave::gpu::cuda {
namespace {

__global__ void pdl_probe_kernel() {}

/// Whether this process runs the kernels' sm_90 code: the PTX version the loaded image of
/// a kernel of this library was compiled from (80 where the driver compiled compute_80
/// PTX at load, as on a card without matching machine code).
bool kernels_have_sm90_code() {
  cudaFuncAttributes a{};
  if (cudaFuncGetAttributes(&a, pdl_probe_kernel) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.ptxVersion >= 90;
}

// -1: not decided yet; else 0 / 1.
std::atomic<int> g_on{-1};

}  // namespace

bool programmatic_launch_on() {
  int v = g_on.load(std::memory_order_relaxed);
  if (v < 0) {
    v = kernel_switch_on("CONCLAVE_PDL") && kernels_have_sm90_code() ? 1 : 0;
    g_on.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

bool set_programmatic_launch(bool on) {
  const bool before = programmatic_launch_on();
  g_on.store(on && kernels_have_sm90_code() ? 1 : 0, std::memory_order_relaxed);
  return before;
}

namespace {

/// CONCLAVE_SMEM_CARVEOUT as a percentage, -1 when unset.
int carveout_setting() {
  const char* v = std::getenv("CONCLAVE_SMEM_CARVEOUT");
  if (v == nullptr || *v == '\0') return -1;
  char* end = nullptr;
  const long p = std::strtol(v, &end, 10);
  if (*end != '\0' || p < 0 || p > 100)
    throw std::runtime_error(std::string("CONCLAVE_SMEM_CARVEOUT must be 0 to 100, not '") + v +
                             "'");
  return static_cast<int>(p);
}

}  // namespace

void prefer_carveout(const void* kernel) {
  static const int pct = carveout_setting();
  if (pct < 0) return;
  static std::mutex mu;
  static std::unordered_set<const void*> done;
  std::lock_guard<std::mutex> lock(mu);
  if (!done.insert(kernel).second) return;
  CONCLAVE_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, pct));
}

}  // namespace conclave::gpu::cuda
