#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/gemv_decode.h"
#include "gpu/cuda/gemv_rows.cuh"
#include "gpu/cuda/moe_gemv.h"
#include "gpu/cuda/pdl.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 4;  // weight rows (outputs) per warp
constexpr int kChunk = 8;        // x rows (tokens) per pass

// C rows of x against this warp's kRowsPerWarp weight rows, then a warp reduction per
// output. Each lane walks k in steps of 32 * SV (8-byte loads: a 16-byte step's x values
// for every row would not fit the register file at two blocks per SM). Launches of one
// row per matrix go to gemv_decode.cu's kernels instead.
template <class T, int VEC, int C>
__device__ __forceinline__ void gemv_chunk(const T* x, const int32_t* x_rows, int rb, int rows,
                                           const T* we, size_t j0, size_t n, size_t k, float* y,
                                           int lane) {
  const T* xr[C];
#pragma unroll
  for (int r = 0; r < C; ++r) {
    const int rr = rb + (r < rows ? r : 0);
    xr[r] = x + static_cast<size_t>(x_rows != nullptr ? x_rows[rr] : rr) * k;
  }
  const T* wr[kRowsPerWarp];
#pragma unroll
  for (int jj = 0; jj < kRowsPerWarp; ++jj) wr[jj] = we + (j0 + jj < n ? j0 + jj : j0) * k;
  float acc[kRowsPerWarp][C];
#pragma unroll
  for (int jj = 0; jj < kRowsPerWarp; ++jj)
#pragma unroll
    for (int r = 0; r < C; ++r) acc[jj][r] = 0.0f;
  constexpr int SV = VEC == 1 ? 1 : 8 / static_cast<int>(sizeof(T));
#pragma unroll 1
  for (size_t i = static_cast<size_t>(lane) * SV; i < k; i += 32 * SV) {
    float wv[kRowsPerWarp][SV];
#pragma unroll
    for (int jj = 0; jj < kRowsPerWarp; ++jj) dev::ldv<SV>(wr[jj] + i, wv[jj]);
#pragma unroll
    for (int r = 0; r < C; ++r) {
      if (r < rows) {
        float xv[SV];
        dev::ldv<SV>(xr[r] + i, xv);
#pragma unroll
        for (int jj = 0; jj < kRowsPerWarp; ++jj)
#pragma unroll
          for (int e = 0; e < SV; ++e) acc[jj][r] = __fmaf_rn(wv[jj][e], xv[e], acc[jj][r]);
      }
    }
  }
#pragma unroll
  for (int jj = 0; jj < kRowsPerWarp; ++jj) {
#pragma unroll
    for (int r = 0; r < C; ++r) {
      if (r < rows) {
        const float v = dev::warp_sum(acc[jj][r]);
        if (lane == 0 && j0 + jj < n) y[static_cast<size_t>(rb + r) * n + j0 + jj] = v;
      }
    }
  }
}

// CMAX: the most rows any matrix can have in this launch (1, 2, 4 or 8 = chunks of 8),
// so that a batch-1 launch carries only the small register tile.
template <class T, int VEC, int CMAX>
__global__ void __launch_bounds__(kWarps * 32)
    grouped_gemv_kernel(const T* x, const int32_t* x_rows, const T* w, const int32_t* offsets,
                        const int32_t* active, int32_t dense_rows, float* y, size_t n, size_t k) {
  dev::pdl_wait();
  dev::pdl_trigger();
  const int e = active != nullptr ? active[blockIdx.y] : static_cast<int>(blockIdx.y);
  if (e < 0) return;
  const int32_t r0 = offsets != nullptr ? offsets[e] : 0;
  const int32_t r1 = offsets != nullptr ? offsets[e + 1] : dense_rows;
  if (r0 == r1) return;
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const size_t j0 = (static_cast<size_t>(blockIdx.x) * kWarps + warp) * kRowsPerWarp;
  if (j0 >= n) return;
  const T* we = w + static_cast<size_t>(e) * n * k;
  for (int32_t rb = r0; rb < r1; rb += CMAX) {
    const int rows = min(CMAX, r1 - rb);
    // Warp-uniform branch: the register tile fits the chunk.
    if (CMAX == 1 || rows == 1) {
      gemv_chunk<T, VEC, 1>(x, x_rows, rb, rows, we, j0, n, k, y, lane);
    } else if (CMAX == 2 || rows == 2) {
      gemv_chunk<T, VEC, (CMAX >= 2 ? 2 : 1)>(x, x_rows, rb, rows, we, j0, n, k, y, lane);
    } else if (CMAX == 4 || rows <= 4) {
      gemv_chunk<T, VEC, (CMAX >= 4 ? 4 : 1)>(x, x_rows, rb, rows, we, j0, n, k, y, lane);
    } else {
      gemv_chunk<T, VEC, CMAX>(x, x_rows, rb, rows, we, j0, n, k, y, lane);
    }
  }
}

template <class T>
void launch(const gemv_args& a, stream_t s) {
  const size_t per_block = static_cast<size_t>(kWarps) * kRowsPerWarp;
  const dim3 grid(static_cast<unsigned>((a.n + per_block - 1) / per_block),
                  static_cast<unsigned>(a.grid_experts));
  constexpr int kVec = 16 / sizeof(T);
  const bool wide = a.k % kVec == 0 && dev::aligned16(a.x) && dev::aligned16(a.w);
  const auto* x = static_cast<const T*>(a.x);
  const auto* w = static_cast<const T*>(a.w);
  const auto dense = static_cast<int32_t>(a.rows);
  const size_t most = a.offsets != nullptr ? a.max_rows : a.rows;
  auto go = [&](auto vec, auto cmax) {
    launch_pdl(grouped_gemv_kernel<T, decltype(vec)::value, decltype(cmax)::value>, grid,
               dim3(kWarps * 32), 0, s, x, a.x_rows, w, a.offsets, a.active, dense, a.y, a.n, a.k);
  };
  auto by_rows = [&](auto vec) {
    dev::by_row_count<kChunk>(most, [&](auto cmax) { go(vec, cmax); });
  };
  if (wide) {
    by_rows(std::integral_constant<int, kVec>{});
  } else {
    by_rows(std::integral_constant<int, 1>{});
  }
}

}  // namespace

void grouped_gemv(const gemv_args& a, stream_t s) {
  if (a.n == 0 || a.k == 0 || a.grid_experts == 0) return;
  if (a.offsets == nullptr && a.rows == 0) return;
  if (a.grid_experts > 65535) throw std::invalid_argument("grouped_gemv: too many experts");
  if (a.offsets == nullptr && a.rows > (1u << 30))
    throw std::invalid_argument("grouped_gemv: too many rows");
  if (row_gemv_ok(a) && (a.q.method == model::quant_method::none || a.qp.rows))
    return row_gemv(a, s);
  if (a.q.method != model::quant_method::none) return quant_grouped_gemv(a, s);
  CONCLAVE_DISPATCH_ELEM(a.t, T, launch<T>(a, s));
}

gemv_args dense_gemv_args(const void* x, elem t, size_t m, float* y, size_t n, size_t k) {
  gemv_args a;
  a.x = x;
  a.t = t;
  a.rows = m;
  a.y = y;
  a.n = n;
  a.k = k;
  return a;
}

void dense_gemv(const void* x, const void* w, elem t, size_t m, float* y, size_t n, size_t k,
                stream_t s) {
  gemv_args a = dense_gemv_args(x, t, m, y, n, k);
  a.w = w;
  grouped_gemv(a, s);
}

}  // namespace conclave::gpu::cuda
