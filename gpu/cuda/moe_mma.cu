#include <cstdint>
#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/mma.cuh"
#include "gpu/cuda/moe_gemv.h"
#include "gpu/cuda/pdl.cuh"
#include "gpu/cuda/quant_elem.cuh"

namespace conclave::gpu::cuda {
namespace {

using dev::bf16;
using model::quant_method;

constexpr int kWarps = 4;     // 16 output columns of the block's kBN each
constexpr int kBN = 64;       // weight rows (outputs) per block
constexpr int kBK = 64;       // k per pipeline stage
constexpr int kLD = kBK + 8;  // smem row: padded by 16 bytes (ldmatrix rows in distinct banks)
constexpr int kStages = 4;
/// Bytes of one stage's kBN weight rows of kBK inputs as stored: bf16, fp8 or awq nibbles.
__host__ __device__ constexpr int raw_row_bytes(quant_method q) {
  return q == quant_method::fp8 ? kBK : q == quant_method::awq ? kBK / 2 : kBK * 2;
}
/// Quantized weights' scale table: the block's kBN rows x G groups of scales (fp32), and
/// for awq as many offsets 2^23 + zero.
__host__ __device__ constexpr size_t table_bytes(quant_method q, int groups) {
  return q == quant_method::none ? 0
                                 : static_cast<size_t>(kBN) * static_cast<size_t>(groups) *
                                       (q == quant_method::awq ? 8 : 4);
}
/// Shared memory of a block taking its expert's rows in passes of MT 16-row tiles: the
/// stages of kBN weight rows and MT x 16 x rows. Sized per MT, so that passes of 16 rows
/// leave room for four blocks a multiprocessor (three at 64 rows). Quantized weights: the
/// scale table, the stages of stored weight bytes and one bf16 tile they are widened into.
__host__ __device__ constexpr size_t smem_bytes(int mt, quant_method q = quant_method::none,
                                                int groups = 0) {
  const size_t x = static_cast<size_t>(kStages) * 16 * mt * kLD * sizeof(bf16);
  if (q == quant_method::none) return x + static_cast<size_t>(kStages) * kBN * kLD * sizeof(bf16);
  return table_bytes(q, groups) + static_cast<size_t>(kBN) * kLD * sizeof(bf16) +
         static_cast<size_t>(kStages) * kBN * raw_row_bytes(q) + x;
}

/// Quantized weights of grouped_mma_kernel: per-(row, group) scales (fp32 for fp8, fp16 for
/// awq), awq zeros, G groups a row of k inputs, log2 of the group (a multiple of kBK).
struct qweights {
  const void* scales = nullptr;
  const uint8_t* zeros = nullptr;
  int groups = 0, gshift = 0;
};

/// Four e4m3 bytes of w as two bf16 pairs (exact: every e4m3 value is a bf16).
__device__ __forceinline__ uint2 fp8x4_to_bf16x4(uint32_t w) {
  float f[4];
  dev::fp8x4_to_float(w, f);
  return {dev::exact_bf16x2(f[0], f[1]), dev::exact_bf16x2(f[2], f[3])};
}

// Block (kBN weight rows, expert): the expert's x rows in passes of up to MT x 16, each pass
// streaming the block's weight rows through shared memory once (cp.async, kStages deep)
// into mma.sync m16n8k16 bf16 tiles with fp32 accumulation: warp w owns output columns
// 16w .. 16w + 15 of the block for every row of the pass. x rows are gathered through
// x_rows (the permutation's token of each row) as they are copied in; rows past the
// expert's and columns past k are zero-filled, outputs past n not written.
// SWIGLU (gate/up, n = 2m, m % 32 == 0): block b's rows are gate rows 32b .. 32b + 31 and
// up rows m + 32b .. m + 32b + 31; the pass's results meet in shared memory and the block
// writes act[row, 32b + c] = silu(gate) * up as bf16 instead of y.
// Q fp8 / awq (w8a16 / w4a16, gpu/quant_layout.h; k and the scale group multiples of kBK):
// the stages hold the stored bytes, widened per k tile into one bf16 tile: e4m3 values and
// awq's q - z are exact in bf16, so the tensor cores sum q' x exactly as a bf16 GEMM would,
// and each group's partial sums are scaled once at the group's end (acc += s * part), as
// the quantized GEMVs do. The block's scales (and awq zeros) are read once into a table.
constexpr int kHalf = kBN / 2;
template <int MT, bool SWIGLU, quant_method Q = quant_method::none>
__global__ void __launch_bounds__(kWarps * 32)
    grouped_mma_kernel(const bf16* x, const int32_t* x_rows, const void* w, qweights qw,
                       const int32_t* offsets, const int32_t* active, int32_t dense_rows, float* y,
                       bf16* act, int n, int k) {
  constexpr bool kQuant = Q != quant_method::none;
  constexpr int kRaw = raw_row_bytes(Q);  // bytes of a weight row's k tile as stored
  extern __shared__ uint4 smem_u4[];
  auto* tab = reinterpret_cast<float*>(smem_u4);  // quantized: [kBN][G] scales (+ awq offsets)
  const int G = qw.groups;
  auto* stage0 = reinterpret_cast<char*>(smem_u4) + table_bytes(Q, G);
  // Plain: [kStages][kBN][kLD] bf16 stages. Quantized: the widened bf16 tile [kBN][kLD], then
  // [kStages][kBN][kRaw] stored bytes.
  auto* w_s = reinterpret_cast<bf16*>(stage0);
  char* raw_s = stage0 + kBN * kLD * sizeof(bf16);
  bf16* x_s = reinterpret_cast<bf16*>(kQuant ? raw_s + kStages * kBN * kRaw
                                             : stage0 + kStages * kBN * kLD * sizeof(bf16));
  static_assert(16 * MT * (kBN + 1) * sizeof(float) <= smem_bytes(MT, Q, 0),
                "SWIGLU's result tile reuses the stages");
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int n0 = static_cast<int>(blockIdx.x) * kBN;
  const int ktiles = (k + kBK - 1) / kBK;
  // The weight row of block row j (SWIGLU: gate rows, then the matching up rows), and
  // whether it exists.
  auto wrow_of = [&](int j) {
    return SWIGLU ? (j < kHalf ? n0 / 2 + j : n / 2 + n0 / 2 + j - kHalf) : n0 + j;
  };
  auto row_ok = [&](int j) { return SWIGLU || n0 + j < n; };
  // Stage buf's kBN weight rows of k tile kt, for expert e (16-byte copies of the stored
  // bytes: 8 bf16, 16 fp8 or 32 awq inputs).
  auto load_w = [&](int e, int kt, int buf) {
    const int c0 = kt * kBK;
    if constexpr (kQuant) {
      constexpr int kChunks = kRaw / 16;
      const size_t row_bytes = static_cast<size_t>(k) * kRaw / kBK;
      const char* we = static_cast<const char*>(w) + static_cast<size_t>(e) * n * row_bytes;
      for (int i = tid; i < kBN * kChunks; i += kWarps * 32) {
        const int j = i / kChunks, q = i % kChunks;
        const bool ok = row_ok(j);  // k is whole tiles
        const size_t src = static_cast<size_t>(wrow_of(j)) * row_bytes +
                           static_cast<size_t>(c0) * kRaw / kBK + static_cast<size_t>(q) * 16;
        dev::cp_async16(raw_s + (buf * kBN + j) * kRaw + q * 16, we + (ok ? src : 0), ok);
      }
    } else {
      const bf16* we = static_cast<const bf16*>(w) + static_cast<size_t>(e) * n * k;
      for (int i = tid; i < kBN * (kBK / 8); i += kWarps * 32) {
        const int j = i / (kBK / 8), c = (i % (kBK / 8)) * 8;
        const bool ok = row_ok(j) && c0 + c < k;
        dev::cp_async16(w_s + (buf * kBN + j) * kLD + c,
                        we + (ok ? static_cast<size_t>(wrow_of(j)) * k + c0 + c : 0), ok);
      }
    }
  };
  // The quantized block's scale table for expert e (awq: then the offsets 2^23 + zero).
  auto load_table = [&](int e) {
    if constexpr (kQuant) {
      for (int i = tid; i < kBN * G; i += kWarps * 32) {
        const int j = i / G, g = i % G;
        const size_t si = (static_cast<size_t>(e) * n + wrow_of(j)) * G + g;
        const bool ok = row_ok(j);
        if constexpr (Q == quant_method::fp8) {
          tab[i] = ok ? __ldg(static_cast<const float*>(qw.scales) + si) : 0.0f;
        } else {
          tab[i] = ok ? dev::half_bits_to_float(__ldg(static_cast<const uint16_t*>(qw.scales) + si))
                      : 0.0f;
          tab[kBN * G + i] = 8388608.0f + (ok ? static_cast<float>(__ldg(qw.zeros + si)) : 0.0f);
        }
      }
    }
  };
  // Without an active list the block's expert is its blockIdx.y, known before the step's
  // data: its first pass's first weight stages (and its scale table) stream in while the
  // kernel before this one finishes (weights are no step's output, pdl.cuh). They join the
  // first commit group.
  const bool early = active == nullptr;
  if (early) {
    for (int st = 0; st < kStages - 1 && st < ktiles; ++st)
      load_w(static_cast<int>(blockIdx.y), st, st);
    load_table(static_cast<int>(blockIdx.y));
  }
  dev::pdl_wait();
  dev::pdl_trigger();
  const int e = early ? static_cast<int>(blockIdx.y) : active[blockIdx.y];
  const int32_t r0 = e < 0 ? 0 : offsets != nullptr ? offsets[e] : 0;
  const int32_t r1 = e < 0 ? 0 : offsets != nullptr ? offsets[e + 1] : dense_rows;
  if (r0 == r1) {
    dev::cp_async_wait<0>();  // no copy into shared memory outlives its block
    return;
  }
  if (!early) load_table(e);  // read after the first __syncthreads of the k loop
  // Quantized: widens stage buf (k tile kt) into w_s.
  auto widen = [&](int kt, int buf) {
    if constexpr (Q == quant_method::fp8) {
      for (int i = tid; i < kBN * (kBK / 16); i += kWarps * 32) {
        const int j = i / (kBK / 16), c = (i % (kBK / 16)) * 16;
        const uint4 r = *reinterpret_cast<const uint4*>(raw_s + (buf * kBN + j) * kRaw + c);
        const uint2 a = fp8x4_to_bf16x4(r.x), b = fp8x4_to_bf16x4(r.y), cc = fp8x4_to_bf16x4(r.z),
                    d = fp8x4_to_bf16x4(r.w);
        auto* dst = reinterpret_cast<uint4*>(w_s + j * kLD + c);
        dst[0] = make_uint4(a.x, a.y, b.x, b.y);
        dst[1] = make_uint4(cc.x, cc.y, d.x, d.y);
      }
    } else if constexpr (Q == quant_method::awq) {
      const int g = (kt * kBK) >> qw.gshift;
      for (int i = tid; i < kBN * (kBK / 32); i += kWarps * 32) {
        const int j = i / (kBK / 32), c = (i % (kBK / 32)) * 32;
        const uint4 r = *reinterpret_cast<const uint4*>(raw_s + (buf * kBN + j) * kRaw + c / 2);
        const float zoff = tab[kBN * G + j * G + g];
        const uint32_t words[4] = {r.x, r.y, r.z, r.w};
        auto* dst = reinterpret_cast<uint4*>(w_s + j * kLD + c);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          uint32_t p[4];
#pragma unroll
          for (int h = 0; h < 4; ++h) {
            const float lo = dev::nibble_minus(words[q], 2 * h, zoff);
            const float hi = dev::nibble_minus(words[q], 2 * h + 1, zoff);
            p[h] = dev::exact_bf16x2(lo, hi);
          }
          dst[q] = make_uint4(p[0], p[1], p[2], p[3]);
        }
      }
    }
  };
  for (int32_t rb = r0; rb < r1; rb += MT * 16) {
    const int rows = min(MT * 16, r1 - rb);
    const bool weights_in = early && rb == r0;  // the prologue's weights are on their way
    auto load = [&](int kt, int buf, bool with_w) {
      if (with_w) load_w(e, kt, buf);
      bf16* xd = x_s + buf * MT * 16 * kLD;
      const int c0 = kt * kBK;
      // Only the 16-row tiles this pass uses (the mma skips the others).
      const int tile_rows = (rows + 15) / 16 * 16;
      for (int i = tid; i < tile_rows * (kBK / 8); i += kWarps * 32) {
        const int r = i / (kBK / 8), c = (i % (kBK / 8)) * 8;
        const bool ok = r < rows && c0 + c < k;
        size_t src = 0;
        if (ok) {
          const int32_t xr = x_rows != nullptr ? x_rows[rb + r] : rb + r;
          src = static_cast<size_t>(xr) * k + c0 + c;
        }
        dev::cp_async16(xd + r * kLD + c, x + src, ok);
      }
      dev::cp_async_commit();
    };
#pragma unroll
    for (int st = 0; st < kStages - 1; ++st) {
      if (st < ktiles) {
        load(st, st, !weights_in);
      } else {
        dev::cp_async_commit();
      }
    }
    float acc[MT][2][4], part[MT][2][4];  // part: the group's sums (quantized)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
        acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;
    const int group_mask = (1 << qw.gshift) - 1;
    for (int kt = 0; kt < ktiles; ++kt) {
      dev::cp_async_wait<kStages - 2>();
      __syncthreads();
      const int next = kt + kStages - 1;
      if (next < ktiles) {
        load(next, next % kStages, true);
      } else {
        dev::cp_async_commit();
      }
      const int buf = kt % kStages;
      if constexpr (kQuant) {
        widen(kt, buf);
        __syncthreads();
        if (((kt * kBK) & group_mask) == 0) {
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int nt = 0; nt < 2; ++nt)
              part[mt][nt][0] = part[mt][nt][1] = part[mt][nt][2] = part[mt][nt][3] = 0.0f;
        }
      }
      const bf16* ws = w_s + (kQuant ? 0 : buf * kBN * kLD) + warp * 16 * kLD;
      const bf16* xs = x_s + buf * MT * 16 * kLD;
      // The tile's products into sum: acc, or the quantized group's part.
      auto mma_tile = [&](float(&sum)[MT][2][4]) {
#pragma unroll
        for (int ks = 0; ks < kBK / 16; ++ks) {
          uint32_t b[4];
          dev::ldsm_x4(b,
                       ws + ((lane >> 4) * 8 + (lane & 7)) * kLD + ks * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            if (mt * 16 < rows) {  // block-uniform
              uint32_t a[4];
              dev::ldsm_x4(a, xs + (mt * 16 + (lane & 15)) * kLD + ks * 16 + (lane >> 4) * 8);
              dev::mma(sum[mt][0], a, b[0], b[1]);
              dev::mma(sum[mt][1], a, b[2], b[3]);
            }
          }
        }
      };
      if constexpr (kQuant) {
        mma_tile(part);
      } else {
        mma_tile(acc);
      }
      if constexpr (kQuant) {
        // The group's end: acc += s * part for the thread's columns (block rows).
        if ((((kt + 1) * kBK) & group_mask) == 0 || kt + 1 == ktiles) {
          const int g = (kt * kBK) >> qw.gshift;
#pragma unroll
          for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const float sc = tab[(warp * 16 + nt * 8 + 2 * (lane & 3) + c) * G + g];
#pragma unroll
              for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int half = 0; half < 2; ++half)
                  acc[mt][nt][2 * half + c] =
                      __fmaf_rn(sc, part[mt][nt][2 * half + c], acc[mt][nt][2 * half + c]);
            }
        }
      }
    }
    dev::cp_async_wait<0>();
    __syncthreads();  // the next pass refills every stage
    if constexpr (SWIGLU) {
      // The pass's [rows, kBN] results through shared memory (the stages are free now):
      // gate column c and up column c meet in one thread.
      constexpr int kTS = kBN + 1;
      auto* t_s = reinterpret_cast<float*>(stage0);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int r = mt * 16 + (lane >> 2) + half * 8;
            const int col = warp * 16 + nt * 8 + 2 * (lane & 3);
            if (r < rows) {
              t_s[r * kTS + col] = acc[mt][nt][2 * half];
              t_s[r * kTS + col + 1] = acc[mt][nt][2 * half + 1];
            }
          }
      __syncthreads();
      const int m = n / 2;
      for (int i = tid; i < rows * kHalf; i += kWarps * 32) {
        const int r = i / kHalf, c = i % kHalf;
        dev::st(act + static_cast<size_t>(rb + r) * m + n0 / 2 + c,
                dev::silu_mul(t_s[r * kTS + c], t_s[r * kTS + kHalf + c]));
      }
      __syncthreads();  // before the next pass's loads overwrite the tile
    } else {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          const int col = n0 + warp * 16 + nt * 8 + 2 * (lane & 3);
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int r = mt * 16 + (lane >> 2) + half * 8;
            if (r >= rows) continue;
            float* yr = y + static_cast<size_t>(rb + r) * n;
            if (col < n) yr[col] = acc[mt][nt][2 * half];
            if (col + 1 < n) yr[col + 1] = acc[mt][nt][2 * half + 1];
          }
        }
      }
    }
  }
}

