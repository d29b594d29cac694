// One-row GEMVs of fp8 / awq weights on tensor cores (quant_row_mma.h).
//
// A warp owns a tile of 16 weight rows (or, with SwiGLU, 8 gate rows and their 8 up rows)
// and a share of k in segments of 128 inputs. Lane (g = lane / 4, t = lane % 4) loads 32
// inputs of a segment for rows g and g + 8: fp8, bytes [16 t, 16 t + 16) and [64 + 16 t,
// 80 + 16 t) (so each load instruction of the four lanes reads whole 32-byte sectors);
// awq, the words [4 t, 4 t + 4) (inputs [32 t, 32 t + 32)). Those registers, widened to
// f16 pairs, are the A fragments of eight m16n8k16 steps as they are: the k order inside
// a segment is permuted, the same way for A and for B, so no shuffle is needed (fp8: step
// j reads bytes 4j..4j+3 of the lane's 32, a pair per register; awq: word j / 2's nibble
// pairs (q, q + 4), whose inputs the staged activation row stores in the order 0 4 1 5 2
// 6 3 7). The staged row keeps a lane's 8 inputs of steps 2jj, 2jj + 1 at 32 jj + 8 t, so
// the four lanes' B loads of a step pair are one 64-byte run (no bank conflict). Every
// column of B is the activation row, so c[0] and c[2] of every lane are the rows g and
// g + 8 partial sums. A segment lies in one scale group: acc += s * c, once a segment.
// Warps splitting k add their sums through shared memory.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/device_info.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/gemv_rows.cuh"
#include "gpu/cuda/kernel_switch.h"
#include "gpu/cuda/mma.cuh"
#include "gpu/cuda/pdl.cuh"
#include "gpu/cuda/quant_elem.cuh"
#include "gpu/cuda/quant_row_mma.h"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 8;
constexpr size_t kSeg = 128;               // inputs of one segment (a warp's step)
constexpr size_t kMaxK = 16384;            // activations staged as f16: 32 KiB
constexpr size_t kStageBytes = 48 * 1024;  // shared memory without opting in

/// Two e4m3 bytes (the low 16 bits) as an f16 pair, low byte in the low half: exact.
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t two) {
  const __half2_raw h =
      __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(two & 0xffffu), __NV_E4M3);
  return static_cast<uint32_t>(h.x) | (static_cast<uint32_t>(h.y) << 16);
}

// The formats. kLoads: 16-byte loads of a row a lane makes per segment; perm(p): the input
// (of 8) stored at position p of the staged activations; at(u): where the 8 inputs [u, u +
// 8) of a segment are staged (32 jj + 8 t for the lane t that reads them in steps 2jj and
// 2jj + 1); zpair(): what a row's group subtracts, as an f16 pair; frag(): step j's A
// fragment from rows g and g + 8.
struct fp8_fmt {
  static constexpr int kLoads = 2;
  const uint8_t* w;  // [rows, k] e4m3
  const float* s;    // [rows, G]
  size_t k, G;
  int gshift;
  __device__ __forceinline__ static int perm(int p) { return p; }
  // Lane t's bytes: 16 t + v (v < 16, first load), 64 + 16 t + v - 16 (second).
  __device__ __forceinline__ static int at(int u) {
    return 32 * (2 * (u >> 6) + ((u >> 3) & 1)) + 8 * ((u >> 4) & 3);
  }
  __device__ __forceinline__ void load(size_t row, size_t seg, int t, uint4 (&r)[kLoads]) const {
    const uint8_t* p = w + row * k + seg * kSeg + static_cast<size_t>(t) * 16;
    r[0] = dev::ld16(p);
    r[1] = dev::ld16(p + 64);
  }
  __device__ __forceinline__ float scale(size_t row, size_t seg) const {
    return __ldg(s + row * G + ((seg * kSeg) >> gshift));
  }
  __device__ __forceinline__ uint32_t zpair(size_t, size_t) const { return 0; }
  __device__ __forceinline__ static void frag(const uint4 (&lo)[kLoads], const uint4 (&hi)[kLoads],
                                              uint32_t, uint32_t, int j, uint32_t (&a)[4]) {
    const uint32_t wl = dev::word_of(lo[j >> 2], j & 3), wh = dev::word_of(hi[j >> 2], j & 3);
    a[0] = e4m3x2_to_f16x2(wl);
    a[1] = e4m3x2_to_f16x2(wh);
    a[2] = e4m3x2_to_f16x2(wl >> 16);
    a[3] = e4m3x2_to_f16x2(wh >> 16);
  }
};

