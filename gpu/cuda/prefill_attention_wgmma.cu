// Hopper prefill attention (head_dim 128): the flash-attention loop of prefill_attention.cu
// on warpgroup MMAs. A block of two warpgroups takes a tile of up to 128 query rows of one
// query head; each warpgroup owns 64 rows. Per KV tile of 128 keys, S = Q K^T is one chain
// of wgmma m64n128k16 with Q and K in 128-byte-swizzled shared memory; the online softmax
// runs on S in registers; P goes back into the tensor cores from registers (O += P V, V
// read N-major from the same swizzled layout). The next KV tiles stream in while this one
// is computed: by cp.async, issued by the computing warps or (kProducer, kPingPong) by a
// third warpgroup of their own, or (TMA: a bf16 cache whose blocks tile the 128 keys) by
// the tensor memory accelerator, one lane per block of keys and half row.
#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include <cuda.h>  // CUtensorMap (the encoder comes from the driver at run time)

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/kv_chunk.cuh"
#include "gpu/cuda/kv_elem.cuh"
#include "gpu/cuda/mbarrier.cuh"
#include "gpu/cuda/mma.cuh"
#include "gpu/cuda/prefill_attention.h"
#include "gpu/cuda/wgmma.cuh"
#include "gpu/cuda/wgmma_softmax.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kHd = 128;
[[maybe_unused]] constexpr int kRows =
    kPrefillWideTileRows;                    // query rows per block, 64 per warpgroup
[[maybe_unused]] constexpr int kKeys = 128;  // keys per KV tile
constexpr int kThreads = 256;                // the two computing warpgroups
// A [128][128] bf16 tile: two column blocks of 64 elements (128-byte rows), each block
// 128 rows of swizzle atoms.
constexpr uint32_t kBlockBytes = 128 * 128;
constexpr uint32_t kTileBytes = 2 * kBlockBytes;
constexpr int kSerial = kWgmmaSerial, kOverlap = kWgmmaOverlap, kDecoupled = kWgmmaDecoupled;
constexpr int kProducer = kWgmmaProducer, kPingPong = kWgmmaPingPong;
/// A block's threads: the schedules with a loading warpgroup have three.
__host__ __device__ constexpr int block_threads(int mode) {
  return mode >= kProducer ? 3 * 128 : kThreads;
}
/// Q, K and V stages (2 + 2, 2 + 3, 3 + 3), alignment, the six mbarriers.
constexpr size_t smem_bytes(int mode) {
  return (mode == 0 ? 5 : mode == 1 ? 6 : 7) * size_t{kTileBytes} + 1024 + 64;
}

/// Byte offset of 16-byte chunk `c` (0..15, 8 elements) of row r in a swizzled tile.
[[maybe_unused]] __device__ __forceinline__ uint32_t sw(int r, int c) {
  return static_cast<uint32_t>((c >> 3) * kBlockBytes + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

#ifdef CONCLAVE_WGMMA
/// S = Q K^T for this warpgroup's 64 rows (one committed group).
__device__ __forceinline__ void issue_qk(float (&s)[64], uint32_t q_addr, uint32_t kt) {
#pragma unroll
  for (int ks = 0; ks < kHd / 16; ++ks) {
    const uint32_t off = (ks >> 2) * kBlockBytes + (ks & 3) * 32;
    dev::wgmma_m64n128k16_ss(s, dev::wgmma_desc(q_addr + off, 16, 1024),
                             dev::wgmma_desc(kt + off, 16, 1024), ks > 0);
  }
  dev::wgmma_commit();
}

/// O += P V (one committed group); V N-major in the swizzled tile at vt.
__device__ __forceinline__ void issue_pv(float (&o)[64], uint32_t (&pf)[8][4], uint32_t vt) {
#pragma unroll
  for (int kk = 0; kk < kKeys / 16; ++kk)
    dev::wgmma_m64n128k16_rs_mn(o, pf[kk], dev::wgmma_desc(vt + kk * 16 * 128, kBlockBytes, 1024));
  dev::wgmma_commit();
}

__device__ __forceinline__ void fence_pf(uint32_t (&pf)[8][4]) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) dev::wgmma_fence_operands(pf[kk]);
}

/// Named barriers over the two computing warpgroups (id 0 is __syncthreads').
__device__ __forceinline__ void bar_sync(int id) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "n"(kThreads) : "memory");
}
__device__ __forceinline__ void bar_arrive(int id) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "n"(kThreads) : "memory");
}
/// Hands registers between warpgroups: the loading warpgroup gives up what the computing
/// ones take (65,536 a multiprocessor: 128 x 40 + 256 x 232).
constexpr int kLoaderRegs = 40, kComputeRegs = 232;
__device__ __forceinline__ void regs_to_loader() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kLoaderRegs));
}
__device__ __forceinline__ void regs_to_compute() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kComputeRegs));
}
#endif

