#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/gemv_decode.h"
#include "gpu/cuda/gemv_formats.cuh"
#include "gpu/cuda/gemv_round.cuh"
#include "gpu/cuda/gemv_rows.cuh"
#include "gpu/cuda/pdl.cuh"
#include "gpu/cuda/quant_row_mma.h"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 8;

// The unit's weight rows of expert e: R consecutive rows from j0, or with SWIGLU gate
// row j0 and up row m + j0.
template <class F, int R, bool SWIGLU>
__device__ __forceinline__ void unit_rows(const F& f, int e, size_t j0, size_t n,
                                          typename F::row (&wr)[R]) {
#pragma unroll
  for (int jj = 0; jj < R; ++jj) {
    const size_t j = SWIGLU ? j0 + jj * (n / 2) : (j0 + jj < n ? j0 + jj : j0);
    wr[jj] = f.at(static_cast<size_t>(e) * n + j);
  }
}

// Block (x: kWarps units of rows, y: expert or its entry in `active`). A unit is R
// consecutive weight rows, or with SWIGLU (R = 2) gate row j and up row m + j of the
// expert's [2m, k] matrix, whose activation it writes. Each of the expert's x rows
// (usually one) is a pass over the unit's rows. A dense launch (one matrix, its rows
// known on the host) loads its first round of weights before waiting for the kernel
// before it (programmatic launch: gpu/cuda/pdl.h). F: the weights' format
// (gemv_formats.cuh).
template <class F, class T, int R, int U, bool SWIGLU>
__global__ void __launch_bounds__(kWarps * 32, 2)
    row_gemv_kernel(const T* x, const int32_t* x_rows, F f, const int32_t* offsets,
                    const int32_t* active, int32_t dense_rows, float* y, T* act, size_t n,
                    size_t k) {
  constexpr size_t kStep = static_cast<size_t>(U) * 32 * F::kIn;
  static_assert(!SWIGLU || R == 2);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const size_t unit = static_cast<size_t>(blockIdx.x) * kWarps + static_cast<size_t>(warp);
  const size_t m = n / 2;
  const size_t j0 = SWIGLU ? unit : unit * R;
  const bool live = j0 < (SWIGLU ? m : n);
  const size_t i_first = static_cast<size_t>(lane) * F::kIn;
  const bool early = offsets == nullptr && active == nullptr && live && dense_rows > 0;
  typename F::row wr[R];
  typename F::load_t raw[U][R];  // a round of weights; a dense launch's first: before the wait
  if (early) {
    unit_rows<F, R, SWIGLU>(f, static_cast<int>(blockIdx.y), j0, n, wr);
    load_round<F, R, U>(f, wr, i_first, k, raw);
  }
  dev::pdl_wait();
  dev::pdl_trigger();
  if (!live) return;
  const int e = active != nullptr ? active[blockIdx.y] : static_cast<int>(blockIdx.y);
  if (e < 0) return;
  const int32_t r0 = offsets != nullptr ? offsets[e] : 0;
  const int32_t r1 = offsets != nullptr ? offsets[e + 1] : dense_rows;
  if (r0 == r1) return;
  unit_rows<F, R, SWIGLU>(f, e, j0, n, wr);
  for (int32_t r = r0; r < r1; ++r) {
    const T* xr = x + static_cast<size_t>(x_rows != nullptr ? x_rows[r] : r) * k;
    float acc[R];
#pragma unroll
    for (int jj = 0; jj < R; ++jj) acc[jj] = 0.0f;
    bool loaded = early && r == r0;
#pragma unroll 1
    for (size_t i0 = i_first; i0 < k; i0 += kStep) {
      if (!loaded) load_round<F, R, U>(f, wr, i0, k, raw);
      loaded = false;
      dot_round<F, T, R, U>(f, raw, xr, i0, k, acc);
    }
#pragma unroll
    for (int jj = 0; jj < R; ++jj) acc[jj] = dev::warp_sum(acc[jj]);
    if (lane != 0) continue;
    if constexpr (SWIGLU) {
      dev::st(act + static_cast<size_t>(r) * m + j0, dev::silu_mul(acc[0], acc[1]));
    } else {
#pragma unroll
      for (int jj = 0; jj < R; ++jj)
        if (j0 + jj < n) y[static_cast<size_t>(r) * n + j0 + jj] = acc[jj];
    }
  }
}