/// Nibbles q and q + 4 of w as the f16 pair (1024 + n_q, 1024 + n_{q+4}) minus z2
/// (1024 + z in both halves): exact small integers.
__device__ __forceinline__ uint32_t nibble_pair(uint32_t w, int q, uint32_t z2) {
  const uint32_t v = ((w >> (4 * q)) & 0x000f000fu) | 0x64006400u;
  const __half2 d =
      __hsub2(*reinterpret_cast<const __half2*>(&v), *reinterpret_cast<const __half2*>(&z2));
  return *reinterpret_cast<const uint32_t*>(&d);
}

struct awq_fmt {
  static constexpr int kLoads = 1;
  const uint32_t* w;  // [rows, k / 8]
  const uint16_t* s;  // [rows, G] fp16
  const uint8_t* z;   // [rows, G]
  size_t k, G;
  int gshift;
  __device__ __forceinline__ static int perm(int p) { return (p >> 1) + 4 * (p & 1); }
  // Lane t's inputs: 32 t + 8 (word) + perm(p).
  __device__ __forceinline__ static int at(int u) { return 32 * ((u >> 3) & 3) + 8 * (u >> 5); }
  __device__ __forceinline__ void load(size_t row, size_t seg, int t, uint4 (&r)[kLoads]) const {
    r[0] = dev::ld16(w + row * (k / 8) + seg * (kSeg / 8) + static_cast<size_t>(t) * 4);
  }
  __device__ __forceinline__ float scale(size_t row, size_t seg) const {
    return __half2float(__ushort_as_half(__ldg(s + row * G + ((seg * kSeg) >> gshift))));
  }
  __device__ __forceinline__ uint32_t zpair(size_t row, size_t seg) const {
    const uint32_t h = __half_as_ushort(__float2half_rn(
        1024.0f + static_cast<float>(__ldg(z + row * G + ((seg * kSeg) >> gshift)))));
    return h | (h << 16);
  }
  __device__ __forceinline__ static void frag(const uint4 (&lo)[kLoads], const uint4 (&hi)[kLoads],
                                              uint32_t zl, uint32_t zh, int j, uint32_t (&a)[4]) {
    const uint32_t wl = dev::word_of(lo[0], j >> 1), wh = dev::word_of(hi[0], j >> 1);
    const int q = 2 * (j & 1);
    a[0] = nibble_pair(wl, q, zl);
    a[1] = nibble_pair(wh, q, zh);
    a[2] = nibble_pair(wl, q + 1, zl);
    a[3] = nibble_pair(wh, q + 1, zh);
  }
};

/// Segments a lane keeps in flight: four 16-byte loads of each of its two rows (W = 1), or
/// eight (W = 2: CONCLAVE_QUANT_ROW_MMA_WIDE=1, an A/B).
template <class F, int W>
constexpr int kUnits = 4 * W / F::kLoads;