// The schedules (prefill_attention_args::wgmma_schedule):
// kSerial: per tile, S = Q K^T, softmax, O += P V, one after the other; a block barrier
//   between tiles (two K and V stages).
// kOverlap: each warpgroup issues S(j) = Q K(j)^T and then O += P(j-1) V(j-1) before it
//   waits for S(j), so the softmax of tile j runs while the tensor cores multiply the
//   previous tile's P V (FlashAttention-3's intra-warpgroup pipelining). V then needs three
//   stages: V(j-1) is read while V(j+1) streams in. Still a block barrier per tile.
// kDecoupled: kOverlap without the block barrier: three stages of K and V, each with a
//   "full" mbarrier (every thread's share of the copies landed) and an "empty" one (both
//   warpgroups done with it), so one warpgroup's softmax can run under the other's wgmmas.
// kProducer: kDecoupled with the loads issued by a third warpgroup (FlashAttention-3's
//   warp specialisation): the computing warpgroups spend no issue slots on block-table
//   reads and copy addresses, and take the loader's registers (setmaxnreg).
// kPingPong: kProducer with the two computing warpgroups taking turns to issue their
//   wgmmas (named barriers), so that one's softmax runs while the other's multiply.
// TMA (bf16 cache, kDecoupled and later): the KV tiles arrive by TMA from tmk / tmv (the
//   caches as [num_slots][kv_heads * 128] bf16, boxes of 64 columns by box_rows keys,
//   128-byte swizzle: the layout sw() describes) instead of cp.async: the first loading
//   warp's lanes each issue one box of K and one of V (a block of keys, half a row), the
//   other threads issue nothing. A box wholly outside the keys [lo, ctx) is read past the
//   tensor's end (zeros, no block-table read); a box partly outside reads the cache slots
//   around the valid keys (finite: the cache starts zeroed), which the mask removes.
template <bool FP8, int MODE, bool TMA = false>
__global__ void __launch_bounds__(block_threads(MODE), 1)
    prefill_attention_wgmma_kernel(const float* q, size_t q_stride, const void* kc, const void* vc,
                                   size_t row_bytes, const prefill_tile* tiles,
                                   const int32_t* tables, int32_t bs, int heads, int kv_heads,
                                   int pack, float qscale, int window, dev::bf16* out,
                                   float* split_ws, const __grid_constant__ CUtensorMap tmk,
                                   const __grid_constant__ CUtensorMap tmv, int box_rows,
                                   int num_slots) {
#ifdef CONCLAVE_WGMMA
  static_assert(!TMA || (!FP8 && MODE >= kDecoupled), "TMA: bf16 cache, mbarrier schedules");
  constexpr bool OVERLAP = MODE != kSerial;
  constexpr bool DECOUPLED = MODE >= kDecoupled;  // the stages' mbarriers
  constexpr bool PRODUCER = MODE >= kProducer;
  constexpr bool PINGPONG = MODE == kPingPong;
  constexpr int kLoaders = PRODUCER ? 128 : kThreads;  // threads that issue the KV loads
  constexpr int kVStages = OVERLAP ? 3 : 2;
  constexpr int kKStages = DECOUPLED ? 3 : 2;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) &
                                             ~static_cast<uintptr_t>(1023));
  uint8_t* q_s = base;
  uint8_t* k_s = base + kTileBytes;                   // [kKStages] tiles
  uint8_t* v_s = base + (1 + kKStages) * kTileBytes;  // [kVStages] tiles
  // kDecoupled: full[3], empty[3] after the tiles
  auto* bars = reinterpret_cast<uint64_t*>(base + (1 + kKStages + kVStages) * kTileBytes);
  // Heaviest tiles (latest positions) first; the query heads of one KV head side by side,
  // so that they read the same keys at about the same time (L2).
  const int tile_index = static_cast<int>(gridDim.y - 1 - blockIdx.y);
  const prefill_tile tile = tiles[tile_index];
  // pack 1: block x is query head h, its rows the tile's positions. pack = the GQA group
  // (packed GQA): block x is KV head g and row r is position r / pack of query head
  // g * pack + r % pack, so a short chunk still fills the 128 rows and each KV tile is read
  // once for the group.
  const int h = static_cast<int>(blockIdx.x);
  const int g = pack == 1 ? h / (heads / kv_heads) : h;
  auto row_head = [&](int r) { return pack == 1 ? h : g * pack + r % pack; };
  const int32_t* table = tables + tile.table_offset;
  const size_t width = static_cast<size_t>(kv_heads) * kHd;
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  // The warpgroup, broadcast so that the compiler keeps it (and the wgmma descriptors made
  // from it) in uniform registers.
  const int wg = __shfl_sync(0xffffffffu, warp >> 2, 0), wq = warp & 3;
  const int nrows = tile.rows * pack, p0 = tile.first_pos;  // rows of the block
  const int ctx = p0 + tile.rows;
  const int lo = window > 0 ? max(0, p0 + 1 - window) : 0;
  // Split over the context (gridDim.z > 1): this block takes KV tiles [j0, ntiles) of the
  // tile's range and leaves its unnormalized output, running max and sum in split_ws for
  // prefill_split_merge_kernel.
  const int first = lo / kKeys, last = (ctx + kKeys - 1) / kKeys;
  const int per = (last - first + static_cast<int>(gridDim.z) - 1) / static_cast<int>(gridDim.z);
  const int j0 = min(last, first + static_cast<int>(blockIdx.z) * per);
  const int ntiles = min(last, j0 + per);
  // split_ws: [slice][tile][kRows / pack positions][head] outputs (kHd floats), then
  // (m, l) pairs.
  const int ws_tile = kRows / pack;
  const size_t ws_rows = static_cast<size_t>(gridDim.y) * ws_tile;
  const size_t ws_o = gridDim.z * ws_rows * heads;
  auto ws_at = [&](int r) {
    return (blockIdx.z * ws_rows + static_cast<size_t>(tile_index) * ws_tile + r / pack) * heads +
           row_head(r);
  };
  if (j0 >= ntiles) {  // an empty slice: no key of it for any row
    for (int r = tid; r < nrows; r += block_threads(MODE)) {
      split_ws[ws_o * kHd + 2 * ws_at(r)] = -INFINITY;
      split_ws[ws_o * kHd + 2 * ws_at(r) + 1] = 0.0f;
    }
    return;
  }
  const int bs_shift = (bs & (bs - 1)) == 0 ? __ffs(bs) - 1 : -1;

  // Stage of tile j's K and V; kDecoupled counts from j0 (use n = (j - j0) / 3 of a stage).
  auto k_stage = [&](int j) { return DECOUPLED ? (j - j0) % 3 : j & 1; };
  auto v_stage = [&](int j) { return DECOUPLED ? (j - j0) % 3 : j % kVStages; };
  // Cache slot of key t in block blk (blk = t / bs).
  auto slot_of = [&](int t, int blk) { return table[blk] * bs + (t - blk * bs); };
  auto load_kv = [&](int j) {
    const int lt = PRODUCER ? tid - kThreads : tid;  // this thread among the loaders
    if constexpr (TMA) {                             // only the first loading warp issues
      if (lt >= 32) return;
    }
    if constexpr (DECOUPLED) {  // the stage's previous tile released by every thread
      const int n = (j - j0) / 3;
      if (n > 0) dev::mbar_wait(bars + 3 + k_stage(j), static_cast<uint32_t>((n - 1) & 1));
    }
    uint8_t* kd = k_s + k_stage(j) * kTileBytes;
    uint8_t* vd = v_s + v_stage(j) * kTileBytes;
    if constexpr (TMA) {
      // Lane 2 b + half: keys [t0, t0 + box_rows) of the tile, columns half * 64 of head g.
      if (lt == 0) dev::mbar_arrive_expect_tx(bars + k_stage(j), 2 * kTileBytes);
      if (lt < 2 * (kKeys / box_rows)) {
        const int b = lt >> 1, half = lt & 1;
        const int t0 = j * kKeys + b * box_rows;
        int row = num_slots;  // past the end: zeros
        if (t0 < ctx && t0 + box_rows > lo)
          row = slot_of(t0, bs_shift >= 0 ? t0 >> bs_shift : t0 / bs);
        const int col = g * kHd + half * 64;
        const uint32_t at = half * kBlockBytes + b * box_rows * 128;
        dev::tma_load_2d(kd + at, &tmk, col, row, bars + k_stage(j));
        dev::tma_load_2d(vd + at, &tmv, col, row, bars + k_stage(j));
      }
      return;
    }
    // Thread lt copies 16-byte chunk c of keys r, r + kStep, ... of the tile. kStep (8 or 16
    // keys) is a multiple of the swizzle's 8 rows, so each copy's shared address is the
    // first's plus kStep rows and its cache address the row's plus a per-thread column:
    // per copy, a block-table read and a multiply (the block index a shift where bs is a
    // power of two: the division's path is a loop of its own).
    const int c = lt & 15, r = lt >> 4;
    constexpr int kStep = kLoaders / 16;
    const uint32_t d0 = sw(r, c);
    const int tb = j * kKeys + r;
    const size_t col = static_cast<size_t>(g) * kHd + c * 8;
    auto copy_all = [&](auto block_of) {
#pragma unroll
      for (int n = 0; n < kKeys / kStep; ++n) {
        const int t = tb + n * kStep;
        const bool ok = t >= lo && t < ctx;
        const int slot = ok ? slot_of(t, block_of(t)) : 0;
        const uint32_t dst = d0 + n * kStep * 128;
        if constexpr (FP8) {
          uint4 kb, vb;
          dev::fp8_kv_chunk(kc, vc, static_cast<size_t>(slot), row_bytes, width, g, kHd, c * 8, ok,
                            kb, vb);
          *reinterpret_cast<uint4*>(kd + dst) = kb;
          *reinterpret_cast<uint4*>(vd + dst) = vb;
        } else {
          const size_t src = static_cast<size_t>(slot) * width + col;
          dev::cp_async16(kd + dst, static_cast<const dev::bf16*>(kc) + src, ok);
          dev::cp_async16(vd + dst, static_cast<const dev::bf16*>(vc) + src, ok);
        }
      }
    };
    if (bs_shift >= 0) {
      copy_all([&](int t) { return t >> bs_shift; });
    } else {
      copy_all([&](int t) { return t / bs; });
    }
    if constexpr (DECOUPLED) {
      if constexpr (FP8) {
        dev::fence_proxy_async();
        dev::mbar_arrive(bars + k_stage(j));
      } else {
        dev::mbar_arrive_cp_async(bars + k_stage(j));
      }
    } else {
      dev::cp_async_commit();
    }
  };
  if constexpr (DECOUPLED) {
    if (tid == 0) {
      for (int i = 0; i < 6; ++i) dev::mbar_init(bars + i, i < 3 ? (TMA ? 1 : kLoaders) : kThreads);
      if constexpr (TMA) dev::mbar_init_fence();
    }
    __syncthreads();
  }
  if constexpr (PRODUCER) {
    if (wg == 2) {  // the loading warpgroup: every tile, as the stages free up
      regs_to_loader();
      for (int j = j0; j < ntiles; ++j) load_kv(j);
      if constexpr (!FP8) dev::cp_async_wait<0>();
      return;
    }
    regs_to_compute();
  } else {
    load_kv(j0);
  }

  // Q rows of the tile, scaled into log2 units, as bf16 (rows past the tile: zeros).
  for (int i = tid; i < kRows * 16; i += kThreads) {
    const int r = i >> 4, c = i & 15;
    float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f), b = a;
    if (r < nrows) {
      const float* src = q + static_cast<size_t>(tile.first_row + r / pack) * q_stride +
                         static_cast<size_t>(row_head(r)) * kHd + c * 8;
      a = *reinterpret_cast<const float4*>(src);
      b = *reinterpret_cast<const float4*>(src + 4);
    }
    *reinterpret_cast<uint4*>(q_s + sw(r, c)) = make_uint4(
        dev::pack_bf16(a.x * qscale, a.y * qscale), dev::pack_bf16(a.z * qscale, a.w * qscale),
        dev::pack_bf16(b.x * qscale, b.y * qscale), dev::pack_bf16(b.z * qscale, b.w * qscale));
  }

  float o[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) o[i] = 0.0f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
  // The accumulator layout: warp wq of the warpgroup holds rows 16 wq + lane / 4 and + 8;
  // element 4 n + e is column 8 n + 2 (lane % 4) + e % 2 of row a (e < 2) or b.
  const int row_a = wg * 64 + wq * 16 + (lane >> 2), row_b = row_a + 8;
  const int pos_a = p0 + min(row_a, nrows - 1) / pack, pos_b = p0 + min(row_b, nrows - 1) / pack;
  const int wg_first = p0 + min(wg * 64, nrows - 1) / pack;
  const int wg_last = p0 + min(wg * 64 + 63, nrows - 1) / pack;
  const uint32_t q_addr = dev::smem_addr(q_s) + wg * 64 * 128;
  // Whether a tile needs the per-element mask for this warpgroup's rows (uniform).
  auto masked = [&](int kbase) {
    return kbase + kKeys - 1 > wg_first || (window > 0 && kbase <= wg_last - window);
  };
  const uint32_t kt0 = dev::smem_addr(k_s), vt0 = dev::smem_addr(v_s);
  auto k_tile = [&](int j) { return kt0 + k_stage(j) * kTileBytes; };
  auto v_tile = [&](int j) { return vt0 + v_stage(j) * kTileBytes; };
  if constexpr (OVERLAP) {
    // Both warpgroups take every tile of the block (the rows of the first warpgroup mask
    // the one tile past their diagonal): divergence around the wgmmas would serialize them.
    // Tile j arrived during iteration j - 1; after the barrier every warpgroup is done with
    // K(j - 1) and V(j - 2), whose stages tile j + 1 takes. Its loads are issued after this
    // iteration's wgmmas (their block-table reads would otherwise stall the tensor cores).
    // kDecoupled: tile j's copies landed (every thread's share), then this thread's view of
    // them handed to the tensor cores' proxy; stage release after its P V.
    auto arrive = [&](int j) {
      if constexpr (DECOUPLED) {
        dev::mbar_wait(bars + k_stage(j), static_cast<uint32_t>(((j - j0) / 3) & 1));
        dev::fence_proxy_async();
      } else {
        dev::cp_async_wait<0>();
        dev::fence_proxy_async();
        __syncthreads();
      }
    };
    if constexpr (DECOUPLED) {  // Q's stores, seen by every warpgroup's wgmmas
      dev::fence_proxy_async();
      if constexpr (PRODUCER)
        bar_sync(1);  // the computing warpgroups only
      else
        __syncthreads();
    }
    // kPingPong's turns: a warpgroup issues its wgmmas after the other's (barrier 2 + wg,
    // passed by the other warpgroup), the first warpgroup first. Both take the same number
    // of turns; the second one's last pass would have no taker.
    auto turn_wait = [&] {
      if constexpr (PINGPONG) bar_sync(2 + wg);
    };
    auto turn_pass = [&](bool last) {
      if constexpr (PINGPONG)
        if (!(last && wg == 1)) bar_arrive(2 + (wg ^ 1));
    };
    if constexpr (PINGPONG)
      if (wg == 1) bar_arrive(2);
    uint32_t pf[8][4];  // P of the previous tile
    float al_a, al_b;
    {
      arrive(j0);
      float s[64];
      dev::wgmma_fence();
      turn_wait();
      issue_qk(s, q_addr, k_tile(j0));
      turn_pass(false);
      if (!PRODUCER && j0 + 1 < ntiles) load_kv(j0 + 1);
      dev::wgmma_wait<0>();
      dev::wgmma_fence_operands(s);
      dev::online_softmax(s, masked(j0 * kKeys), j0 * kKeys, lane, pos_a, pos_b, window, m_a, m_b,
                          l_a, l_b, al_a, al_b);  // o is zero: nothing to rescale
      dev::pack_p(s, pf);
    }
    for (int j = j0 + 1; j < ntiles; ++j) {
      arrive(j);
      float s[64];
      dev::wgmma_fence_operands(o);
      fence_pf(pf);
      dev::wgmma_fence();
      turn_wait();
      issue_qk(s, q_addr, k_tile(j));
      issue_pv(o, pf, v_tile(j - 1));
      turn_pass(false);
      if (!PRODUCER && j + 1 < ntiles) load_kv(j + 1);
      dev::wgmma_wait<1>();  // S(j) done; P(j - 1) V(j - 1) may still run
      dev::wgmma_fence_operands(s);
      const bool move = dev::online_softmax(s, masked(j * kKeys), j * kKeys, lane, pos_a, pos_b,
                                            window, m_a, m_b, l_a, l_b, al_a, al_b);
      dev::wgmma_wait<0>();
      dev::wgmma_fence_operands(o);
      fence_pf(pf);
      if constexpr (DECOUPLED) dev::mbar_arrive(bars + 3 + k_stage(j - 1));  // K(j-1), V(j-1) done
      dev::pack_p(s, pf);  // P(j - 1) V(j - 1) has read pf
      if (move) dev::rescale(o, al_a, al_b);
    }
    dev::wgmma_fence_operands(o);
    fence_pf(pf);
    dev::wgmma_fence();
    turn_wait();
    issue_pv(o, pf, v_tile(ntiles - 1));
    turn_pass(true);
    dev::wgmma_wait<0>();
    dev::wgmma_fence_operands(o);
    fence_pf(pf);
  } else {
    for (int j = j0; j < ntiles; ++j) {
      dev::cp_async_wait<0>();
      dev::fence_proxy_async();  // cp.async / stores -> the tensor cores' reads
      __syncthreads();
      const int kbase = j * kKeys;
      // Tile j + 1 streams into the stage tile j - 1 left while this one is computed (the
      // loads go out after S's wgmmas, or first where this warpgroup skips the tile).
      bool loaded = j + 1 >= ntiles;
      // Warpgroup-uniform: a tile wholly in this warpgroup's future, or wholly before the
      // window of its first row, is skipped.
      if (kbase <= wg_last && (window == 0 || kbase + kKeys > wg_first + 1 - window)) {
        float s[64];
        uint32_t pf[8][4];
        float al_a, al_b;
        dev::wgmma_fence();
        issue_qk(s, q_addr, k_tile(j));
        if (!loaded) load_kv(j + 1);
        loaded = true;
        dev::wgmma_wait<0>();
        dev::wgmma_fence_operands(s);
        if (dev::online_softmax(s, masked(kbase), kbase, lane, pos_a, pos_b, window, m_a, m_b, l_a,
                                l_b, al_a, al_b))
          dev::rescale(o, al_a, al_b);
        dev::pack_p(s, pf);
        dev::wgmma_fence_operands(o);
        dev::wgmma_fence();
        issue_pv(o, pf, v_tile(j));
        dev::wgmma_wait<0>();
        dev::wgmma_fence_operands(o);
        fence_pf(pf);
      }
      if (!loaded) load_kv(j + 1);
      __syncthreads();  // this stage is refilled by the next iteration's load
    }
  }
  l_a = dev::quad_sum(l_a);
  l_b = dev::quad_sum(l_b);
  if (gridDim.z > 1) {
    for (int half = 0; half < 2; ++half) {
      const int r = half == 0 ? row_a : row_b;
      if (r >= nrows) continue;
      float* wo = split_ws + ws_at(r) * kHd;
#pragma unroll
      for (int nt = 0; nt < kHd / 8; ++nt)
        *reinterpret_cast<float2*>(wo + nt * 8 + 2 * (lane & 3)) =
            make_float2(o[nt * 4 + 2 * half], o[nt * 4 + 2 * half + 1]);
      if ((lane & 3) == 0) {
        split_ws[ws_o * kHd + 2 * ws_at(r)] = half == 0 ? m_a : m_b;
        split_ws[ws_o * kHd + 2 * ws_at(r) + 1] = half == 0 ? l_a : l_b;
      }
    }
    return;
  }
  const float inv_a = 1.0f / l_a, inv_b = 1.0f / l_b;
  const size_t ostride = static_cast<size_t>(heads) * kHd;
  auto out_row = [&](int r) {
    return out + static_cast<size_t>(tile.first_row + r / pack) * ostride +
           static_cast<size_t>(row_head(r)) * kHd + 2 * (lane & 3);
  };
  dev::bf16* out_a = out_row(row_a);
  dev::bf16* out_b = out_row(row_b);