// Block (x: kWarps / WPR output rows i, y: token t). The WPR warps of a row share the
// token's k experts, G at a time (G x U loads in flight: with WPR x G >= k every load of a
// row is issued in one round), and leave each expert's dot product in shared memory; the
// row's first lane then adds weight x dot in pick order, as moe_combine does.
constexpr int kMaxPicks = 64;
template <class F, class T, int G, int U, int WPR>
__global__ void __launch_bounds__(kWarps * 32, 2)
    down_combine_kernel(const T* act, F f, const int32_t* ids, const int32_t* slot_row,
                        const float* weights, int kpick, size_t n, size_t m, float* out) {
  constexpr int kRows = kWarps / WPR;
  static_assert(G * U <= F::kMaxLoads && kWarps % WPR == 0);
  __shared__ float dots[kRows][kMaxPicks];
  dev::pdl_wait();
  dev::pdl_trigger();
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int rb = warp / WPR, part = warp % WPR;
  const size_t i = static_cast<size_t>(blockIdx.x) * kRows + static_cast<size_t>(rb);
  const size_t pair0 = static_cast<size_t>(blockIdx.y) * static_cast<size_t>(kpick);
  for (int j0 = part * G; i < n && j0 < kpick; j0 += WPR * G) {
    typename F::row wr[G];
    const T* ar[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const size_t p = pair0 + static_cast<size_t>(min(j0 + g, kpick - 1));
      wr[g] = f.at(static_cast<size_t>(ids[p]) * n + i);
      ar[g] = act + static_cast<size_t>(slot_row[p]) * m;
    }
    float acc[G];
#pragma unroll
    for (int g = 0; g < G; ++g) acc[g] = 0.0f;
#pragma unroll 1
    for (size_t i0 = static_cast<size_t>(lane) * F::kIn; i0 < m; i0 += U * 32 * F::kIn) {
      typename F::load_t raw[U][G];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const size_t c = i0 + static_cast<size_t>(u) * 32 * F::kIn;
#pragma unroll
        for (int g = 0; g < G; ++g)
          if (c < m && j0 + g < kpick) raw[u][g] = f.load(wr[g], c);
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const size_t c = i0 + static_cast<size_t>(u) * 32 * F::kIn;
        if (c >= m) continue;
#pragma unroll
        for (int g = 0; g < G; ++g) {
          if (j0 + g >= kpick) continue;
          acc[g] = f.dot(raw[u][g], ar[g] + c, acc[g]);
        }
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      if (j0 + g >= kpick) break;
      const float dot = dev::warp_sum(acc[g]);
      if (lane == 0) dots[rb][j0 + g] = dot;
    }
  }
  __syncthreads();
  if (part != 0 || lane != 0 || i >= n) return;
  float total = 0.0f;
  for (int j = 0; j < kpick; ++j)
    total = __fadd_rn(total, __fmul_rn(dots[rb][j], weights[pair0 + static_cast<size_t>(j)]));
  out[static_cast<size_t>(blockIdx.y) * n + i] = total;
}

/// Inputs one 16-byte load of weights holds: plain `t`, fp8 or awq.
size_t inputs_per_load(const quant_layout& q, elem t) {
  switch (q.method) {
    case model::quant_method::fp8:
      return dev::fp8_rows::kIn;
    case model::quant_method::awq:
      return dev::awq_rows::kIn;
    case model::quant_method::none:
      break;
  }
  return 16 / elem_size(t);
}

/// 16-byte weight loads of 32 lanes that cover k inputs.
size_t lane_steps(size_t k, const quant_layout& q, elem t) {
  const size_t per = 32 * inputs_per_load(q, t);
  return (k + per - 1) / per;
}

