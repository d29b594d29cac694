#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/moe_gemv.h"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 4;  // weight rows (outputs) per warp
constexpr int kChunk = 8;        // expert rows (tokens) per pass

// Two consecutive elements as floats (k even: the pair is 4- or 8-byte aligned).
__device__ __forceinline__ float2 ld2(const float* p) {
  return *reinterpret_cast<const float2*>(p);
}
__device__ __forceinline__ float2 ld2(const dev::bf16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

// VEC = 2: each lane reads element pairs (k even); VEC = 1: single elements.
template <class T, int VEC>
__global__ void __launch_bounds__(kWarps * 32)
    grouped_gemv_kernel(const T* x, const T* w, const int32_t* offsets, float* y, size_t n,
                        size_t k) {
  const size_t e = blockIdx.y;
  const int32_t r0 = offsets[e], r1 = offsets[e + 1];
  if (r0 == r1) return;
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const T* we = w + e * n * k;
  const size_t j0 = (static_cast<size_t>(blockIdx.x) * kWarps + warp) * kRowsPerWarp;
  for (int32_t rb = r0; rb < r1; rb += kChunk) {
    const int rows = min(kChunk, r1 - rb);
    float acc[kRowsPerWarp][kChunk] = {};
    for (size_t i = static_cast<size_t>(lane) * VEC; i < k; i += 32 * VEC) {
      float xv[kChunk][VEC];
#pragma unroll
      for (int r = 0; r < kChunk; ++r) {
        if constexpr (VEC == 2) {
          const float2 v =
              r < rows ? ld2(x + static_cast<size_t>(rb + r) * k + i) : make_float2(0.0f, 0.0f);
          xv[r][0] = v.x;
          xv[r][1] = v.y;
        } else {
          xv[r][0] = r < rows ? dev::ld(x + static_cast<size_t>(rb + r) * k + i) : 0.0f;
        }
      }
#pragma unroll
      for (int jj = 0; jj < kRowsPerWarp; ++jj) {
        const size_t j = j0 + jj;
        if (j >= n) break;
        float wv[VEC];
        if constexpr (VEC == 2) {
          const float2 v = ld2(we + j * k + i);
          wv[0] = v.x;
          wv[1] = v.y;
        } else {
          wv[0] = dev::ld(we + j * k + i);
        }
#pragma unroll
        for (int r = 0; r < kChunk; ++r) {
#pragma unroll
          for (int u = 0; u < VEC; ++u) acc[jj][r] = __fmaf_rn(wv[u], xv[r][u], acc[jj][r]);
        }
      }
    }
#pragma unroll
    for (int jj = 0; jj < kRowsPerWarp; ++jj) {
      const size_t j = j0 + jj;
#pragma unroll
      for (int r = 0; r < kChunk; ++r) {
        const float v = dev::warp_sum(acc[jj][r]);
        if (lane == 0 && j < n && r < rows) y[static_cast<size_t>(rb + r) * n + j] = v;
      }
    }
  }
}

}  // namespace

void moe_grouped_gemv(const void* x, const void* w, elem t, const int32_t* offsets, size_t experts,
                      float* y, size_t n, size_t k, stream_t s) {
  if (experts == 0 || n == 0) return;
  const size_t per_block = static_cast<size_t>(kWarps) * kRowsPerWarp;
  const dim3 grid(static_cast<unsigned>((n + per_block - 1) / per_block),
                  static_cast<unsigned>(experts));
  if (k % 2 == 0) {
    CONCLAVE_DISPATCH_ELEM(
        t, T,
        grouped_gemv_kernel<T, 2><<<grid, kWarps * 32, 0, s>>>(
            static_cast<const T*>(x), static_cast<const T*>(w), offsets, y, n, k));
  } else {
    CONCLAVE_DISPATCH_ELEM(
        t, T,
        grouped_gemv_kernel<T, 1><<<grid, kWarps * 32, 0, s>>>(
            static_cast<const T*>(x), static_cast<const T*>(w), offsets, y, n, k));
  }
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
