// Hopper prefill attention (head_dim 128): the flash-attention loop of prefill_attention.cu
// on warpgroup MMAs. A block of two warpgroups takes a tile of up to 128 query rows of one
// query head; each warpgroup owns 64 rows. Per KV tile of 128 keys, S = Q K^T is one chain
// of wgmma m64n128k16 with Q and K in 128-byte-swizzled shared memory; the online softmax
// runs on S in registers; P goes back into the tensor cores from registers (O += P V, V
// read N-major from the same swizzled layout). The next KV tiles stream in by cp.async
// while this one is computed, issued by the computing warps or (kProducer, kPingPong) by a
// third warpgroup of their own.
#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/kv_chunk.cuh"
#include "gpu/cuda/kv_elem.cuh"
#include "gpu/cuda/mma.cuh"
#include "gpu/cuda/prefill_attention.h"
#include "gpu/cuda/wgmma.cuh"

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
/// The online softmax of one KV tile on S (the m64n128 accumulator of this thread: rows a
/// and b, element 4 n + e at key kbase + 8 n + 2 (lane % 4) + e % 2): masks keys past each
/// row's position or before its window, updates the running max and sum, returns P as the
/// A fragments of the P V wgmma and the factors the output must be scaled by.
/// 2^x on the special function unit (2^-inf = 0).
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// `masked`: some key of the tile lies past a row's position or before its window (the
/// diagonal and window-edge tiles; elsewhere the per-element test is skipped: this kernel
/// is bound by instruction issue as much as by the tensor cores).
__device__ __forceinline__ void online_softmax(float (&s)[64], bool masked, int kbase, int lane,
                                               int pos_a, int pos_b, int window, float& m_a,
                                               float& m_b, float& l_a, float& l_b,
                                               uint32_t (&pf)[8][4], float& al_a, float& al_b) {
  if (masked) {
#pragma unroll
    for (int nt = 0; nt < 16; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int key = kbase + nt * 8 + 2 * (lane & 3) + e;
        if (key > pos_a || (window > 0 && key <= pos_a - window)) s[nt * 4 + e] = -INFINITY;
        if (key > pos_b || (window > 0 && key <= pos_b - window)) s[nt * 4 + 2 + e] = -INFINITY;
      }
    }
  }
  float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) {
    mx_a = fmaxf(mx_a, fmaxf(s[nt * 4], s[nt * 4 + 1]));
    mx_b = fmaxf(mx_b, fmaxf(s[nt * 4 + 2], s[nt * 4 + 3]));
  }
  mx_a = dev::quad_max(mx_a);
  mx_b = dev::quad_max(mx_b);
  // As in prefill_attention.cu: a row that has seen no key yet keeps an empty state.
  const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
  al_a = mn_a == -INFINITY ? 1.0f : ex2(m_a - mn_a);
  al_b = mn_b == -INFINITY ? 1.0f : ex2(m_b - mn_b);
  m_a = mn_a;
  m_b = mn_b;
  const float sub_a = mn_a == -INFINITY ? 0.0f : mn_a;
  const float sub_b = mn_b == -INFINITY ? 0.0f : mn_b;
  float rs_a = 0.0f, rs_b = 0.0f;
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) {
    const float pa0 = ex2(s[nt * 4] - sub_a), pa1 = ex2(s[nt * 4 + 1] - sub_a);
    const float pb0 = ex2(s[nt * 4 + 2] - sub_b), pb1 = ex2(s[nt * 4 + 3] - sub_b);
    rs_a += pa0 + pa1;
    rs_b += pb0 + pb1;
    pf[nt / 2][(nt & 1) * 2] = dev::pack_bf16(pa0, pa1);
    pf[nt / 2][(nt & 1) * 2 + 1] = dev::pack_bf16(pb0, pb1);
  }
  l_a = l_a * al_a + rs_a;
  l_b = l_b * al_b + rs_b;
}

__device__ __forceinline__ void rescale(float (&o)[64], float al_a, float al_b) {
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) {
    o[nt * 4] *= al_a;
    o[nt * 4 + 1] *= al_a;
    o[nt * 4 + 2] *= al_b;
    o[nt * 4 + 3] *= al_b;
  }
}

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

