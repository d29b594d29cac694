// Shared-memory barriers (mbarrier) and TMA tile loads for the Hopper kernels: the
// pipeline stages of prefill_attention_wgmma.cu. sm_90a code only (CONCLAVE_WGMMA).
#pragma once

#include <cuda.h>  // CUtensorMap

#include <cstdint>

#include "gpu/cuda/mma.cuh"
#include "gpu/cuda/wgmma.cuh"

namespace conclave::gpu::cuda::dev {

#ifdef CONCLAVE_WGMMA
// Shared-memory barriers (mbarrier) of the decoupled pipeline.
__device__ __forceinline__ void mbar_init(uint64_t* b, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(b)), "r"(count)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* b) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(b)) : "memory");
}
/// Arrives on b once this thread's cp.async copies issued so far have landed.
__device__ __forceinline__ void mbar_arrive_cp_async(uint64_t* b) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_addr(b))
               : "memory");
}
/// Waits until the phase of b with this parity has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* b, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n}\n" ::"r"(smem_addr(b)),
      "r"(parity)
      : "memory");
}
/// After mbarrier_init: the barriers' initialization visible to the TMA unit's completions.
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
/// Arrives on b and adds `bytes` to the transactions its phase waits for (the TMA loads').
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* b, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(b)),
               "r"(bytes)
               : "memory");
}
/// TMA: the box of `map` at (column c0, row c1) into shared memory at dst, its bytes
/// counted on b. A box wholly outside the tensor arrives as zeros (its bytes still counted).
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, int c0, int c1,
                                            uint64_t* b) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, "
      "{%2, %3}], [%4];\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_addr(b))
      : "memory");
}
#endif

}  // namespace conclave::gpu::cuda::dev
