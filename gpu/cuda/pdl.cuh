// The device side of programmatic dependent launch (gpu/cuda/pdl.h) and its launcher.
// Rules for a kernel launched through launch_pdl: before dev::pdl_wait it may only read
// what no kernel of the step writes (weights) and must write nothing; every block that
// reads or writes step data calls dev::pdl_wait first. Every kernel here calls
// dev::pdl_trigger only after its dev::pdl_wait, so a kernel starts only once every launch
// two or more before it has finished: data written that far back may also be read before
// the wait (through L2: __ldcg), where the caller vouches for it (down_combine_args::
// ids_settled). Included by .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "gpu/cuda/check.h"
#include "gpu/cuda/pdl.h"

namespace conclave::gpu::cuda {
namespace dev {

/// Waits until the kernel before this one on the stream has finished and its writes are
/// visible. A no-op for a launch that was not programmatic, and in code built for sm_80
/// (launch_pdl never launches that programmatically).
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/// Lets the next programmatic launch on the stream be scheduled once every block of this
/// grid has called it (or exited); its blocks then wait in pdl_wait for this whole grid.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

}  // namespace dev

/// kernel<<<grid, block, smem, s>>>(args...), programmatically when
/// programmatic_launch_on(); checks the launch.
template <class... P, class... A>
void launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                A&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cfg.attrs = &attr;
  cfg.numAttrs = programmatic_launch_on() ? 1 : 0;
  prefer_carveout(reinterpret_cast<const void*>(kernel));
  CONCLAVE_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...));
}

}  // namespace conclave::gpu::cuda
