// The KV-cache write and the attention kernels against their CPU twins
// (cpu::kv_cache_write, cpu::paged_attention) on fresh random caches: mixed prefill and
// decode batches through the first kernel, the tensor-core decode kernel and the GQA
// kernel with their splits, and the tensor-core prefill tiles; graph-style launches
// planned for the longest context over real contexts short and long, and a captured graph
// replayed over new contexts. Outputs poisoned before the run. Skips without a GPU.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "gpu/cpu/ops.h"
#include "gpu/cuda/attention.h"
#include "gpu/cuda/check.h"
#include "gpu/cuda/decode_attention.h"
#include "gpu/cuda/kv_cache.h"
#include "gpu/cuda/prefill_attention.h"
#include "model/dtype.h"
#include "tests/gpu/cuda_test_util.h"

using namespace conclave;
using namespace conclave::test::cuda;
namespace cu = conclave::gpu::cuda;
namespace cpu = conclave::gpu::cpu;

namespace {

struct attention_case {
  std::vector<int32_t> num_cached, num_tokens;
  int32_t block_size;
  size_t heads, kvh, hd;
  int32_t window = 0;  ///< sliding window (0: full causal)
};

/// Slot rows of an fp8 KV cache (kv_elem.cuh) holding `vals` ([slots, kvh * hd]) as the
/// device stores them; `deq` gets what the CPU twin sees (cpu::fp8_kv_round's values).
std::vector<uint8_t> fp8_rows(const std::vector<float>& vals, size_t kvh, size_t hd,
                              size_t row_bytes, std::vector<float>& deq) {
  const size_t width = kvh * hd, slots = vals.size() / width;
  std::vector<uint8_t> rows(slots * row_bytes, 0);
  deq = vals;
  for (size_t sl = 0; sl < slots; ++sl)
    for (size_t h = 0; h < kvh; ++h) {
      float* x = deq.data() + sl * width + h * hd;
      const float sc = cpu::fp8_kv_round(x, hd);
      for (size_t i = 0; i < hd; ++i)
        rows[sl * row_bytes + h * hd + i] =
            model::f32_to_fp8_e4m3(vals[sl * width + h * hd + i] / sc);
      std::memcpy(rows.data() + sl * row_bytes + width + 4 * h, &sc, 4);
    }
  return rows;
}

/// An fp8 KV cache read back from the device, dequantized.
std::vector<float> download_fp8(const device_buffer& b, size_t slots, size_t kvh, size_t hd,
                                size_t row_bytes) {
  const auto raw = b.to_vector<uint8_t>(slots * row_bytes);
  const size_t width = kvh * hd;
  std::vector<float> out(slots * width);
  for (size_t sl = 0; sl < slots; ++sl)
    for (size_t h = 0; h < kvh; ++h) {
      float sc;
      std::memcpy(&sc, raw.data() + sl * row_bytes + width + 4 * h, 4);
      for (size_t i = 0; i < hd; ++i)
        out[sl * width + h * hd + i] =
            model::fp8_e4m3_to_f32(raw[sl * row_bytes + h * hd + i]) * sc;
    }
  return out;
}

/// `fp8`: an fp8 KV cache (t must be bf16, the output's type), against the CPU twin that
/// rounds its cache the same way.
void run_attention_case(const attention_case& c, elem t, std::mt19937_64& rng, bool fp8 = false) {
  const size_t width = c.kvh * c.hd, qw = c.heads * c.hd, stride = qw + 2 * width;
  const size_t row_bytes = (width + 4 * c.kvh + 15) / 16 * 16;  // gpu::kv_row_bytes
  const size_t nseq = c.num_cached.size();
  // Blocks: a shuffled pool so that tables are not contiguous.
  std::vector<std::vector<int32_t>> tables(nseq);
  int32_t total_blocks = 0;
  for (size_t s = 0; s < nseq; ++s)
    total_blocks += (c.num_cached[s] + c.num_tokens[s] + c.block_size - 1) / c.block_size;
  total_blocks += 3;
  std::vector<int32_t> pool(static_cast<size_t>(total_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  // Block 0 is never a sequence's: it becomes the NaN block below (kernels must not read
  // an unused slot 0 for padding).
  size_t used = 0;
  for (size_t s = 0; s < nseq; ++s)
    used += size_t((c.num_cached[s] + c.num_tokens[s] + c.block_size - 1) / c.block_size);
  std::swap(*std::find(pool.begin(), pool.end(), 0), pool[used]);
  size_t next = 0;
  std::vector<cpu::attention_seq> seqs;
  size_t rows = 0;
  for (size_t s = 0; s < nseq; ++s) {
    const int32_t nb = (c.num_cached[s] + c.num_tokens[s] + c.block_size - 1) / c.block_size;
    for (int32_t b = 0; b < nb; ++b) tables[s].push_back(pool[next++]);
    rows += size_t(c.num_tokens[s]);
  }
  size_t first = 0;
  for (size_t s = 0; s < nseq; ++s) {
    seqs.push_back({first, c.num_tokens[s], c.num_cached[s], tables[s]});
    first += size_t(c.num_tokens[s]);
  }
  const size_t slots = size_t(total_blocks) * size_t(c.block_size);
  // Earlier context: random keys/values already in the cache (as stored in t, or fp8).
  auto kc = round_as(randn(slots * width, rng), t), vc = round_as(randn(slots * width, rng), t);
  std::vector<uint8_t> k8, v8;
  std::vector<float> want_k = kc, want_v = vc;
  if (fp8) {
    k8 = fp8_rows(kc, c.kvh, c.hd, row_bytes, want_k);
    v8 = fp8_rows(vc, c.kvh, c.hd, row_bytes, want_v);
  }
  auto qkv = randn(rows * stride, rng);
  // The CPU twin sees the new keys/values as the cache will hold them (fp8: its write
  // rounds them as the device's does).
  auto qkv_rounded = qkv;
  for (size_t r = 0; r < rows && !fp8; ++r) {
    for (size_t j = qw; j < stride; ++j) {
      qkv_rounded[r * stride + j] = round_as({qkv[r * stride + j]}, t)[0];
    }
  }
  cpu::paged_kv kv{want_k.data(), want_v.data(), c.block_size, int32_t(c.kvh),
                   int32_t(c.hd), c.window,      fp8};
  cpu::kv_cache_write(kv, seqs, qkv_rounded.data() + qw, qkv_rounded.data() + qw + width, stride);
  std::vector<float> want(rows * qw);
  cpu::paged_attention(kv, seqs, qkv.data(), stride, c.heads, want.data(), nullptr);

  // Device: per-row metadata as the backend builds it.
  std::vector<int32_t> slot_of_row, ctx, off, flat;
  // An unused block of NaN (block 0, a block the engine may have freed): with a window,
  // the device tables point every block wholly before the window of the sequence's first
  // query at it. A kernel that reads it poisons its output.
  const int32_t poison = pool[next];
  REQUIRE(poison == 0);
  for (size_t s = 0; s < nseq; ++s) {
    const int32_t o = int32_t(flat.size());
    flat.insert(flat.end(), tables[s].begin(), tables[s].end());
    for (int32_t b = 0; c.window > 0 && (b + 1) * c.block_size <= c.num_cached[s] - c.window + 1;
         ++b)
      flat[size_t(o + b)] = poison;
    for (int32_t i = 0; i < c.num_tokens[s]; ++i) {
      const int32_t p = c.num_cached[s] + i;
      slot_of_row.push_back(tables[s][size_t(p / c.block_size)] * c.block_size + p % c.block_size);
      ctx.push_back(p + 1);
      off.push_back(o);
    }
  }
  auto dk = fp8 ? device_buffer::from(k8) : upload_as(kc, t);
  auto dv = fp8 ? device_buffer::from(v8) : upload_as(vc, t);
  auto dqkv = device_buffer::from(qkv), dslot = device_buffer::from(slot_of_row),
       dctx = device_buffer::from(ctx), doff = device_buffer::from(off),
       dtab = device_buffer::from(flat);
  if (fp8) {
    cu::kv_cache_write_fp8(dqkv.as<float>(), stride, qw, qw + width, dslot.as<int32_t>(), rows,
                           c.kvh, c.hd, row_bytes, dk.get(), dv.get(), nullptr);
    check_close(download_fp8(dk, slots, c.kvh, c.hd, row_bytes), want_k, 0, 0);
    check_close(download_fp8(dv, slots, c.kvh, c.hd, row_bytes), want_v, 0, 0);
  } else {
    cu::kv_cache_write(dqkv.as<float>(), stride, qw, qw + width, dslot.as<int32_t>(), rows, width,
                       dk.get(), dv.get(), t, nullptr);
    check_close(download_as(dk, t, kc.size()), want_k, 0, 0);
    check_close(download_as(dv, t, vc.size()), want_v, 0, 0);
  }
  {
    const size_t bytes = size_t(c.block_size) * (fp8 ? row_bytes : width * gpu::cuda::elem_size(t));
    CONCLAVE_CUDA_CHECK(
        cudaMemset(static_cast<char*>(dk.get()) + size_t(poison) * bytes, 0xff, bytes));
    CONCLAVE_CUDA_CHECK(
        cudaMemset(static_cast<char*>(dv.get()) + size_t(poison) * bytes, 0xff, bytes));
  }
  auto out = poisoned(rows * qw, t);
  cu::attention_args a;
  a.q = dqkv.as<float>();
  a.q_stride = stride;
  a.k_cache = dk.get();
  a.v_cache = dv.get();
  a.t = t;
  a.ctx_len = dctx.as<int32_t>();
  a.table_offset = doff.as<int32_t>();
  a.block_tables = dtab.as<int32_t>();
  a.block_size = c.block_size;
  a.rows = rows;
  a.heads = c.heads;
  a.kv_heads = c.kvh;
  a.head_dim = c.hd;
  a.out = out.get();
  a.window = c.window;
  a.kv_fp8 = fp8;
  a.kv_row_bytes = fp8 ? row_bytes : 0;
  cu::paged_attention(a, nullptr);
  {
    INFO("simple kernel");
    check_close(download_as(out, t, rows * qw), want, t == elem::f32 ? 1e-4 : 1e-2, 1e-4);
  }
  // The fast paths: the tensor-core decode kernel where it applies (bf16, head_dim 64 or
  // 128, groups of up to 16) and the CUDA-core GQA kernel, whole contexts per block, then
  // split over the sequence where the step has few rows and long contexts.
  a.tiled = true;
  for (bool tc : {true, false}) {
    if (!tc && t != elem::bf16) break;  // f32: the same kernel as tc
    a.decode_mma = tc;
    INFO((tc ? "tensor-core decode kernel" : "CUDA-core GQA kernel"));
    auto out1 = poisoned(rows * qw, t);
    a.out = out1.get();
    a.max_ctx = 0;
    a.workspace = nullptr;
    cu::paged_attention(a, nullptr);
    check_close(download_as(out1, t, rows * qw), want, t == elem::f32 ? 1e-4 : 1e-2, 1e-4);
    // Split planned for the step's longest context, then for a graph's (the model's
    // longest context: most slices of these rows are empty).
    for (int32_t max_ctx : {*std::max_element(ctx.begin(), ctx.end()), 40960}) {
      a.max_ctx = max_ctx;
      device_buffer ws(std::max<size_t>(cu::attention_workspace_floats(a), 1) * sizeof(float));
      ws.fill(0);  // the split's arrival counters start at zero
      a.workspace = ws.as<float>();
      INFO("split for max_ctx " << max_ctx << ", workspace " << cu::attention_workspace_floats(a)
                                << " floats");
      auto out2 = poisoned(rows * qw, t);
      a.out = out2.get();
      cu::paged_attention(a, nullptr);
      check_close(download_as(out2, t, rows * qw), want, t == elem::f32 ? 1e-4 : 1e-2, 1e-4);
    }
  }
  a.decode_mma = true;
  // Tensor-core prefill tiles (bf16; head_dim 64 or 128) for chunks of >= 16 tokens,
  // the GQA kernel for the rows left. bf16 q and probabilities: a looser tolerance.
  // On Hopper (sm_90a code loaded) head_dim 128 also runs the wgmma kernel's 128-row tiles.
  // Each of its schedules (serial, overlapped, decoupled, with a loading warpgroup, and
  // ping-pong), split over the context into 3 and 5 slices (a few of them empty where
  // the context is short) with a merge, and with the GQA group packed into a block's rows.
  struct prefill_kernel {
    int32_t tile_rows;
    int schedule;
    int32_t splits;
    bool pack = false;
    bool tma = false;  // KV tiles by TMA where the block size allows (bf16, schedules 2-4)
  };
  std::vector<prefill_kernel> kernels{{cu::kPrefillTileRows, 0, 1}};
  if (cu::prefill_tile_rows(c.hd, true) != cu::kPrefillTileRows) {
    for (int sched : {cu::kWgmmaSerial, cu::kWgmmaOverlap, cu::kWgmmaDecoupled, cu::kWgmmaProducer,
                      cu::kWgmmaPingPong})
      kernels.push_back({cu::kPrefillWideTileRows, sched, 1});
    kernels.push_back({cu::kPrefillWideTileRows, cu::kWgmmaDecoupled, 3});
    kernels.push_back({cu::kPrefillWideTileRows, cu::kWgmmaPingPong, 3});
    kernels.push_back({cu::kPrefillWideTileRows, cu::kWgmmaOverlap, 5});
    kernels.push_back({cu::kPrefillWideTileRows, cu::kWgmmaDecoupled, 1, true});
    kernels.push_back({cu::kPrefillWideTileRows, cu::kWgmmaPingPong, 1, true});
    kernels.push_back({cu::kPrefillWideTileRows, cu::kWgmmaProducer, 3, true});
    for (int sched : {cu::kWgmmaDecoupled, cu::kWgmmaProducer, cu::kWgmmaPingPong})
      kernels.push_back({cu::kPrefillWideTileRows, sched, 1, false, true});
    kernels.push_back({cu::kPrefillWideTileRows, cu::kWgmmaDecoupled, 3, true, true});
    kernels.push_back({cu::kPrefillWideTileRows, cu::kWgmmaPingPong, 5, false, true});
  }
  for (const auto& [tile_rows, schedule, splits, packed, tma] : kernels) {
    if (t != elem::bf16 || !cu::prefill_attention_supported(c.hd)) break;
    const int32_t pack = cu::prefill_pack_gqa(c.heads, c.kvh, tile_rows, packed);
    if (packed && pack == 1) continue;  // no group to pack
    const int32_t span = tile_rows / pack;
    INFO("prefill tiles of " << tile_rows << " rows, schedule " << schedule << ", " << splits
                             << " slices, pack " << pack << (tma ? ", TMA" : ""));
    std::vector<int32_t> tiles, rest;
    for (size_t s = 0; s < nseq; ++s) {
      const auto r0 = static_cast<int32_t>(seqs[s].first_row);
      const int32_t n = c.num_tokens[s];
      const int32_t o = off[seqs[s].first_row];
      if (n >= 16) {
        for (int32_t r = 0; r < n; r += span)
          tiles.insert(tiles.end(), {r0 + r, std::min(span, n - r), c.num_cached[s] + r, o});
      } else {
        for (int32_t r = 0; r < n; ++r) rest.push_back(r0 + r);
      }
    }
    if (!tiles.empty()) {
      auto dtiles = device_buffer::from(tiles);
      auto drest = device_buffer::from(rest.empty() ? std::vector<int32_t>{0} : rest);
      auto out3 = poisoned(rows * qw, t);
      cu::prefill_attention_args p;
      p.q = dqkv.as<float>();
      p.q_stride = stride;
      p.k_cache = dk.get();
      p.v_cache = dv.get();
      p.tiles = reinterpret_cast<const cu::prefill_tile*>(dtiles.get());
      p.num_tiles = tiles.size() / 4;
      p.block_tables = dtab.as<int32_t>();
      p.block_size = c.block_size;
      p.heads = c.heads;
      p.kv_heads = c.kvh;
      p.head_dim = c.hd;
      p.out = out3.get();
      p.window = c.window;
      p.kv_fp8 = fp8;
      p.kv_row_bytes = a.kv_row_bytes;
      p.tile_rows = tile_rows;
      p.wgmma_schedule = schedule;
      p.splits = splits;
      p.pack_gqa = pack;
      p.tma = tma;
      p.num_slots = slots;
      device_buffer split_ws(
          std::max<size_t>(
              cu::prefill_split_workspace_floats(tiles.size() / 4, c.heads, splits, pack), 1) *
          sizeof(float));
      split_ws.fill(0xff);  // NaN: a slice the merge should skip but reads shows up
      p.split_workspace = split_ws.as<float>();
      cu::prefill_attention(p, nullptr);
      // The rows left, listed: whole contexts per block, then split over the sequence as
      // a launch of that many rows is (their slice states kept by list position).
      a.row_index = drest.as<int32_t>();
      a.index_rows = rest.size();
      for (bool split : {false, true}) {
        auto out4 = poisoned(rows * qw, t);
        CONCLAVE_CUDA_CHECK(cudaMemcpy(out4.get(), out3.get(), rows * qw * gpu::cuda::elem_size(t),
                                       cudaMemcpyDeviceToDevice));
        a.out = out4.get();
        a.max_ctx = *std::max_element(ctx.begin(), ctx.end());
        device_buffer ws(std::max<size_t>(cu::attention_workspace_floats(a), 1) * sizeof(float));
        ws.fill(0);
        a.workspace = split ? ws.as<float>() : nullptr;
        // Rows left at a long context split (none left: every row was in a tile).
        if (split && !rest.empty() && a.max_ctx > 512) CHECK(cu::attention_workspace_floats(a) > 0);
        INFO((split ? "listed rows split, workspace " : "listed rows whole, workspace ")
             << (split ? cu::attention_workspace_floats(a) : 0) << " floats");
        cu::paged_attention(a, nullptr);
        const auto got = download_as(out4, t, rows * qw);
        double num = 0, den = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
          den += double(want[i]) * want[i];
        }
        INFO("prefill tiles " << tiles.size() / 4 << ", other rows " << rest.size()
                              << ", relative error " << std::sqrt(num / den));
        CHECK(std::sqrt(num / den) < 1e-2);
        check_close(got, want, 2e-2, 2e-2);
      }
      a.row_index = nullptr;
    }
  }
}

std::vector<attention_case> mixed_cases() {
  return {
      // one decode token
      {{0}, {1}, 16, 4, 2, 16},
      // prefill chunk + decodes + a chunk continuing a cached prefix, odd lengths
      {{0, 37, 100, 5}, {23, 1, 1, 17}, 16, 8, 2, 64},
      // Qwen3-30B-A3B head shape, GQA 32/4, long context crossing many tiles
      {{1000, 0, 300}, {1, 130, 3}, 16, 32, 4, 128},
      // decodes at long contexts (the split path: few rows, many keys)
      {{3000, 700}, {1, 1}, 16, 32, 4, 128},
      {{5000}, {1}, 16, 8, 1, 64},
      // block size 1 and 7, no GQA
      {{3, 9}, {2, 4}, 1, 2, 2, 32},
      {{11}, {20}, 7, 6, 3, 256},
      // Qwen3-Coder-480B's group of 12 (two head chunks per KV head), odd head_dims
      {{700, 0}, {1, 9}, 16, 24, 2, 128},
      {{40, 3}, {1, 33}, 16, 4, 1, 48},
      {{259}, {1}, 5, 6, 2, 96},
      // long prefill chunks after a cached prefix (tensor-core tiles, a partial last one)
      {{200, 0}, {150, 77}, 16, 16, 2, 128},
      {{0, 31}, {300, 1}, 3, 8, 8, 64},
      // the tensor-core decode kernel's widest group (16 query heads per KV head), a long
      // context split into many slices, head_dim 64 with a partial last stage
      {{2000, 63}, {1, 1}, 16, 32, 2, 128},
      {{20000}, {1}, 16, 32, 4, 128},
      {{4001, 10, 65}, {1, 1, 1}, 16, 16, 4, 64},
  };
}

// Windows not multiples of the block size (16) nor of the KV tiles (64), prompts longer
// than the window, decodes far past it (the split), chunks resumed inside and past it.
std::vector<attention_case> window_cases() {
  return {
      {{0}, {1}, 16, 4, 2, 16, 5},
      {{0, 37, 100, 5}, {23, 1, 1, 17}, 16, 8, 2, 64, 24},
      {{1000, 0, 300}, {1, 130, 3}, 16, 32, 4, 128, 37},
      {{3000, 700}, {1, 1}, 16, 32, 4, 128, 1000},
      {{5000}, {1}, 16, 8, 1, 64, 333},
      {{3, 9}, {2, 4}, 1, 2, 2, 32, 2},
      {{11}, {20}, 7, 6, 3, 256, 9},
      {{700, 0}, {1, 9}, 16, 24, 2, 128, 100},
      {{200, 0}, {150, 77}, 16, 16, 2, 128, 24},
      {{0, 31}, {300, 1}, 3, 8, 8, 64, 70},
      {{130, 0}, {200, 129}, 16, 8, 2, 128, 1},  // window 1: each row sees only itself
      {{64, 0}, {64, 100}, 16, 8, 2, 64, 64},    // window of exactly one KV tile
  };
}

}  // namespace

TEST_CASE("cuda kv_cache_write + paged_attention match the cpu twins on mixed batches",
          "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const auto cases = mixed_cases();
  for (elem t : {elem::f32, elem::bf16}) {
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO(name(t) << " case " << i);
      run_attention_case(cases[i], t, rng);
    }
  }
}