#pragma unroll
  for (int nt = 0; nt < kHd / 8; ++nt) {
    if (row_a < nrows)
      *reinterpret_cast<uint32_t*>(out_a + nt * 8) =
          dev::pack_bf16(o[nt * 4] * inv_a, o[nt * 4 + 1] * inv_a);
    if (row_b < nrows)
      *reinterpret_cast<uint32_t*>(out_b + nt * 8) =
          dev::pack_bf16(o[nt * 4 + 2] * inv_b, o[nt * 4 + 3] * inv_b);
  }
#else
  __trap();  // never launched: the host checks prefill_wgmma_available()
#endif
}

/// Combines the slices of a split launch: per (row, head), O = sum_s 2^(m_s - M) O_s /
/// sum_s 2^(m_s - M) l_s over the slices that saw a key (m_s finite). One block per (head,
/// tile, row): a short chunk's few tiles still spread over the SMs (its loads are latency
/// bound). A thread per output column.
__global__ void __launch_bounds__(kHd)
    prefill_split_merge_kernel(const prefill_tile* tiles, int heads, int splits, int ws_tile,
                               const float* split_ws, dev::bf16* out) {
  const prefill_tile tile = tiles[blockIdx.y];
  const int h = static_cast<int>(blockIdx.x), d = static_cast<int>(threadIdx.x);
  const size_t ws_rows = static_cast<size_t>(gridDim.y) * ws_tile;
  const size_t ws_o = static_cast<size_t>(splits) * ws_rows * heads;
  const int r = static_cast<int>(blockIdx.z);
  if (r >= tile.rows) return;
  auto at = [&](int z) {
    return (z * ws_rows + blockIdx.y * static_cast<size_t>(ws_tile) + r) * heads + h;
  };
  float mx = -INFINITY;
#pragma unroll 8
  for (int z = 0; z < splits; ++z) mx = fmaxf(mx, split_ws[ws_o * kHd + 2 * at(z)]);
  float num = 0.0f, den = 0.0f;
#pragma unroll 4
  for (int z = 0; z < splits; ++z) {
    const float m = split_ws[ws_o * kHd + 2 * at(z)];
    if (m == -INFINITY) continue;  // the slice saw no key of this row
    const float w = exp2f(m - mx);
    den += w * split_ws[ws_o * kHd + 2 * at(z) + 1];
    num += w * split_ws[at(z) * kHd + d];
  }
  out[static_cast<size_t>(tile.first_row + r) * heads * kHd + static_cast<size_t>(h) * kHd + d] =
      __float2bfloat16(num / den);
}