/// The largest |v| of a bf16 row of k (a multiple of 8) as the power-of-two multiplier that
/// puts it in [2^14, 2^15), and its inverse (1 and 1 for a zero or non-finite row).
struct row_scale {
  float mul = 1.0f, inv = 1.0f;
};
__device__ __forceinline__ row_scale scale_for(float amax) {
  row_scale r;
  if (amax > 0.0f && amax <= 3.0e38f) {
    int ex;
    frexpf(amax, &ex);  // amax < 2^ex
    const int sh = max(-120, min(120, 15 - ex));
    r.mul = __int_as_float((127 + sh) << 23);
    r.inv = __int_as_float((127 - sh) << 23);
  }
  return r;
}
__device__ __forceinline__ float amax8(const uint4& v) {
  float f[8];
  dev::unpack16(v, f);
  float m = 0.0f;
#pragma unroll
  for (int e = 0; e < 8; ++e) m = fmaxf(m, fabsf(f[e]));
  return m;
}
/// Inputs [i, i + 8) of a bf16 row (v) times `mul` as f16 where F reads them in the row
/// staged at xs, in F's order.
template <class F>
__device__ __forceinline__ void stage8(const uint4& v, float mul, __half* xs, size_t i) {
  xs += (i & ~(kSeg - 1)) + static_cast<size_t>(F::at(static_cast<int>(i & (kSeg - 1))));
  float f[8];
  dev::unpack16(v, f);
  uint32_t h[4];
#pragma unroll
  for (int p = 0; p < 8; p += 2) {
    const __half2 pr = __floats2half2_rn(f[F::perm(p)] * mul, f[F::perm(p + 1)] * mul);
    h[p / 2] = *reinterpret_cast<const uint32_t*>(&pr);
  }
  *reinterpret_cast<uint4*>(xs) = make_uint4(h[0], h[1], h[2], h[3]);
}

/// The 8 steps of one segment: rows lo and hi (g and g + 8) of weights `a_lo`, `a_hi`
/// against the staged activations xs (the segment's start); c is their partial sums.
template <class F>
__device__ __forceinline__ void segment_mma(const uint4 (&a_lo)[F::kLoads],
                                            const uint4 (&a_hi)[F::kLoads], uint32_t zl,
                                            uint32_t zh, const __half* xs, int t, float (&c)[4]) {
  const __half* xb = xs + 8 * t;
#pragma unroll
  for (int jj = 0; jj < 4; ++jj) {
    const uint4 b = *reinterpret_cast<const uint4*>(xb + 32 * jj);  // steps 2jj and 2jj + 1
    uint32_t a[4];
    F::frag(a_lo, a_hi, zl, zh, 2 * jj, a);
    dev::mma_f16(c, a, b.x, b.y);
    F::frag(a_lo, a_hi, zl, zh, 2 * jj + 1, a);
    dev::mma_f16(c, a, b.z, b.w);
  }
}

/// One warp's rows lo, hi over segments first, first + KS, ... (of nseg): their scaled
/// sums (of the staged activations) added to acc_lo, acc_hi. rl, rh hold the first
/// round's loads (issued by the caller).
template <class F, int KS, int U>
__device__ __forceinline__ void rows_dot(const F& f, size_t lo, size_t hi, int first, int nseg,
                                         const __half* xs, int t, uint4 (&rl)[U][F::kLoads],
                                         uint4 (&rh)[U][F::kLoads], float& acc_lo, float& acc_hi) {
#pragma unroll 1
  for (int s0 = first; s0 < nseg; s0 += KS * U) {
    if (s0 != first) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int s = s0 + u * KS;
        if (s < nseg) {
          f.load(lo, static_cast<size_t>(s), t, rl[u]);
          f.load(hi, static_cast<size_t>(s), t, rh[u]);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int s = s0 + u * KS;
      if (s >= nseg) break;
      const auto seg = static_cast<size_t>(s);
      float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      segment_mma<F>(rl[u], rh[u], f.zpair(lo, seg), f.zpair(hi, seg), xs + seg * kSeg, t, c);
      acc_lo = __fmaf_rn(f.scale(lo, seg), c[0], acc_lo);
      acc_hi = __fmaf_rn(f.scale(hi, seg), c[2], acc_hi);
    }
  }
}