// Host-side planning (no GPU needed): when a chunk is split over the context, into how
// many slices, and the merge's workspace.
TEST_CASE("prefill split plan: only chunks that leave SMs idle, slices of >= 8 KV tiles",
          "[cuda][wgmma]") {
  // Enough (tile, head) blocks for the SMs: never split.
  CHECK(cu::prefill_splits(64, 32, 262144, 132) == 1);
  CHECK(cu::prefill_splits(5, 32, 262144, 132) == 1);
  CHECK(cu::prefill_splits(0, 32, 262144, 132) == 1);
  // One tile of 32 heads at a 96K context: about two blocks an SM (264 / 32 -> 9 slices).
  CHECK(cu::prefill_splits(1, 32, 98304, 132) == 9);
  CHECK(cu::prefill_splits(2, 32, 98304, 132) == 5);
  // A short context caps the slices at one per 8 KV tiles (1024 keys).
  CHECK(cu::prefill_splits(1, 32, 2048, 132) == 2);
  CHECK(cu::prefill_splits(1, 32, 1000, 132) == 1);
  // Few heads, long context: up to the 64-slice limit.
  CHECK(cu::prefill_splits(1, 1, 1 << 20, 132) == cu::kMaxPrefillSplits);
  // A workspace cap halves the slices until it fits: 9 slices of one tile of 32 heads take
  // 9 x 128 x 32 x 130 floats (19.2 MB); 4 MB leaves 1 (2 slices would be 4.3 MB).
  CHECK(cu::prefill_splits(1, 32, 98304, 132, 1, size_t{10} << 20) == 4);
  CHECK(cu::prefill_splits(1, 32, 98304, 132, 1, size_t{4} << 20) == 1);
  // Workspace: per slice, tile and its 128 rows, head: the output row and (max, sum).
  CHECK(cu::prefill_split_workspace_floats(3, 32, 1) == 0);
  CHECK(cu::prefill_split_workspace_floats(3, 32, 4) == size_t{4} * 3 * 128 * 32 * 130);
  // Packed GQA (32 heads over 4 KV heads): a tile is 4 blocks of 16 positions, so one tile
  // at a 96K context splits into 64 slices (two blocks an SM would be 66), and the
  // workspace counts 16 positions a tile: 64 x 16 x 32 x 130 floats = 17 MB.
  CHECK(cu::prefill_splits(1, 32, 98304, 132, 8) == cu::kMaxPrefillSplits);
  CHECK(cu::prefill_split_workspace_floats(1, 32, 64, 8) == size_t{64} * 16 * 32 * 130);
  CHECK(cu::prefill_splits(1, 32, 98304, 132, 8, size_t{10} << 20) == 32);
  // Which group packs: only the wgmma kernel's tiles, groups of 2..128, when switched on.
  CHECK(cu::prefill_pack_gqa(32, 4, cu::kPrefillWideTileRows, true) == 8);
  CHECK(cu::prefill_pack_gqa(96, 8, cu::kPrefillWideTileRows, true) == 12);
  CHECK(cu::prefill_pack_gqa(32, 4, cu::kPrefillWideTileRows, false) == 1);
  CHECK(cu::prefill_pack_gqa(32, 4, cu::kPrefillTileRows, true) == 1);
  CHECK(cu::prefill_pack_gqa(8, 8, cu::kPrefillWideTileRows, true) == 1);
  CHECK(cu::prefill_pack_gqa(256, 1, cu::kPrefillWideTileRows, true) == 1);
}