template <int MT, bool SWIGLU, quant_method Q>
void launch(const gemv_args& a, void* act, stream_t s) {
  qweights qw;
  if constexpr (Q != quant_method::none) {
    qw.scales = a.scales;
    qw.zeros = static_cast<const uint8_t*>(a.zeros);
    qw.groups = static_cast<int>(a.q.groups(static_cast<int64_t>(a.k)));
    qw.gshift = __builtin_ctzll(static_cast<unsigned long long>(a.q.group));
  }
  const size_t smem = smem_bytes(MT, Q, qw.groups);
  auto kernel = grouped_mma_kernel<MT, SWIGLU, Q>;
  CONCLAVE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>((a.n + kBN - 1) / kBN),
                  static_cast<unsigned>(a.grid_experts));
  launch_pdl(kernel, grid, dim3(kWarps * 32), smem, s, static_cast<const bf16*>(a.x), a.x_rows, a.w,
             qw, a.offsets, a.active, static_cast<int32_t>(a.rows), a.y, static_cast<bf16*>(act),
             static_cast<int>(a.n), static_cast<int>(a.k));
}

template <int MT, bool SWIGLU>
void launch_format(const gemv_args& a, void* act, stream_t s) {
  switch (a.q.method) {
    case quant_method::none:
      return launch<MT, SWIGLU, quant_method::none>(a, act, s);
    case quant_method::fp8:
      return launch<MT, SWIGLU, quant_method::fp8>(a, act, s);
    case quant_method::awq:
      return launch<MT, SWIGLU, quant_method::awq>(a, act, s);
  }
}