/// Block (x: kWarps / KS tiles, y: expert or its entry in `active`); KS warps split a
/// tile's k. Dense launches issue their first loads before waiting for the kernel before.
template <class F, bool SWIGLU, int KS, int W>
__global__ void __launch_bounds__(kWarps * 32)
    row_mma_kernel(const dev::bf16* x, const int32_t* x_rows, F f, const int32_t* offsets,
                   const int32_t* active, int32_t dense_rows, float* y, dev::bf16* act, size_t n,
                   size_t k) {
  constexpr int U = kUnits<F, W>;
  extern __shared__ __align__(16) unsigned char smem[];
  __half* xs = reinterpret_cast<__half*>(smem);
  float* red = reinterpret_cast<float*>(smem + k * sizeof(__half));  // [kWarps][16]
  __shared__ float wmax[kWarps];
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int g = lane >> 2, t = lane & 3, kp = warp % KS;
  const size_t tile =
      static_cast<size_t>(blockIdx.x) * (kWarps / KS) + static_cast<size_t>(warp / KS);
  const size_t m = n / 2;
  const bool live = SWIGLU ? tile * 8 < m : tile * 16 < n;
  // The tile's rows of one matrix: gate j and up m + j, or j and j + 8 (clamped).
  size_t jl, jh;
  bool ok_lo, ok_hi;
  if constexpr (SWIGLU) {
    const size_t j = tile * 8 + static_cast<size_t>(g);
    ok_lo = ok_hi = live && j < m;
    jl = min(j, m - 1);
    jh = m + jl;
  } else {
    const size_t j = tile * 16 + static_cast<size_t>(g);
    ok_lo = live && j < n;
    ok_hi = live && j + 8 < n;
    jl = min(j, n - 1);
    jh = min(j + 8, n - 1);
  }
  const int nseg = static_cast<int>(k / kSeg);
  uint4 rl[U][F::kLoads], rh[U][F::kLoads];
  const bool dense = offsets == nullptr && active == nullptr;
  auto first_round = [&](size_t base) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int s = kp + u * KS;
      if (s < nseg) {
        f.load(base + jl, static_cast<size_t>(s), t, rl[u]);
        f.load(base + jh, static_cast<size_t>(s), t, rh[u]);
      }
    }
  };
  if (dense && live && dense_rows > 0) first_round(static_cast<size_t>(blockIdx.y) * n);
  dev::pdl_wait();
  dev::pdl_trigger();
  const int e = active != nullptr ? active[blockIdx.y] : static_cast<int>(blockIdx.y);
  if (e < 0) return;  // the whole block
  const int32_t r0 = offsets != nullptr ? offsets[e] : 0;
  const int32_t r1 = offsets != nullptr ? offsets[e + 1] : dense_rows;
  if (r0 == r1) return;
  const size_t base = static_cast<size_t>(e) * n;
  if (!dense && live) first_round(base);
  // Stage the activation row as f16, scaled by a power of two.
  const dev::bf16* xr = x + static_cast<size_t>(x_rows != nullptr ? x_rows[r0] : r0) * k;
  float mx = 0.0f;
  for (size_t i = threadIdx.x * 8; i < k; i += kWarps * 32 * 8)
    mx = fmaxf(mx, amax8(dev::ld16(xr + i)));
  // (dev::block_max would do, but with it ptxas gave four of these kernels 114-123
  // registers instead of 76-80, two blocks an SM instead of three.)
  mx = dev::warp_max(mx);
  if (lane == 0) wmax[warp] = mx;
  __syncthreads();
  mx = wmax[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) mx = fmaxf(mx, wmax[w]);
  const row_scale rs = scale_for(mx);
  for (size_t i = threadIdx.x * 8; i < k; i += kWarps * 32 * 8)
    stage8<F>(dev::ld16(xr + i), rs.mul, xs, i);
  __syncthreads();
  float acc_lo = 0.0f, acc_hi = 0.0f;
  if (live) rows_dot<F, KS, U>(f, base + jl, base + jh, kp, nseg, xs, t, rl, rh, acc_lo, acc_hi);
  if constexpr (KS > 1) {
    if (t == 0) {
      red[warp * 16 + g] = acc_lo;
      red[warp * 16 + g + 8] = acc_hi;
    }
    __syncthreads();
    if (kp != 0) return;
    acc_lo = acc_hi = 0.0f;
#pragma unroll
    for (int q = 0; q < KS; ++q) {
      acc_lo += red[(warp + q) * 16 + g];
      acc_hi += red[(warp + q) * 16 + g + 8];
    }
  }
  if (t != 0) return;
  acc_lo *= rs.inv;
  acc_hi *= rs.inv;
  if constexpr (SWIGLU) {
    if (ok_lo) dev::st(act + static_cast<size_t>(r0) * m + jl, dev::silu_mul(acc_lo, acc_hi));
  } else {
    if (ok_lo) y[static_cast<size_t>(r0) * n + jl] = acc_lo;
    if (ok_hi) y[static_cast<size_t>(r0) * n + jl + 8] = acc_hi;
  }
}