// The Hopper kernel's 128-row tiles over 128-key KV tiles: prompts of several tiles from
// position 0 and resumed mid-tile, a partial last tile, GQA 32/4 and 12 (the 480B's group),
// windows shorter and longer than a KV tile.
TEST_CASE("cuda wgmma prefill tiles match the cpu twin on long chunks", "[cuda][ops][wgmma]") {
  CONCLAVE_REQUIRE_GPU();
  if (cu::prefill_tile_rows(128, true) != cu::kPrefillWideTileRows)
    CONCLAVE_SKIP("the wgmma prefill kernel needs a Hopper card running sm_90a code");
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::vector<attention_case> cases = {
      {{0, 333}, {700, 260}, 16, 32, 4, 128},
      {{1000, 0}, {1, 513}, 16, 24, 2, 128},
      {{129}, {255}, 7, 8, 1, 128},
      {{0, 300}, {600, 140}, 16, 32, 4, 128, 200},
      {{0}, {390}, 16, 8, 2, 128, 77},
      {{5000, 0}, {40, 20}, 16, 32, 4, 128},  // a short chunk late in a long prompt
  };
  for (const bool fp8 : {false, true}) {
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO("case " << i << (fp8 ? ", fp8 KV cache" : ", bf16 KV cache"));
      run_attention_case(cases[i], elem::bf16, rng, fp8);
    }
  }
}

