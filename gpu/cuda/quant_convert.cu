// Dequantization of fp8 / awq matrices to bf16 or fp32 (the cuBLAS path's scratch), and
// the device quantizers of random bench weights (quant_ops.h).
#include <algorithm>
#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/quant_elem.cuh"
#include "gpu/cuda/quant_ops.h"

namespace conclave::gpu::cuda {
namespace {

using model::quant_method;

unsigned blocks_for(size_t items, size_t per_block) {
  return static_cast<unsigned>(
      std::clamp<size_t>((items + per_block - 1) / per_block, 1, 132 * 64));
}

// Eight consecutive outputs per thread (k % 8 == 0 and group % 8 == 0: they share a group).
template <class T, bool AWQ>
__global__ void dequant8_kernel(const uint8_t* data, const void* scales, const uint8_t* zeros,
                                size_t n, size_t k, size_t group, T* dst) {
  const size_t G = (k + group - 1) / group, words = n * k / 8;
  for (size_t wi = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; wi < words;
       wi += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t r = wi / (k / 8), i = (wi % (k / 8)) * 8;
    const size_t si = r * G + i / group;
    float v[8];
    if constexpr (AWQ) {
      const uint32_t w = reinterpret_cast<const uint32_t*>(data)[wi];
      const float s = dev::half_bits_to_float(static_cast<const uint16_t*>(scales)[si]);
      const float zoff = 8388608.0f + static_cast<float>(zeros[si]);
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = dev::nibble_minus(w, j, zoff) * s;
    } else {
      const uint2 w = reinterpret_cast<const uint2*>(data)[wi];
      const float s = static_cast<const float*>(scales)[si];
      dev::fp8x4_to_float(w.x, v);
      dev::fp8x4_to_float(w.y, v + 4);
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] *= s;
    }
    T* out = dst + wi * 8;
#pragma unroll
    for (int j = 0; j < 8; ++j) dev::st(out + j, v[j]);
  }
}

// fp8 of any shape, one output per thread.
template <class T>
__global__ void dequant_fp8_kernel(const uint8_t* data, const float* scales, size_t n, size_t k,
                                   size_t group, T* dst) {
  const size_t G = (k + group - 1) / group;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < n * k;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t r = idx / k, i = idx % k;
    dev::st(dst + idx, dev::fp8_to_float(data[idx]) * scales[r * G + i / group]);
  }
}

