// Hopper warpgroup MMA (wgmma, sm_90a) helpers for bf16 inputs with fp32 accumulation:
// shared-memory matrix descriptors for 128-byte-swizzled tiles and the m64n128k16 shape
// with A from shared memory or from registers. Only sm_90a machine code has these
// instructions: callers compile their bodies under CONCLAVE_WGMMA (else they trap) and the
// host runs them only where prefill_wgmma_available() (prefill_attention.h) says so.
#pragma once

#include <cstdint>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CONCLAVE_WGMMA 1
#endif

namespace conclave::gpu::cuda::dev {

#ifdef CONCLAVE_WGMMA
/// Descriptor of a bf16 matrix in shared memory laid out in 128-byte swizzle atoms (8 rows of
/// 128 bytes, 16-byte chunk c of row r stored at chunk c ^ (r % 8); atoms 1024-byte
/// aligned). K-major operands: lbo unused (16), sbo = bytes between 8-row groups.
/// MN-major: lbo = bytes between 64-element blocks of the MN dimension, sbo = bytes between
/// groups of 8 K rows.
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t smem_addr, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((smem_addr & 0x3FFFF) >> 4) |
         (static_cast<uint64_t>((lbo & 0x3FFFF) >> 4) << 16) |
         (static_cast<uint64_t>((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
}

/// Orders this warpgroup's register writes before the wgmma that reads them.
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
/// Waits until at most N committed groups of this warpgroup are in flight.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/// Keeps the compiler from moving reads or writes of the accumulators across an async wgmma.
__device__ __forceinline__ void wgmma_fence_operands(float (&d)[64]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void wgmma_fence_operands(uint32_t (&a)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) asm volatile("" : "+r"(a[i])::"memory");
}
/// Shared memory written by ordinary stores (or cp.async) becomes visible to the tensor
/// cores' async proxy (each writing thread, before the barrier).
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// The 64 fp32 accumulators of an m64n128 wgmma: the operand list %0..%63 and its "+f"
// constraints, shared by the shapes below.
#define CONCLAVE_WGMMA_ACC64                                                               \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, " \
  "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "  \
  "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, "  \
  "%53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define CONCLAVE_WGMMA_ACC8(d, i)                                                             \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
      "+f"(d[i + 6]), "+f"(d[i + 7])
#define CONCLAVE_WGMMA_ACC64_OPERANDS(d)                                                  \
  CONCLAVE_WGMMA_ACC8(d, 0), CONCLAVE_WGMMA_ACC8(d, 8), CONCLAVE_WGMMA_ACC8(d, 16),       \
      CONCLAVE_WGMMA_ACC8(d, 24), CONCLAVE_WGMMA_ACC8(d, 32), CONCLAVE_WGMMA_ACC8(d, 40), \
      CONCLAVE_WGMMA_ACC8(d, 48), CONCLAVE_WGMMA_ACC8(d, 56)

/// d (64x128 fp32) = [d +] A (64x16, K-major in shared memory) * B (16x128, K-major).
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[64], uint64_t a, uint64_t b,
                                                    bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " CONCLAVE_WGMMA_ACC64
      ", %64, %65, p, 1, 1, 0, 0;\n}\n"
      : CONCLAVE_WGMMA_ACC64_OPERANDS(d)
      : "l"(a), "l"(b), "r"(static_cast<int>(accumulate)));
}

/// d (64x128 fp32) += A (64x16 bf16 in registers, the mma.m16n8k16 A layout per warp) * B
/// (16x128, MN-major in shared memory).
__device__ __forceinline__ void wgmma_m64n128k16_rs_mn(float (&d)[64], const uint32_t (&a)[4],
                                                       uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " CONCLAVE_WGMMA_ACC64
      ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : CONCLAVE_WGMMA_ACC64_OPERANDS(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}
#endif

}  // namespace conclave::gpu::cuda::dev