/// Whether the row kernels take weights of layout q and activations t over rows of k
/// inputs: whole loads a row, each in one scale group (a power of two), bf16 activations
/// for quantized weights, 16-byte aligned x and w.
bool weights_ok(const quant_layout& q, elem t, size_t k, const void* x, const void* w) {
  const size_t per = inputs_per_load(q, t);
  if (k % per != 0 || !dev::aligned16(x) || !dev::aligned16(w)) return false;
  if (q.method == model::quant_method::none) return true;
  const auto g = static_cast<size_t>(q.group);
  return t == elem::bf16 && g > 0 && g % per == 0 && (g & (g - 1)) == 0;
}

/// go(format) with the format object of weights w (scales, zeros) of layout q, rows of k
/// inputs (gemv_formats.cuh); quantized formats for T = bf16 only (weights_ok).
template <class T, class Go>
void with_format(const quant_layout& q, const void* w, const void* scales, const void* zeros,
                 size_t k, Go&& go) {
  const auto G = static_cast<size_t>(q.groups(static_cast<int64_t>(k)));
  const int shift = q.group > 0 ? __builtin_ctzll(static_cast<unsigned long long>(q.group)) : 0;
  switch (q.method) {
    case model::quant_method::none:
      go(dev::plain<T>{static_cast<const T*>(w), k});
      return;
    case model::quant_method::fp8:
      if constexpr (std::is_same_v<T, dev::bf16>) {
        go(dev::fp8_rows{static_cast<const uint8_t*>(w), static_cast<const float*>(scales), k, G,
                         shift});
        return;
      }
      break;
    case model::quant_method::awq:
      if constexpr (std::is_same_v<T, dev::bf16>) {
        go(dev::awq_rows{static_cast<const uint32_t*>(w), static_cast<const uint16_t*>(scales),
                         static_cast<const uint8_t*>(zeros), k, G, shift});
        return;
      }
      break;
  }
  throw std::invalid_argument("row GEMV: quantized weights need bf16 activations");
}

/// Calls go(R, U) with the widest U (up to MaxLoads / R) the k range wants: one round for k
/// up to MaxLoads steps; R rows per warp share the rest of the load budget.
template <int MaxLoads, class Go>
void by_round(size_t steps, Go&& go) {
  using std::integral_constant;
  constexpr int L = MaxLoads;
  static_assert(L == 8 || L == 16);
  if (steps > L / 2) {
    go(integral_constant<int, 1>{}, integral_constant<int, L>{});
  } else if (steps > L / 4) {
    go(integral_constant<int, 2>{}, integral_constant<int, L / 2>{});
  } else {
    go(integral_constant<int, 4>{}, integral_constant<int, L / 4>{});
  }
}

template <class T, bool SWIGLU>
void launch_rows(const gemv_args& a, void* act, stream_t s) {
  const auto* x = static_cast<const T*>(a.x);
  const auto dense = static_cast<int32_t>(a.rows);
  with_format<T>(a.q, a.w, a.scales, a.zeros, a.k, [&](auto f) {
    using F = decltype(f);
    auto go = [&](auto r, auto u) {
      constexpr int R = decltype(r)::value, U = decltype(u)::value;
      const size_t units = SWIGLU ? a.n / 2 : (a.n + R - 1) / R;
      const dim3 grid(static_cast<unsigned>((units + kWarps - 1) / kWarps),
                      static_cast<unsigned>(a.grid_experts));
      launch_pdl(row_gemv_kernel<F, T, R, U, SWIGLU>, grid, dim3(kWarps * 32), 0, s, x, a.x_rows, f,
                 a.offsets, a.active, dense, a.y, static_cast<T*>(act), a.n, a.k);
    };
    const size_t steps = lane_steps(a.k, a.q, a.t);
    constexpr int L = F::kMaxLoads;
    if constexpr (SWIGLU) {
      using std::integral_constant;
      if (steps > L / 4) {
        go(integral_constant<int, 2>{}, integral_constant<int, L / 2>{});
      } else {
        go(integral_constant<int, 2>{}, integral_constant<int, L / 4>{});
      }
    } else {
      by_round<L>(steps, go);
    }
  });
}