// One warp per (row, group).
__global__ void quant_fp8_kernel(const float* src, size_t n, size_t k, size_t group, uint8_t* data,
                                 float* scales) {
  const size_t G = (k + group - 1) / group;
  const size_t wid = (blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  if (wid >= n * G) return;
  const size_t r = wid / G, g0 = (wid % G) * group, g1 = min(k, g0 + group);
  const float* row = src + r * k;
  float amax = 0.0f;
  for (size_t i = g0 + lane; i < g1; i += 32) amax = fmaxf(amax, fabsf(row[i]));
  amax = dev::warp_max(amax);
  const float s = amax > 0.0f ? amax / 448.0f : 1.0f;
  if (lane == 0) scales[wid] = s;
  for (size_t i = g0 + lane; i < g1; i += 32)
    data[r * k + i] = __nv_cvt_float_to_fp8(row[i] / s, __NV_SATFINITE, __NV_E4M3);
}

__device__ __forceinline__ float warp_min(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// One warp per (row, group); group % 8 == 0 and k % group == 0.
__global__ void quant_awq_kernel(const float* src, size_t n, size_t k, size_t group, uint32_t* data,
                                 uint16_t* scales, uint8_t* zeros) {
  const size_t G = k / group;
  const size_t wid = (blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  if (wid >= n * G) return;
  const size_t r = wid / G, g0 = (wid % G) * group;
  const float* row = src + r * k;
  float lo = 0.0f, hi = 0.0f;
  for (size_t i = g0 + lane; i < g0 + group; i += 32) {
    lo = fminf(lo, row[i]);
    hi = fmaxf(hi, row[i]);
  }
  lo = warp_min(lo);
  hi = dev::warp_max(hi);
  const __half sh = __float2half_rn((hi - lo) / 15.0f);
  float s = __half2float(sh);
  if (!(s > 0.0f)) s = 1.0f;
  const float z = fminf(fmaxf(rintf(-lo / s), 0.0f), 15.0f);
  if (lane == 0) {
    scales[wid] = __half_as_ushort(__float2half_rn(s));
    zeros[wid] = static_cast<uint8_t>(z);
  }
  for (size_t wi = lane; wi < group / 8; wi += 32) {
    uint32_t word = 0;
    for (int j = 0; j < 8; ++j) {
      const float q = fminf(fmaxf(rintf(row[g0 + wi * 8 + j] / s) + z, 0.0f), 15.0f);
      word |= static_cast<uint32_t>(q) << (4 * j);
    }
    data[(r * k + g0) / 8 + wi] = word;
  }
}

}  // namespace

void dequantize_matrix(const qview& w, size_t n, size_t k, void* dst, elem t, stream_t s) {
  if (n == 0 || k == 0) return;
  const auto group = static_cast<size_t>(w.q.group);
  const auto* data = static_cast<const uint8_t*>(w.data);
  const auto* zeros = static_cast<const uint8_t*>(w.zeros);
  // fp8 reads 8 bytes per thread, awq one 4-byte word.
  const uintptr_t align = w.q.method == quant_method::awq ? 4 : 8;
  const bool by8 = k % 8 == 0 && group % 8 == 0 && reinterpret_cast<uintptr_t>(data) % align == 0;
  switch (w.q.method) {
    case quant_method::fp8:
      if (by8) {
        CONCLAVE_DISPATCH_ELEM(t, T,
                               dequant8_kernel<T, false><<<blocks_for(n * k / 8, 256), 256, 0, s>>>(
                                   data, w.scales, zeros, n, k, group, static_cast<T*>(dst)));
      } else {
        CONCLAVE_DISPATCH_ELEM(
            t, T,
            dequant_fp8_kernel<T><<<blocks_for(n * k, 256), 256, 0, s>>>(
                data, static_cast<const float*>(w.scales), n, k, group, static_cast<T*>(dst)));
      }
      break;
    case quant_method::awq:
      if (!by8 || k % group != 0)
        throw std::invalid_argument("dequantize_matrix: awq needs k and the group a multiple of 8");
      CONCLAVE_DISPATCH_ELEM(t, T,
                             dequant8_kernel<T, true><<<blocks_for(n * k / 8, 256), 256, 0, s>>>(
                                 data, w.scales, zeros, n, k, group, static_cast<T*>(dst)));
      break;
    case quant_method::none:
      throw std::invalid_argument("dequantize_matrix: not a quantized matrix");
  }
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

void quantize_matrix(const float* src, size_t n, size_t k, const quant_layout& q, void* data,
                     void* scales, void* zeros, stream_t s) {
  if (n == 0 || k == 0) return;
  const auto group = static_cast<size_t>(q.group);
  const size_t warps = n * static_cast<size_t>(q.groups(static_cast<int64_t>(k)));
  const auto blocks = static_cast<unsigned>((warps + 7) / 8);
  switch (q.method) {
    case quant_method::fp8:
      quant_fp8_kernel<<<blocks, 256, 0, s>>>(src, n, k, group, static_cast<uint8_t*>(data),
                                              static_cast<float*>(scales));
      break;
    case quant_method::awq:
      if (k % group != 0 || group % 8 != 0)
        throw std::invalid_argument("quantize_matrix: awq needs k % group == 0, group % 8 == 0");
      quant_awq_kernel<<<blocks, 256, 0, s>>>(src, n, k, group, static_cast<uint32_t*>(data),
                                              static_cast<uint16_t*>(scales),
                                              static_cast<uint8_t*>(zeros));
      break;
    case quant_method::none:
      throw std::invalid_argument("quantize_matrix: no quantization method");
  }
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