TEST_CASE("cuda paged_attention + prefill tiles match the cpu twin with a sliding window",
          "[cuda][ops][window]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const auto cases = window_cases();
  for (elem t : {elem::f32, elem::bf16}) {
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO(name(t) << " window case " << i << " (window " << cases[i].window << ")");
      run_attention_case(cases[i], t, rng);
    }
  }
}

namespace {

// Decode rows (one token each) over one random cache, as a graph step sees them: row r
// at context ctx[r] through its own table of random blocks. Fills the device metadata
// (ctx, table offsets, tables), the queries and the CPU twin's output.
struct decode_rows {
  std::vector<int32_t> ctx, off, flat;
  std::vector<float> q, want;
};

decode_rows make_decode_rows(const std::vector<int32_t>& ctx, size_t heads, size_t kvh, size_t hd,
                             int32_t bs, int32_t num_blocks, std::vector<float>& kc,
                             std::vector<float>& vc, std::mt19937_64& rng) {
  decode_rows d;
  d.ctx = ctx;
  std::vector<int32_t> pool(static_cast<size_t>(num_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::vector<std::vector<int32_t>> tables(ctx.size());
  for (size_t r = 0; r < ctx.size(); ++r) {
    std::shuffle(pool.begin(), pool.end(), rng);
    const auto nb = static_cast<size_t>((ctx[r] + bs - 1) / bs);
    REQUIRE(nb <= pool.size());
    tables[r].assign(pool.begin(), pool.begin() + static_cast<std::ptrdiff_t>(nb));
    d.off.push_back(static_cast<int32_t>(d.flat.size()));
    d.flat.insert(d.flat.end(), tables[r].begin(), tables[r].end());
  }
  const size_t qw = heads * hd;
  d.q = randn(ctx.size() * qw, rng);
  std::vector<cpu::attention_seq> seqs;
  for (size_t r = 0; r < ctx.size(); ++r) seqs.push_back({r, 1, ctx[r] - 1, tables[r]});
  cpu::paged_kv kv{kc.data(), vc.data(), bs, int32_t(kvh), int32_t(hd)};
  d.want.resize(ctx.size() * qw);
  cpu::paged_attention(kv, seqs, d.q.data(), qw, heads, d.want.data(), nullptr);
  return d;
}

struct decode_shape {
  size_t heads, kvh, hd;
  int32_t bs;
};

}  // namespace

// A graph sizes the split for the model's longest context (max_ctx 40,960) while the real
// contexts are mostly short: each row plans its own slices on the device, a row of at
// most 128 keys runs unsplit (the same bits as a launch without a workspace), longer
// rows split and the last slice merges them. One zero-filled workspace serves every
// launch in turn, as a backend's does (the arrival counters must come back to zero).
TEST_CASE("cuda paged_attention plans the split from each row's real context", "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  // Qwen3-30B-A3B's heads; a group of 12 (two head chunks); head_dim 40 (not 32 * DPL);
  // head_dim 256; block sizes 16, 7, 5, 1.
  const std::vector<decode_shape> shapes = {
      {32, 4, 128, 16}, {12, 1, 40, 7}, {6, 3, 256, 5}, {8, 2, 64, 1}};
  const std::vector<std::vector<int32_t>> batches = {{1},
                                                     {128},
                                                     {129},
                                                     {1000},
                                                     {4999},
                                                     {1, 130, 257},
                                                     {33},
                                                     {3001, 2, 640, 128, 129},
                                                     {4999, 4998},
                                                     {97, 5, 1, 77},
                                                     {1025, 1025, 1025},
                                                     {129},
                                                     {2500, 1}};
  for (elem t : {elem::f32, elem::bf16}) {
    for (const decode_shape& sh : shapes) {
      INFO(name(t) << " heads " << sh.heads << "/" << sh.kvh << " head_dim " << sh.hd << " block "
                   << sh.bs);
      const int32_t num_blocks = 5000 / sh.bs + 2;
      const size_t slots = size_t(num_blocks) * size_t(sh.bs), width = sh.kvh * sh.hd;
      auto kc = round_as(randn(slots * width, rng), t), vc = round_as(randn(slots * width, rng), t);
      auto dk = upload_as(kc, t), dv = upload_as(vc, t);
      cu::attention_args a;
      a.k_cache = dk.get();
      a.v_cache = dv.get();
      a.t = t;
      a.block_size = sh.bs;
      a.heads = sh.heads;
      a.kv_heads = sh.kvh;
      a.head_dim = sh.hd;
      a.tiled = true;
      // One workspace for every launch: the largest any of them needs.
      size_t most = 0;
      for (const auto& b : batches) {
        a.rows = b.size();
        a.max_ctx = 40960;
        most = std::max(most, cu::attention_workspace_floats(a));
      }
      REQUIRE(most > 0);
      device_buffer ws(most * sizeof(float));
      ws.fill(0);
      // bf16 runs the tensor-core decode kernel where the shape allows, then the GQA kernel.
      for (size_t i = 0; i < 2 * batches.size(); ++i) {
        a.decode_mma = i < batches.size();
        if (!a.decode_mma && t != elem::bf16) break;
        INFO((a.decode_mma ? "tensor-core decode kernel" : "CUDA-core GQA kernel"));
        const auto& ctx = batches[i % batches.size()];
        const decode_rows d =
            make_decode_rows(ctx, sh.heads, sh.kvh, sh.hd, sh.bs, num_blocks, kc, vc, rng);
        auto dq = device_buffer::from(d.q), dctx = device_buffer::from(d.ctx),
             doff = device_buffer::from(d.off), dtab = device_buffer::from(d.flat);
        const size_t rows = ctx.size(), qw = sh.heads * sh.hd;
        a.q = dq.as<float>();
        a.q_stride = qw;
        a.ctx_len = dctx.as<int32_t>();
        a.table_offset = doff.as<int32_t>();
        a.block_tables = dtab.as<int32_t>();
        a.rows = rows;
        // Graph-style (the model's longest context), then eager-style (the step's longest).
        for (int32_t max_ctx : {40960, *std::max_element(ctx.begin(), ctx.end())}) {
          INFO("batch " << i << " max_ctx " << max_ctx);
          a.max_ctx = max_ctx;
          a.workspace = ws.as<float>();
          auto out = poisoned(rows * qw, t);
          a.out = out.get();
          cu::paged_attention(a, nullptr);
          const auto got = download_as(out, t, rows * qw);
          check_close(got, d.want, t == elem::f32 ? 1e-4 : 1e-2, 1e-4);
          // Rows of at most 128 keys do not split: bit for bit the unsplit kernel's.
          a.workspace = nullptr;
          auto plain = poisoned(rows * qw, t);
          a.out = plain.get();
          cu::paged_attention(a, nullptr);
          const auto want_bits = download_as(plain, t, rows * qw);
          for (size_t r = 0; r < rows; ++r) {
            if (ctx[r] > 128) continue;
            INFO("row " << r << " ctx " << ctx[r]);
            CHECK(std::equal(got.begin() + long(r * qw), got.begin() + long((r + 1) * qw),
                             want_bits.begin() + long(r * qw)));
          }
        }
      }
    }
  }
}

// The backend's use: one launch captured in a CUDA graph for the model's longest context,
// replayed over new contexts written into the same buffers (short ones that run unsplit,
// long ones that split, the same contexts twice in a row).
TEST_CASE("cuda paged_attention in a CUDA graph follows the contexts of each replay",
          "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::vector<std::vector<int32_t>> replays = {
      {1, 1, 1, 1},      {3001, 1, 17, 1},     {4999, 4000, 129, 1023}, {4999, 4000, 129, 1023},
      {100, 128, 2, 64}, {131, 257, 385, 4097}};
  struct graph_case {
    elem t;
    decode_shape sh;
    bool tc;  ///< the tensor-core decode kernel where it applies
  };
  for (auto [t, sh, tc] :
       {graph_case{elem::bf16, {32, 4, 128, 16}, true},
        graph_case{elem::bf16, {32, 4, 128, 16}, false},
        graph_case{elem::bf16, {24, 2, 64, 16}, true}, graph_case{elem::f32, {12, 1, 40, 7}, true},
        graph_case{elem::bf16, {6, 3, 256, 5}, true}}) {
    INFO(name(t) << " heads " << sh.heads << "/" << sh.kvh << " head_dim " << sh.hd << " block "
                 << sh.bs << (tc ? "" : ", CUDA-core GQA kernel"));
    const size_t rows = 4, qw = sh.heads * sh.hd;
    const int32_t num_blocks = 5000 / sh.bs + 2;
    const size_t slots = size_t(num_blocks) * size_t(sh.bs), width = sh.kvh * sh.hd;
    auto kc = round_as(randn(slots * width, rng), t), vc = round_as(randn(slots * width, rng), t);
    auto dk = upload_as(kc, t), dv = upload_as(vc, t);
    // Fixed addresses, sized for the longest tables.
    device_buffer dq(rows * qw * sizeof(float)), dctx(rows * sizeof(int32_t)),
        doff(rows * sizeof(int32_t)), dtab(rows * size_t(num_blocks) * sizeof(int32_t)),
        out(rows * qw * elem_size(t));
    cu::attention_args a;
    a.q = dq.as<float>();
    a.q_stride = qw;
    a.k_cache = dk.get();
    a.v_cache = dv.get();
    a.t = t;
    a.ctx_len = dctx.as<int32_t>();
    a.table_offset = doff.as<int32_t>();
    a.block_tables = dtab.as<int32_t>();
    a.block_size = sh.bs;
    a.rows = rows;
    a.heads = sh.heads;
    a.kv_heads = sh.kvh;
    a.head_dim = sh.hd;
    a.out = out.get();
    a.max_ctx = 40960;
    a.tiled = true;
    a.decode_mma = tc;
    device_buffer ws(cu::attention_workspace_floats(a) * sizeof(float));
    REQUIRE(ws.bytes() > 0);
    ws.fill(0);
    a.workspace = ws.as<float>();
    auto put = [&](const decode_rows& d) {
      dq.upload(d.q.data(), d.q.size() * sizeof(float));
      dctx.upload(d.ctx.data(), d.ctx.size() * sizeof(int32_t));
      doff.upload(d.off.data(), d.off.size() * sizeof(int32_t));
      dtab.upload(d.flat.data(), d.flat.size() * sizeof(int32_t));
      out.fill(0xff);
      cu::synchronize();
    };
    cudaStream_t s = nullptr;
    CONCLAVE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t g = nullptr;
    cudaGraphExec_t exec = nullptr;
    // Eager first (as the backend's first steps are), then the capture.
    const decode_rows first =
        make_decode_rows(replays[1], sh.heads, sh.kvh, sh.hd, sh.bs, num_blocks, kc, vc, rng);
    put(first);
    cu::paged_attention(a, s);
    CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(s));
    check_close(download_as(out, t, rows * qw), first.want, t == elem::f32 ? 1e-4 : 1e-2, 1e-4);
    CONCLAVE_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    cu::paged_attention(a, s);
    CONCLAVE_CUDA_CHECK(cudaStreamEndCapture(s, &g));
    CONCLAVE_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
    for (size_t i = 0; i < replays.size(); ++i) {
      INFO("replay " << i);
      const decode_rows d =
          make_decode_rows(replays[i], sh.heads, sh.kvh, sh.hd, sh.bs, num_blocks, kc, vc, rng);
      put(d);
      CONCLAVE_CUDA_CHECK(cudaGraphLaunch(exec, s));
      CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(s));
      check_close(download_as(out, t, rows * qw), d.want, t == elem::f32 ? 1e-4 : 1e-2, 1e-4);
    }
    CONCLAVE_CUDA_CHECK(cudaGraphExecDestroy(exec));
    CONCLAVE_CUDA_CHECK(cudaGraphDestroy(g));
    CONCLAVE_CUDA_CHECK(cudaStreamDestroy(s));
  }
}

TEST_CASE("cuda fp8 KV cache: write, decode, split and prefill tiles match the cpu twin",
          "[cuda][ops][kv][fp8]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const auto mixed = mixed_cases(), windows = window_cases();
  for (size_t i = 0; i < mixed.size(); ++i) {
    INFO("fp8 case " << i);
    run_attention_case(mixed[i], elem::bf16, rng, true);
  }
  for (size_t i = 0; i < windows.size(); ++i) {
    INFO("fp8 window case " << i << " (window " << windows[i].window << ")");
    run_attention_case(windows[i], elem::bf16, rng, true);
  }
}

TEST_CASE(
    "cuda fp8: the integer/fp32 widenings equal the conversion instructions on every "
    "e4m3 code",
    "[cuda][ops][kv]") {
  CONCLAVE_REQUIRE_GPU();
  // The conversion instructions (exact: e4m3 -> f16 -> f32 -> bf16) against the integer /
  // fp32 widenings: the decode kernel's to bf16 (CONCLAVE_DECODE_FP8_FAST_CVT), the fp8
  // cache's to fp32 and the weights' to fp32 (NaN codes kept); subnormals, signed zeros.
  CHECK(cu::decode_fp8_widen_mismatches() == 0u);
}