/// The checks row_gemv and row_gemv_swiglu share; false: nothing to compute.
bool launchable(const gemv_args& a, const char* what) {
  if (!row_gemv_ok(a))
    throw std::invalid_argument(std::string(what) + ": not a one-row launch of its formats");
  if (a.n == 0 || a.k == 0 || a.grid_experts == 0) return false;
  if (a.offsets == nullptr && a.rows == 0) return false;
  if (a.grid_experts > 65535) throw std::invalid_argument(std::string(what) + ": too many experts");
  if (a.n / kWarps + 1 > 0x7fffffffu)
    throw std::invalid_argument(std::string(what) + ": too many rows");
  return true;
}

}  // namespace

bool row_gemv_ok(const gemv_args& a) {
  const size_t most = a.offsets != nullptr ? a.max_rows : a.rows;
  return most <= 1 && weights_ok(a.q, a.t, a.k, a.x, a.w);
}

void row_gemv(const gemv_args& a, stream_t s) {
  if (!launchable(a, "row_gemv")) return;
  if (a.qp.row_mma && quant_row_mma_ok(a.q, a.t, a.k)) return quant_row_mma(a, nullptr, s);
  CONCLAVE_DISPATCH_ELEM(a.t, T, launch_rows<T, false>(a, nullptr, s));
}

void row_gemv_swiglu(const gemv_args& a, void* act, stream_t s) {
  if (a.n % 2 != 0) throw std::invalid_argument("row_gemv_swiglu: n must be 2 m");
  if (!launchable(a, "row_gemv_swiglu")) return;
  if (a.qp.row_mma && quant_row_mma_ok(a.q, a.t, a.k)) return quant_row_mma(a, act, s);
  CONCLAVE_DISPATCH_ELEM(a.t, T, launch_rows<T, true>(a, act, s));
}

bool down_combine_ok(const down_combine_args& a) {
  return weights_ok(a.q, a.t, a.m, a.act, a.w) && a.k > 0 && a.k <= static_cast<size_t>(kMaxPicks);
}

void down_combine(const down_combine_args& a, stream_t s) {
  if (!down_combine_ok(a))
    throw std::invalid_argument("down_combine: unaligned input or k outside [1, 64]");
  if (a.tokens == 0 || a.n == 0) return;
  if (a.tokens > 65535 || a.n >= 0x7fffffffu)
    throw std::invalid_argument("down_combine: too many tokens or rows");
  if (a.quant_row_mma && quant_down_combine_mma_ok(a)) return quant_down_combine_mma(a, s);
  const size_t steps = lane_steps(a.m, a.q, a.t);
  CONCLAVE_DISPATCH_ELEM(a.t, T, with_format<T>(a.q, a.w, a.scales, a.zeros, a.m, [&](auto f) {
                           auto go = [&](auto g, auto u) {
                             constexpr int G = decltype(g)::value, U = decltype(u)::value;
                             // Warps per output row: enough that each takes one group of the k
                             // experts.
                             const size_t groups = (a.k + G - 1) / G;
                             auto launch = [&](auto wpr) {
                               constexpr int WPR = decltype(wpr)::value, kRows = kWarps / WPR;
                               const dim3 grid(static_cast<unsigned>((a.n + kRows - 1) / kRows),
                                               static_cast<unsigned>(a.tokens));
                               launch_pdl(down_combine_kernel<decltype(f), T, G, U, WPR>, grid,
                                          dim3(kWarps * 32), 0, s, static_cast<const T*>(a.act), f,
                                          a.ids, a.slot_row, a.weights, static_cast<int>(a.k), a.n,
                                          a.m, a.out);
                             };
                             using std::integral_constant;
                             if (groups <= 1) {
                               launch(integral_constant<int, 1>{});
                             } else if (groups <= 2) {
                               launch(integral_constant<int, 2>{});
                             } else if (groups <= 4) {
                               launch(integral_constant<int, 4>{});
                             } else {
                               launch(integral_constant<int, 8>{});
                             }
                           };
                           by_round<decltype(f)::kMaxLoads>(steps, go);
                         }));
}

}  // namespace conclave::gpu::cuda
