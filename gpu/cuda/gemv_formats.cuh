// Weight formats of the one-row GEMV kernels (gemv_decode.cu): where a stacked matrix's
// row lies, what one 16-byte load of it holds, and how that load meets the activations.
// plain<T>: T weights (8 bf16 or 4 fp32 inputs a load), summed weight by weight as the
// kernels always did. fp8_rows (w8a16, 16 inputs a load) and awq_rows (w4a16, 32 inputs a
// load) follow gpu/quant_layout.h; a load lies in one scale group, so its partial dot
// product is scaled once: acc += s * sum(q' x), q' = q (fp8) or q - z (awq), as the
// grouped quantized GEMV (quant_gemv.cu) computes it. The activations of the quantized
// formats are bf16.
#pragma once

#include <cstdint>

#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/quant_elem.cuh"

namespace conclave::gpu::cuda::dev {

/// One 16-byte load of a quantized weight row, its group's scale and awq offset (2^23 +
/// zero). Plain formats load a bare uint4. Each format also caps the loads a lane keeps
/// in flight (kMaxLoads: what its registers hold without spilling).
struct wload {
  uint4 raw;
  float s, zoff;
};

template <class T>
struct plain {
  static constexpr int kIn = 16 / static_cast<int>(sizeof(T));
  static constexpr int kMaxLoads = 16;
  using load_t = uint4;
  const T* w;
  size_t k;
  struct row {
    const T* p;
  };
  __device__ __forceinline__ row at(size_t r) const { return {w + r * k}; }
  __device__ __forceinline__ uint4 load(const row& r, size_t i) const { return ld16(r.p + i); }
  /// acc + w . x over the load's inputs (x at the load's first input).
  __device__ __forceinline__ float dot(const uint4& c, const T* x, float acc) const {
    float xv[kIn], wv[kIn];
    unpack16(ld16(x), xv);
    unpack16(c, wv);
#pragma unroll
    for (int e = 0; e < kIn; ++e) acc = __fmaf_rn(wv[e], xv[e], acc);
    return acc;
  }
};

/// acc + s * sum(q' x) over a quantized load's P pieces of 8 weights (x at its first input).
template <bool AWQ>
__device__ __forceinline__ float scaled_dot(const wload& c, const bf16* x, float acc) {
  constexpr int P = AWQ ? 4 : 2;
  float part = 0.0f;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    float wv[8], xv[8];
    quant_piece<AWQ>(c.raw, p, c.zoff, wv);
    ldv<8>(x + 8 * p, xv);
#pragma unroll
    for (int e = 0; e < 8; ++e) part = __fmaf_rn(wv[e], xv[e], part);
  }
  return __fmaf_rn(c.s, part, acc);
}

struct fp8_rows {
  static constexpr int kIn = 16;
  static constexpr int kMaxLoads = 8;
  using load_t = wload;
  const uint8_t* w;  // [rows, k] e4m3
  const float* s;    // [rows, G]
  size_t k, G;
  int gshift;  // log2 of the group (a power of two, a multiple of kIn)
  struct row {
    const uint8_t* p;
    const float* s;
  };
  __device__ __forceinline__ row at(size_t r) const { return {w + r * k, s + r * G}; }
  __device__ __forceinline__ wload load(const row& r, size_t i) const {
    return {ld16(r.p + i), __ldg(r.s + (i >> gshift)), 0.0f};
  }
  __device__ __forceinline__ float dot(const wload& c, const bf16* x, float acc) const {
    return scaled_dot<false>(c, x, acc);
  }
};

struct awq_rows {
  static constexpr int kIn = 32;
  static constexpr int kMaxLoads = 8;
  using load_t = wload;
  const uint32_t* w;  // [rows, k / 8], nibble j of word c = input 8 c + j
  const uint16_t* s;  // [rows, G] fp16
  const uint8_t* z;   // [rows, G]
  size_t k, G;
  int gshift;
  struct row {
    const uint32_t* p;
    const uint16_t* s;
    const uint8_t* z;
  };
  __device__ __forceinline__ row at(size_t r) const {
    return {w + r * (k / 8), s + r * G, z + r * G};
  }
  __device__ __forceinline__ wload load(const row& r, size_t i) const {
    const size_t g = i >> gshift;
    return {ld16(r.p + i / 8), half_bits_to_float(__ldg(r.s + g)),
            8388608.0f + static_cast<float>(__ldg(r.z + g))};
  }
  __device__ __forceinline__ float dot(const wload& c, const bf16* x, float acc) const {
    return scaled_dot<true>(c, x, acc);
  }
};

}  // namespace conclave::gpu::cuda::dev
