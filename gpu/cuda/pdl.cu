#include <atomic>

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

}  // namespace conclave::gpu::cuda
