#include <cstdint>
#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/mma.cuh"
#include "gpu/cuda/moe_gemv.h"
#include "gpu/cuda/pdl.cuh"

namespace conclave::gpu::cuda {
namespace {

using dev::bf16;

constexpr int kWarps = 4;     // 16 output columns of the block's kBN each
constexpr int kBN = 64;       // weight rows (outputs) per block
constexpr int kBK = 64;       // k per pipeline stage
constexpr int kLD = kBK + 8;  // smem row: padded by 16 bytes (ldmatrix rows in distinct banks)
constexpr int kStages = 4;
/// Shared memory of a block taking its expert's rows in passes of MT 16-row tiles: the
/// stages of kBN weight rows and MT x 16 x rows. Sized per MT, so that passes of 16 rows
/// leave room for four blocks a multiprocessor (three at 64 rows).
__host__ __device__ constexpr size_t smem_bytes(int mt) {
  return static_cast<size_t>(kStages) * static_cast<size_t>(kBN + 16 * mt) * kLD * sizeof(bf16);
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
constexpr int kHalf = kBN / 2;
template <int MT, bool SWIGLU>
__global__ void __launch_bounds__(kWarps * 32)
    grouped_mma_kernel(const bf16* x, const int32_t* x_rows, const bf16* w, const int32_t* offsets,
                       const int32_t* active, int32_t dense_rows, float* y, bf16* act, int n,
                       int k) {
  extern __shared__ uint4 smem_u4[];
  auto* w_s = reinterpret_cast<bf16*>(smem_u4);  // [kStages][kBN][kLD]
  bf16* x_s = w_s + kStages * kBN * kLD;         // [kStages][MT * 16][kLD]
  static_assert(16 * MT * (kBN + 1) * sizeof(float) <= smem_bytes(MT),
                "SWIGLU's result tile reuses the stages");
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int n0 = static_cast<int>(blockIdx.x) * kBN;
  const int ktiles = (k + kBK - 1) / kBK;
  // Stage buf's kBN weight rows of k tile kt, for expert weights we.
  auto load_w = [&](const bf16* we, int kt, int buf) {
    bf16* wd = w_s + buf * kBN * kLD;
    const int c0 = kt * kBK;
    for (int i = tid; i < kBN * (kBK / 8); i += kWarps * 32) {
      const int j = i / (kBK / 8), c = (i % (kBK / 8)) * 8;
      // The weight row of block row j (SWIGLU: gate rows, then the matching up rows).
      const int wrow = SWIGLU ? (j < kHalf ? n0 / 2 + j : n / 2 + n0 / 2 + j - kHalf) : n0 + j;
      const bool ok = (SWIGLU || n0 + j < n) && c0 + c < k;
      dev::cp_async16(wd + j * kLD + c, we + (ok ? static_cast<size_t>(wrow) * k + c0 + c : 0), ok);
    }
  };
  // Without an active list the block's expert is its blockIdx.y, known before the step's
  // data: its first pass's first weight stages stream in while the kernel before this one
  // finishes (weights are no step's output, pdl.cuh). They join the first commit group.
  const bool early = active == nullptr;
  if (early) {
    const bf16* we = w + static_cast<size_t>(blockIdx.y) * n * k;
    for (int st = 0; st < kStages - 1 && st < ktiles; ++st) load_w(we, st, st);
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
  const bf16* we = w + static_cast<size_t>(e) * n * k;
  for (int32_t rb = r0; rb < r1; rb += MT * 16) {
    const int rows = min(MT * 16, r1 - rb);
    const bool weights_in = early && rb == r0;  // the prologue's weights are on their way
    auto load = [&](int kt, int buf, bool with_w) {
      if (with_w) load_w(we, kt, buf);
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
    float acc[MT][2][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
        acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;
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
      const bf16* ws = w_s + buf * kBN * kLD + warp * 16 * kLD;
      const bf16* xs = x_s + buf * MT * 16 * kLD;
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
            dev::mma(acc[mt][0], a, b[0], b[1]);
            dev::mma(acc[mt][1], a, b[2], b[3]);
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
      auto* t_s = reinterpret_cast<float*>(smem_u4);
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

template <int MT, bool SWIGLU>
void launch(const gemv_args& a, void* act, stream_t s) {
  constexpr size_t smem = smem_bytes(MT);
  CONCLAVE_CUDA_CHECK(cudaFuncSetAttribute(grouped_mma_kernel<MT, SWIGLU>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>((a.n + kBN - 1) / kBN),
                  static_cast<unsigned>(a.grid_experts));
  launch_pdl(grouped_mma_kernel<MT, SWIGLU>, grid, dim3(kWarps * 32), smem, s,
             static_cast<const bf16*>(a.x), a.x_rows, static_cast<const bf16*>(a.w), a.offsets,
             a.active, static_cast<int32_t>(a.rows), a.y, static_cast<bf16*>(act),
             static_cast<int>(a.n), static_cast<int>(a.k));
}

template <bool SWIGLU>
void checked_launch(const gemv_args& a, void* act, stream_t s) {
  if (!grouped_mma_supported(a))
    throw std::invalid_argument("grouped_mma: bf16 weights with k % 8 == 0 only");
  if (a.n == 0 || a.k == 0 || a.grid_experts == 0) return;
  if (a.offsets == nullptr && a.rows == 0) return;
  if (a.grid_experts > 65535) throw std::invalid_argument("grouped_mma: too many experts");
  if (reinterpret_cast<uintptr_t>(a.x) % 16 != 0 || reinterpret_cast<uintptr_t>(a.w) % 16 != 0)
    throw std::invalid_argument("grouped_mma: x and w must be 16-byte aligned");
  const size_t most = a.offsets != nullptr ? a.max_rows : a.rows;
  if (most <= 16) {
    launch<1, SWIGLU>(a, act, s);
  } else if (most <= 32) {
    launch<2, SWIGLU>(a, act, s);
  } else {
    launch<4, SWIGLU>(a, act, s);
  }
}

}  // namespace

bool grouped_mma_supported(const gemv_args& a) {
  return a.t == elem::bf16 && a.q.method == model::quant_method::none && a.k % 8 == 0 &&
         a.n < (1u << 30) && a.k < (1u << 30);
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
  if (tensor_cores && tokens >= kExpertMmaMinTokens && grouped_mma_supported(a)) {
    grouped_mma(a, s);
    return "tensor-core grouped GEMM";
  }
  grouped_gemv(a, s);
  return a.q.method != model::quant_method::none ? "quantized grouped GEMV" : "grouped GEMV";
}

}  // namespace conclave::gpu::cuda