/// Block (x: a tile of 16 output rows, y: token). The k picks' activation rows are staged
/// (each with its own power of two); a warp takes (pick, segment) units u = warp, warp +
/// NW, ... (NW warps) and adds weight x scale x partial sum into its rows; the warps' sums are
/// then added through shared memory. The first round of weights is in flight while the
/// inputs are staged, and, with `ids_settled` (ids written two launches back or earlier:
/// pdl.cuh), before the wait for the kernel just before.
template <class F, int NW, int W>
__global__ void __launch_bounds__(NW * 32)
    down_mma_kernel(const dev::bf16* act, F f, const int32_t* ids, const int32_t* slot_row,
                    const float* weights, int kpick, size_t n, size_t m, float* out,
                    bool ids_settled) {
  constexpr int U = kUnits<F, W>;
  extern __shared__ __align__(16) unsigned char smem[];
  __half* xs = reinterpret_cast<__half*>(smem);  // [kpick][m]
  float* red = reinterpret_cast<float*>(smem + static_cast<size_t>(kpick) * m * sizeof(__half));
  float* factor = red + NW * 16;  // [kpick]: router weight / the row's multiplier
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int g = lane >> 2, t = lane & 3;
  const size_t pair0 = static_cast<size_t>(blockIdx.y) * static_cast<size_t>(kpick);
  const size_t i = static_cast<size_t>(blockIdx.x) * 16 + static_cast<size_t>(g);
  const size_t il = min(i, n - 1), ih = min(i + 8, n - 1);
  const int nseg = static_cast<int>(m / kSeg), units = kpick * nseg;
  uint4 rl[U][F::kLoads], rh[U][F::kLoads];
  size_t lo[U], hi[U];
  // The round of units u0, u0 + NW, ...: its rows and loads.
  auto issue = [&](int u0) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int unit = u0 + u * NW;
      if (unit >= units) break;
      const size_t base = static_cast<size_t>(__ldcg(ids + pair0 + unit / nseg)) * n;
      lo[u] = base + il;
      hi[u] = base + ih;
      const auto seg = static_cast<size_t>(unit % nseg);
      f.load(lo[u], seg, t, rl[u]);
      f.load(hi[u], seg, t, rh[u]);
    }
  };
  if (ids_settled) issue(warp);
  dev::pdl_wait();
  dev::pdl_trigger();
  if (!ids_settled) issue(warp);
  for (int j = warp; j < kpick; j += NW) {
    const dev::bf16* ar = act + static_cast<size_t>(slot_row[pair0 + j]) * m;
    float mx = 0.0f;
    for (size_t i = static_cast<size_t>(lane) * 8; i < m; i += 32 * 8)
      mx = fmaxf(mx, amax8(dev::ld16(ar + i)));
    const row_scale rs = scale_for(dev::warp_max(mx));
    __half* xj = xs + static_cast<size_t>(j) * m;
    for (size_t i = static_cast<size_t>(lane) * 8; i < m; i += 32 * 8)
      stage8<F>(dev::ld16(ar + i), rs.mul, xj, i);
    if (lane == 0) factor[j] = weights[pair0 + j] * rs.inv;
  }
  __syncthreads();
  float acc_lo = 0.0f, acc_hi = 0.0f;