template <bool SWIGLU>
void checked_launch(const gemv_args& a, void* act, stream_t s) {
  if (!grouped_mma_supported(a))
    throw std::invalid_argument(
        "grouped_mma: bf16 activations, k % 8 == 0 (quantized: k and the group multiples of 64, "
        "the group a power of two)");
  if (a.n == 0 || a.k == 0 || a.grid_experts == 0) return;
  if (a.offsets == nullptr && a.rows == 0) return;
  if (a.grid_experts > 65535) throw std::invalid_argument("grouped_mma: too many experts");
  if (reinterpret_cast<uintptr_t>(a.x) % 16 != 0 || reinterpret_cast<uintptr_t>(a.w) % 16 != 0)
    throw std::invalid_argument("grouped_mma: x and w must be 16-byte aligned");
  const size_t most = a.offsets != nullptr ? a.max_rows : a.rows;
  if (most <= 16) {
    launch_format<1, SWIGLU>(a, act, s);
  } else if (most <= 32) {
    launch_format<2, SWIGLU>(a, act, s);
  } else {
    launch_format<4, SWIGLU>(a, act, s);
  }
}

}  // namespace

bool grouped_mma_supported(const gemv_args& a) {
  if (a.t != elem::bf16 || a.k % 8 != 0 || a.n >= (1u << 30) || a.k >= (1u << 30)) return false;
  if (a.q.method == quant_method::none) return true;
  // Quantized: whole k tiles, each inside one scale group, and a scale table that fits
  // beside the stages (smem_bytes at 64-row passes, under 200 KB).
  const auto g = static_cast<size_t>(a.q.group);
  if (a.k % kBK != 0 || g == 0 || g % kBK != 0 || (g & (g - 1)) != 0) return false;
  const int groups = static_cast<int>(a.q.groups(static_cast<int64_t>(a.k)));
  return smem_bytes(4, a.q.method, groups) <= 200 * 1024;
}

