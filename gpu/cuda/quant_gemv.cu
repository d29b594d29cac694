// The grouped / dense GEMV of moe_gemv.cu reading quantized weights (w8a16 fp8, w4a16
// awq): weights dequantized in registers, activations bf16 or fp32, fp32 accumulation.
// Each lane issues 16-byte weight loads (16 fp8 or 32 int4 weights) that lie in one scale
// group, so the chunk's partial dot product is scaled once: acc += s * sum(q' x), q' = q
// (fp8) or q - z (awq, exact in fp32). Unaligned shapes (k or the group not a multiple of
// the load) take a one-weight-per-lane path.
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/gemv_rows.cuh"
#include "gpu/cuda/moe_gemv.h"
#include "gpu/cuda/quant_elem.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 4;  // weight rows (outputs) per warp
constexpr int kChunk = 8;        // x rows (tokens) per pass

struct qmat {
  const uint8_t* data;   // [rows, k] fp8 bytes or [rows, k / 8] awq words
  const void* scales;    // [rows, G] fp32 (fp8) or fp16 (awq)
  const uint8_t* zeros;  // [rows, G] (awq)
  size_t G, group;
};

template <bool AWQ>
__device__ __forceinline__ float scale_at(const qmat& w, size_t idx) {
  if constexpr (AWQ) {
    return dev::half_bits_to_float(static_cast<const uint16_t*>(w.scales)[idx]);
  } else {
    return static_cast<const float*>(w.scales)[idx];
  }
}

/// Weight (row, i) dequantized (scale included): the one-weight path.
template <bool AWQ>
__device__ __forceinline__ float weight_at(const qmat& w, size_t row, size_t i, size_t k) {
  const size_t si = row * w.G + i / w.group;
  if constexpr (AWQ) {
    const uint32_t word = reinterpret_cast<const uint32_t*>(w.data)[(row * k + i) / 8];
    return dev::nibble_minus(word, static_cast<int>(i % 8), 8388608.0f + w.zeros[si]) *
           scale_at<true>(w, si);
  } else {
    return dev::fp8_to_float(w.data[row * k + i]) * scale_at<false>(w, si);
  }
}