#pragma unroll 1
  for (int u0 = warp; u0 < units; u0 += NW * U) {
    if (u0 != warp) issue(u0);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int unit = u0 + u * NW;
      if (unit >= units) break;
      const int j = unit / nseg;
      const auto seg = static_cast<size_t>(unit % nseg);
      float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      segment_mma<F>(rl[u], rh[u], f.zpair(lo[u], seg), f.zpair(hi[u], seg),
                     xs + static_cast<size_t>(j) * m + seg * kSeg, t, c);
      acc_lo = __fmaf_rn(factor[j] * f.scale(lo[u], seg), c[0], acc_lo);
      acc_hi = __fmaf_rn(factor[j] * f.scale(hi[u], seg), c[2], acc_hi);
    }
  }
  if (t == 0) {
    red[warp * 16 + g] = acc_lo;
    red[warp * 16 + g + 8] = acc_hi;
  }
  __syncthreads();
  if (warp != 0 || t != 0) return;
  acc_lo = acc_hi = 0.0f;
#pragma unroll
  for (int w = 0; w < NW; ++w) {
    acc_lo += red[w * 16 + g];
    acc_hi += red[w * 16 + g + 8];
  }
  float* o = out + static_cast<size_t>(blockIdx.y) * n;
  if (i < n) o[i] = acc_lo;
  if (i + 8 < n) o[i + 8] = acc_hi;
}

/// go(format object) for quantized weights w of layout q over rows of k inputs.
template <class Go>
void with_qformat(const quant_layout& q, const void* w, const void* scales, const void* zeros,
                  size_t k, Go&& go) {
  const auto G = static_cast<size_t>(q.groups(static_cast<int64_t>(k)));
  const int shift = __builtin_ctzll(static_cast<unsigned long long>(q.group));
  if (q.method == model::quant_method::fp8) {
    go(fp8_fmt{static_cast<const uint8_t*>(w), static_cast<const float*>(scales), k, G, shift});
  } else {
    go(awq_fmt{static_cast<const uint32_t*>(w), static_cast<const uint16_t*>(scales),
               static_cast<const uint8_t*>(zeros), k, G, shift});
  }
}

/// CONCLAVE_QUANT_ROW_MMA_WIDE=1 (an A/B, off by default): twice the loads in flight a lane,
/// and 16-warp blocks for a down launch of fewer blocks than SMs.
bool wide_rounds() {
  static const bool on = kernel_switch_on("CONCLAVE_QUANT_ROW_MMA_WIDE", false);
  return on;
}

/// CONCLAVE_QUANT_DOWN_EARLY=0 (an A/B): the down kernel waits for gate/up before it reads
/// ids and loads weights even where the caller says ids is settled.
bool down_early() {
  static const bool on = kernel_switch_on("CONCLAVE_QUANT_DOWN_EARLY", true);
  return on;
}

/// Warps per tile: enough that the launch has about 2,048 warps, at most 8, each with at
/// least two segments.
int k_split(size_t tiles, size_t nseg) {
  int ks = 1;
  while (ks < kWarps && tiles * static_cast<size_t>(ks) < 2048 &&
         static_cast<size_t>(ks) * 2 <= nseg)
    ks *= 2;
  return ks;
}

}  // namespace

bool quant_row_mma_ok(const quant_layout& q, elem t, size_t k) {
  if (q.method == model::quant_method::none || t != elem::bf16) return false;
  const auto g = static_cast<size_t>(q.group);
  return k > 0 && k % kSeg == 0 && k <= kMaxK && g >= kSeg && g % kSeg == 0 && (g & (g - 1)) == 0;
}