/// cuTensorMapEncodeTiled, from the driver (the runtime links no libcuda); null where the
/// driver lacks it.
using tensor_map_encoder = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                        const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                        const cuuint32_t*, CUtensorMapInterleave,
                                        CUtensorMapSwizzle, CUtensorMapL2promotion,
                                        CUtensorMapFloatOOBfill);
tensor_map_encoder encoder() {
  static const tensor_map_encoder fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault,
                                         &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return tensor_map_encoder{nullptr};
    }
    return reinterpret_cast<tensor_map_encoder>(f);
  }();
  return fn;
}

/// The TMA view of a bf16 cache: [num_slots][width] elements, boxes of 64 columns (128
/// bytes, swizzled as sw() lays a tile out) by box_rows keys. False where it cannot be made.
bool kv_tensor_map(CUtensorMap& m, const void* cache, size_t width, size_t num_slots,
                   int box_rows) {
  const tensor_map_encoder fn = encoder();
  if (fn == nullptr) return false;
  const cuuint64_t dims[2] = {width, num_slots};
  const cuuint64_t strides[1] = {width * sizeof(dev::bf16)};
  const cuuint32_t box[2] = {64, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t elem_strides[2] = {1, 1};
  return fn(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(cache), dims, strides, box,
            elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/// Keys per TMA box for cache blocks of bs tokens: a block (or 128 keys of one) where the
/// blocks tile the 128-key KV tiles in whole swizzle atoms of 8 rows; 0 where they do not.
int tma_box_rows(int32_t bs) {
  if (bs <= 0 || bs % 8 != 0) return 0;
  if (bs <= kKeys) return kKeys % bs == 0 ? bs : 0;
  return bs % kKeys == 0 ? kKeys : 0;
}

template <bool FP8>
bool loaded_as_sm90() {
  cudaFuncAttributes a{};
  if (cudaFuncGetAttributes(&a, prefill_attention_wgmma_kernel<FP8, kSerial>) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.binaryVersion == 90;
}

}  // namespace

bool prefill_wgmma_available() {
  static const bool on = loaded_as_sm90<false>() && loaded_as_sm90<true>();
  return on;
}

void prefill_attention_wgmma(const prefill_attention_args& a, stream_t s) {
  if (a.head_dim != kHd || !prefill_wgmma_available())
    throw std::invalid_argument(
        "prefill_attention: 128-row tiles need head_dim 128 and a Hopper card running sm_90a code");
  if (a.heads > 65535) throw std::invalid_argument("prefill_attention: too many heads");
  const float qscale = 1.4426950408889634f / sqrtf(static_cast<float>(kHd));
  if (a.wgmma_schedule < kSerial || a.wgmma_schedule > kPingPong)
    throw std::invalid_argument("prefill_attention: wgmma_schedule must be in [0, 4]");
  if (a.splits < 1 || a.splits > kMaxPrefillSplits)
    throw std::invalid_argument("prefill_attention: splits must be in [1, 64]");
  if (a.splits > 1 && a.split_workspace == nullptr)
    throw std::invalid_argument("prefill_attention: a split needs its workspace");
  const size_t group = a.heads / a.kv_heads;
  if (a.pack_gqa != 1 && (static_cast<size_t>(a.pack_gqa) != group || group > kRows))
    throw std::invalid_argument(
        "prefill_attention: pack_gqa must be 1 or the GQA group (heads / kv_heads, <= 128)");
  const int pack = a.pack_gqa;
  const size_t blocks_x = pack == 1 ? a.heads : a.kv_heads;
  const size_t smem = smem_bytes(a.wgmma_schedule);
  // gridDim.y holds at most 65535 tiles: more (a step of over 8M prompt tokens) go in
  // several launches, each with the workspace from its start.
  constexpr size_t kMaxTiles = 65535;
  // TMA loads (bf16 cache, the mbarrier schedules, blocks that tile the KV tiles): the
  // caches' tensor maps, made per launch (host work only; a graph keeps the parameters).
  CUtensorMap tmk{}, tmv{};
  const int box_rows = tma_box_rows(a.block_size);
  const bool tma = a.tma && !a.kv_fp8 && a.num_slots > 0 && a.num_slots < (size_t{1} << 31) &&
                   a.wgmma_schedule >= kDecoupled && box_rows > 0 &&
                   kv_tensor_map(tmk, a.k_cache, a.kv_heads * kHd, a.num_slots, box_rows) &&
                   kv_tensor_map(tmv, a.v_cache, a.kv_heads * kHd, a.num_slots, box_rows);
  auto run = [&](auto kernel, int threads) {
    CONCLAVE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem)));
    for (size_t t0 = 0; t0 < a.num_tiles; t0 += kMaxTiles) {
      const size_t n = std::min(kMaxTiles, a.num_tiles - t0);
      const dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(n),
                      static_cast<unsigned>(a.splits));
      kernel<<<grid, threads, smem, s>>>(
          a.q, a.q_stride, a.k_cache, a.v_cache, a.kv_row_bytes, a.tiles + t0, a.block_tables,
          a.block_size, static_cast<int>(a.heads), static_cast<int>(a.kv_heads), pack, qscale,
          a.window, static_cast<dev::bf16*>(a.out), a.split_workspace, tmk, tmv, box_rows,
          static_cast<int>(a.num_slots));
      CONCLAVE_CUDA_LAUNCH_CHECK();
      if (a.splits > 1) {
        prefill_split_merge_kernel<<<dim3(static_cast<unsigned>(a.heads), static_cast<unsigned>(n),
                                          static_cast<unsigned>(kRows / pack)),
                                     kHd, 0, s>>>(a.tiles + t0, static_cast<int>(a.heads), a.splits,
                                                  kRows / pack, a.split_workspace,
                                                  static_cast<dev::bf16*>(a.out));
        CONCLAVE_CUDA_LAUNCH_CHECK();
      }
    }
  };
  if (tma) {
    switch (a.wgmma_schedule) {
      case kDecoupled:
        return run(prefill_attention_wgmma_kernel<false, kDecoupled, true>, kThreads);
      case kProducer:
        return run(prefill_attention_wgmma_kernel<false, kProducer, true>,
                   block_threads(kProducer));
      default:
        return run(prefill_attention_wgmma_kernel<false, kPingPong, true>,
                   block_threads(kPingPong));
    }
  }
  auto by_schedule = [&](auto fp8) {
    constexpr bool F = decltype(fp8)::value;
    switch (a.wgmma_schedule) {
      case kSerial:
        return run(prefill_attention_wgmma_kernel<F, kSerial>, kThreads);
      case kOverlap:
        return run(prefill_attention_wgmma_kernel<F, kOverlap>, kThreads);
      case kDecoupled:
        return run(prefill_attention_wgmma_kernel<F, kDecoupled>, kThreads);
      case kProducer:
        return run(prefill_attention_wgmma_kernel<F, kProducer>, block_threads(kProducer));
      default:
        return run(prefill_attention_wgmma_kernel<F, kPingPong>, block_threads(kPingPong));
    }
  };
  if (a.kv_fp8)
    by_schedule(std::true_type{});
  else
    by_schedule(std::false_type{});
}

size_t prefill_split_workspace_floats(size_t num_tiles, size_t heads, int32_t splits,
                                      int32_t pack) {
  return splits > 1 ? static_cast<size_t>(splits) * num_tiles * static_cast<size_t>(kRows / pack) *
                          heads * (kHd + 2)
                    : 0;
}

int32_t prefill_splits(size_t num_tiles, size_t heads, int32_t max_ctx, int sms, int32_t pack,
                       size_t max_workspace_bytes) {
  const size_t blocks = num_tiles * heads / static_cast<size_t>(pack);
  if (blocks == 0 || blocks >= static_cast<size_t>(sms)) return 1;
  // Two blocks' worth of slices an SM, each at least 8 KV tiles long.
  const auto want = static_cast<int32_t>((2 * static_cast<size_t>(sms) + blocks - 1) / blocks);
  const int32_t most = std::max(1, (max_ctx + kKeys - 1) / kKeys / 8);
  int32_t splits = std::max(1, std::min({want, most, kMaxPrefillSplits}));
  while (splits > 1 &&
         prefill_split_workspace_floats(num_tiles, heads, splits, pack) * sizeof(float) >
             max_workspace_bytes)
    splits /= 2;
  return splits;
}

}  // namespace conclave::gpu::cuda