// Shared-memory barriers (mbarrier) of the decoupled pipeline.
__device__ __forceinline__ void mbar_init(uint64_t* b, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(dev::smem_addr(b)), "r"(count)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* b) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(dev::smem_addr(b)) : "memory");
}
/// Arrives on b once this thread's cp.async copies issued so far have landed.
__device__ __forceinline__ void mbar_arrive_cp_async(uint64_t* b) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(dev::smem_addr(b))
               : "memory");
}
/// Waits until the phase of b with this parity has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* b, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n}\n" ::"r"(dev::smem_addr(b)),
      "r"(parity)
      : "memory");
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
template <bool FP8, int MODE>
__global__ void __launch_bounds__(block_threads(MODE), 1)
    prefill_attention_wgmma_kernel(const float* q, size_t q_stride, const void* kc, const void* vc,
                                   size_t row_bytes, const prefill_tile* tiles,
                                   const int32_t* tables, int32_t bs, int heads, int kv_heads,
                                   int pack, float qscale, int window, dev::bf16* out,
                                   float* split_ws) {
#ifdef CONCLAVE_WGMMA
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
  const int wg = warp >> 2, wq = warp & 3;
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
  auto load_kv = [&](int j) {
    if constexpr (DECOUPLED) {  // the stage's previous tile released by every thread
      const int n = (j - j0) / 3;
      if (n > 0) mbar_wait(bars + 3 + k_stage(j), static_cast<uint32_t>((n - 1) & 1));
    }
    uint8_t* kd = k_s + k_stage(j) * kTileBytes;
    uint8_t* vd = v_s + v_stage(j) * kTileBytes;
    const int lt = PRODUCER ? tid - kThreads : tid;  // this thread among the loaders
    const int c = lt & 15;
#pragma unroll
    for (int n = 0; n < kKeys * 16 / kLoaders; ++n) {
      const int key = (lt >> 4) + n * (kLoaders / 16);
      const int t = j * kKeys + key;
      const bool ok = t >= lo && t < ctx;
      const int blk = bs_shift >= 0 ? t >> bs_shift : t / bs;
      const int in = bs_shift >= 0 ? t & (bs - 1) : t - blk * bs;
      const size_t slot = ok ? static_cast<size_t>(table[blk]) * bs + in : 0;
      if constexpr (FP8) {
        uint4 kb, vb;
        dev::fp8_kv_chunk(kc, vc, slot, row_bytes, width, g, kHd, c * 8, ok, kb, vb);
        *reinterpret_cast<uint4*>(kd + sw(key, c)) = kb;
        *reinterpret_cast<uint4*>(vd + sw(key, c)) = vb;
      } else {
        const size_t src = slot * width + static_cast<size_t>(g) * kHd + c * 8;
        dev::cp_async16(kd + sw(key, c), static_cast<const dev::bf16*>(kc) + src, ok);
        dev::cp_async16(vd + sw(key, c), static_cast<const dev::bf16*>(vc) + src, ok);
      }
    }
    if constexpr (DECOUPLED) {
      if constexpr (FP8) {
        dev::fence_proxy_async();
        mbar_arrive(bars + k_stage(j));
      } else {
        mbar_arrive_cp_async(bars + k_stage(j));
      }
    } else {
      dev::cp_async_commit();
    }
  };
  if constexpr (DECOUPLED) {
    if (tid == 0)
      for (int i = 0; i < 6; ++i) mbar_init(bars + i, i < 3 ? kLoaders : kThreads);
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
        mbar_wait(bars + k_stage(j), static_cast<uint32_t>(((j - j0) / 3) & 1));
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
      online_softmax(s, masked(j0 * kKeys), j0 * kKeys, lane, pos_a, pos_b, window, m_a, m_b, l_a,
                     l_b, pf, al_a, al_b);
    }
    for (int j = j0 + 1; j < ntiles; ++j) {
      arrive(j);
      float s[64];
      uint32_t pn[8][4];
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
      online_softmax(s, masked(j * kKeys), j * kKeys, lane, pos_a, pos_b, window, m_a, m_b, l_a,
                     l_b, pn, al_a, al_b);
      dev::wgmma_wait<0>();
      dev::wgmma_fence_operands(o);
      fence_pf(pf);
      if constexpr (DECOUPLED) mbar_arrive(bars + 3 + k_stage(j - 1));  // K(j-1), V(j-1) done
      rescale(o, al_a, al_b);
#pragma unroll
      for (int kk = 0; kk < 8; ++kk)
#pragma unroll
        for (int i = 0; i < 4; ++i) pf[kk][i] = pn[kk][i];
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
        online_softmax(s, masked(kbase), kbase, lane, pos_a, pos_b, window, m_a, m_b, l_a, l_b, pf,
                       al_a, al_b);
        rescale(o, al_a, al_b);
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
          a.window, static_cast<dev::bf16*>(a.out), a.split_workspace);
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