void quant_row_mma(const gemv_args& a, void* act, stream_t s) {
  if (!row_gemv_ok(a) || !quant_row_mma_ok(a.q, a.t, a.k))
    throw std::invalid_argument("quant_row_mma: not a one-row launch of fp8 / awq weights");
  if (a.n == 0 || a.grid_experts == 0 || (a.offsets == nullptr && a.rows == 0)) return;
  const bool swiglu = act != nullptr;
  if (swiglu && a.n % 2 != 0) throw std::invalid_argument("quant_row_mma: SwiGLU needs n = 2 m");
  const size_t tiles = swiglu ? (a.n / 2 + 7) / 8 : (a.n + 15) / 16;
  const int ks = k_split(tiles * std::min<size_t>(a.grid_experts, 16), a.k / kSeg);
  const size_t smem = a.k * sizeof(uint16_t) + kWarps * 16 * sizeof(float);
  const auto* x = static_cast<const dev::bf16*>(a.x);
  const auto dense = static_cast<int32_t>(a.rows);
  with_qformat(a.q, a.w, a.scales, a.zeros, a.k, [&](auto f) {
    using F = decltype(f);
    auto go = [&](auto sw, auto ksc) {
      constexpr int KS = decltype(ksc)::value;
      const size_t per = kWarps / KS;
      const dim3 grid(static_cast<unsigned>((tiles + per - 1) / per),
                      static_cast<unsigned>(a.grid_experts));
      // Warps with more segments than one round holds keep twice the loads in flight
      // under the A/B switch.
      if (wide_rounds() && a.k / kSeg > static_cast<size_t>(KS * kUnits<F, 1>)) {
        launch_pdl(row_mma_kernel<F, decltype(sw)::value, KS, 2>, grid, dim3(kWarps * 32), smem, s,
                   x, a.x_rows, f, a.offsets, a.active, dense, a.y, static_cast<dev::bf16*>(act),
                   a.n, a.k);
      } else {
        launch_pdl(row_mma_kernel<F, decltype(sw)::value, KS, 1>, grid, dim3(kWarps * 32), smem, s,
                   x, a.x_rows, f, a.offsets, a.active, dense, a.y, static_cast<dev::bf16*>(act),
                   a.n, a.k);
      }
    };
    auto by_ks = [&](auto sw) {
      using std::integral_constant;
      switch (ks) {
        case 1:
          return go(sw, integral_constant<int, 1>{});
        case 2:
          return go(sw, integral_constant<int, 2>{});
        case 4:
          return go(sw, integral_constant<int, 4>{});
        default:
          return go(sw, integral_constant<int, 8>{});
      }
    };
    if (swiglu) {
      by_ks(std::true_type{});
    } else {
      by_ks(std::false_type{});
    }
  });
}

bool quant_down_combine_mma_ok(const down_combine_args& d) {
  return down_combine_ok(d) && quant_row_mma_ok(d.q, d.t, d.m) &&
         d.k * d.m * sizeof(uint16_t) + (16 * 16 + d.k) * sizeof(float) <= kStageBytes;
}

void quant_down_combine_mma(const down_combine_args& d, stream_t s) {
  if (!quant_down_combine_mma_ok(d))
    throw std::invalid_argument("quant_down_combine_mma: not a launch of fp8 / awq weights");
  if (d.tokens == 0 || d.n == 0) return;
  if (d.tokens > 65535 || d.n >= 0x7fffffffu)
    throw std::invalid_argument("quant_down_combine_mma: too many tokens or rows");
  const dim3 grid(static_cast<unsigned>((d.n + 15) / 16), static_cast<unsigned>(d.tokens));
  // Launches of fewer blocks than SMs (the 30B shape's 2,048 rows: 128 tiles) take 16
  // warps a block under the A/B switch.
  const bool wide = wide_rounds() && grid.x * grid.y < static_cast<unsigned>(current_sm_count());
  with_qformat(d.q, d.w, d.scales, d.zeros, d.m, [&](auto f) {
    auto go = [&](auto nw, auto w) {
      constexpr int NW = decltype(nw)::value;
      const size_t smem = d.k * d.m * sizeof(uint16_t) + (NW * 16 + d.k) * sizeof(float);
      launch_pdl(down_mma_kernel<decltype(f), NW, decltype(w)::value>, grid, dim3(NW * 32), smem, s,
                 static_cast<const dev::bf16*>(d.act), f, d.ids, d.slot_row, d.weights,
                 static_cast<int>(d.k), d.n, d.m, d.out, d.ids_settled && down_early());
    };
    using std::integral_constant;
    if (wide) {
      go(integral_constant<int, 16>{}, integral_constant<int, 2>{});
    } else {
      go(integral_constant<int, kWarps>{}, integral_constant<int, 1>{});
    }
  });
}

}  // namespace conclave::gpu::cuda