bool grouped_mma_chosen(const gemv_args& a) {
  return grouped_mma_supported(a) && (a.q.method == quant_method::none || a.qp.mma);
}

void grouped_mma(const gemv_args& a, stream_t s) {
  checked_launch<false>(a, nullptr, s);
}

bool grouped_mma_swiglu_ok(const gemv_args& a) {
  return grouped_mma_supported(a) && a.n % (2 * kHalf) == 0;
}

void grouped_mma_swiglu(const gemv_args& a, void* act, stream_t s) {
  if (!grouped_mma_swiglu_ok(a))
    throw std::invalid_argument("grouped_mma_swiglu: n must be 2 m with m % 32 == 0");
  checked_launch<true>(a, act, s);
}

const char* grouped_matmul(const gemv_args& a, size_t tokens, bool tensor_cores, stream_t s) {
  if (tensor_cores && tokens >= expert_mma_min_tokens(a) && grouped_mma_chosen(a)) {
    grouped_mma(a, s);
    return a.q.method != quant_method::none ? "tensor-core grouped GEMM (weights widened to bf16)"
                                            : "tensor-core grouped GEMM";
  }
  grouped_gemv(a, s);
  return a.q.method != model::quant_method::none ? "quantized grouped GEMV" : "grouped GEMV";
}

}  // namespace conclave::gpu::cuda