template <class T, bool AWQ, bool VEC, int C>
__device__ __forceinline__ void qgemv_chunk(const T* x, const int32_t* x_rows, int rb, int rows,
                                            const qmat& w, size_t row0, size_t j0, size_t n,
                                            size_t k, float* y, int lane) {
  const T* xr[C];
#pragma unroll
  for (int r = 0; r < C; ++r) {
    const int rr = rb + (r < rows ? r : 0);
    xr[r] = x + static_cast<size_t>(x_rows != nullptr ? x_rows[rr] : rr) * k;
  }
  size_t wrow[kRowsPerWarp];  // rows of the stacked matrix
#pragma unroll
  for (int jj = 0; jj < kRowsPerWarp; ++jj) wrow[jj] = row0 + (j0 + jj < n ? j0 + jj : j0);
  float acc[kRowsPerWarp][C];
#pragma unroll
  for (int jj = 0; jj < kRowsPerWarp; ++jj)
#pragma unroll
    for (int r = 0; r < C; ++r) acc[jj][r] = 0.0f;
  if constexpr (VEC) {
    constexpr int W = AWQ ? 32 : 16;           // weights per 16-byte load
    constexpr int P = W / 8;                   // pieces of 8 weights
    constexpr size_t kBytesNum = AWQ ? 1 : 2;  // bytes of input i: i * kBytesNum / 2
#pragma unroll 1
    for (size_t i = static_cast<size_t>(lane) * W; i < k; i += 32 * W) {
      const size_t gi = i / w.group;
      uint4 raw[kRowsPerWarp];
      float s[kRowsPerWarp], zoff[kRowsPerWarp];
#pragma unroll
      for (int jj = 0; jj < kRowsPerWarp; ++jj) {
        raw[jj] = dev::ld16(w.data + (wrow[jj] * k + i) * kBytesNum / 2);
        const size_t si = wrow[jj] * w.G + gi;
        s[jj] = scale_at<AWQ>(w, si);
        zoff[jj] = AWQ ? 8388608.0f + static_cast<float>(w.zeros[si]) : 0.0f;
      }
      float part[kRowsPerWarp][C];
#pragma unroll
      for (int jj = 0; jj < kRowsPerWarp; ++jj)
#pragma unroll
        for (int r = 0; r < C; ++r) part[jj][r] = 0.0f;
#pragma unroll
      for (int p = 0; p < P; ++p) {
        float wv[kRowsPerWarp][8];
#pragma unroll
        for (int jj = 0; jj < kRowsPerWarp; ++jj)
          dev::quant_piece<AWQ>(raw[jj], p, zoff[jj], wv[jj]);
#pragma unroll
        for (int r = 0; r < C; ++r) {
          if (r < rows) {
            float xv[8];
            dev::ldv<8>(xr[r] + i + 8 * p, xv);
#pragma unroll
            for (int jj = 0; jj < kRowsPerWarp; ++jj)
#pragma unroll
              for (int e = 0; e < 8; ++e) part[jj][r] = __fmaf_rn(wv[jj][e], xv[e], part[jj][r]);
          }
        }
      }
#pragma unroll
      for (int jj = 0; jj < kRowsPerWarp; ++jj)
#pragma unroll
        for (int r = 0; r < C; ++r) acc[jj][r] = __fmaf_rn(s[jj], part[jj][r], acc[jj][r]);
    }
  } else {
#pragma unroll 1
    for (size_t i = static_cast<size_t>(lane); i < k; i += 32) {
      float wv[kRowsPerWarp];
#pragma unroll
      for (int jj = 0; jj < kRowsPerWarp; ++jj) wv[jj] = weight_at<AWQ>(w, wrow[jj], i, k);
#pragma unroll
      for (int r = 0; r < C; ++r) {
        if (r < rows) {
          const float xv = dev::ld(xr[r] + i);
#pragma unroll
          for (int jj = 0; jj < kRowsPerWarp; ++jj) acc[jj][r] = __fmaf_rn(wv[jj], xv, acc[jj][r]);
        }
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

template <class T, bool AWQ, bool VEC, int CMAX>
__global__ void __launch_bounds__(kWarps * 32)
    qgemv_kernel(const T* x, const int32_t* x_rows, qmat w, const int32_t* offsets,
                 const int32_t* active, int32_t dense_rows, float* y, size_t n, size_t k) {
  const int e = active != nullptr ? active[blockIdx.y] : static_cast<int>(blockIdx.y);
  if (e < 0) return;
  const int32_t r0 = offsets != nullptr ? offsets[e] : 0;
  const int32_t r1 = offsets != nullptr ? offsets[e + 1] : dense_rows;
  if (r0 == r1) return;
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const size_t j0 = (static_cast<size_t>(blockIdx.x) * kWarps + warp) * kRowsPerWarp;
  if (j0 >= n) return;
  const size_t row0 = static_cast<size_t>(e) * n;
  for (int32_t rb = r0; rb < r1; rb += CMAX) {
    const int rows = min(CMAX, r1 - rb);
    if (CMAX == 1 || rows == 1) {
      qgemv_chunk<T, AWQ, VEC, 1>(x, x_rows, rb, rows, w, row0, j0, n, k, y, lane);
    } else if (CMAX == 2 || rows == 2) {
      qgemv_chunk<T, AWQ, VEC, (CMAX >= 2 ? 2 : 1)>(x, x_rows, rb, rows, w, row0, j0, n, k, y,
                                                    lane);
    } else if (CMAX == 4 || rows <= 4) {
      qgemv_chunk<T, AWQ, VEC, (CMAX >= 4 ? 4 : 1)>(x, x_rows, rb, rows, w, row0, j0, n, k, y,
                                                    lane);
    } else {
      qgemv_chunk<T, AWQ, VEC, CMAX>(x, x_rows, rb, rows, w, row0, j0, n, k, y, lane);
    }
  }
}

template <class T, bool AWQ>
void launch(const gemv_args& a, stream_t s) {
  const size_t per_block = static_cast<size_t>(kWarps) * kRowsPerWarp;
  const dim3 grid(static_cast<unsigned>((a.n + per_block - 1) / per_block),
                  static_cast<unsigned>(a.grid_experts));
  const size_t W = AWQ ? 32 : 16, group = static_cast<size_t>(a.q.group);
  const bool wide = a.k % W == 0 && group % W == 0 && dev::aligned16(a.x) && dev::aligned16(a.w);
  qmat w{static_cast<const uint8_t*>(a.w), a.scales, static_cast<const uint8_t*>(a.zeros),
         static_cast<size_t>(a.q.groups(static_cast<int64_t>(a.k))), group};
  const auto* x = static_cast<const T*>(a.x);
  const auto dense = static_cast<int32_t>(a.rows);
  const size_t most = a.offsets != nullptr ? a.max_rows : a.rows;
  auto go = [&](auto vec, auto cmax) {
    qgemv_kernel<T, AWQ, decltype(vec)::value, decltype(cmax)::value>
        <<<grid, kWarps * 32, 0, s>>>(x, a.x_rows, w, a.offsets, a.active, dense, a.y, a.n, a.k);
  };
  auto by_rows = [&](auto vec) {
    dev::by_row_count<kChunk>(most, [&](auto cmax) { go(vec, cmax); });
  };
  if (wide) {
    by_rows(std::true_type{});
  } else {
    by_rows(std::false_type{});
  }
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace

void quant_grouped_gemv(const gemv_args& a, stream_t s) {
  if (a.n == 0 || a.k == 0 || a.grid_experts == 0) return;
  if (a.offsets == nullptr && a.rows == 0) return;
  if (a.q.group <= 0) throw std::invalid_argument("quant_grouped_gemv: no scale group");
  if (a.grid_experts > 65535) throw std::invalid_argument("quant_grouped_gemv: too many experts");
  switch (a.q.method) {
    case model::quant_method::fp8:
      CONCLAVE_DISPATCH_ELEM(a.t, T, launch<T, false>(a, s));
      return;
    case model::quant_method::awq:
      if (a.k % 8 != 0 || a.k % static_cast<size_t>(a.q.group) != 0)
        throw std::invalid_argument(
            "quant_grouped_gemv: awq needs k a multiple of 8 and the group");
      CONCLAVE_DISPATCH_ELEM(a.t, T, launch<T, true>(a, s));
      return;
    case model::quant_method::none:
      break;
  }
  throw std::invalid_argument("quant_grouped_gemv: not a quantized matrix");
}

}  // namespace conclave::gpu::cuda
