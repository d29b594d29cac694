// Every CUDA op against its CPU twin (gpu/cpu ops, or the CPU MoE's grouping) on fresh
// random inputs: several shapes including odd sizes, fp32 and bf16 storage, outputs
// poisoned before the run so that an element left unwritten fails. Skips without a GPU.
#include <algorithm>
#include <numeric>

#include "gpu/cpu/ops.h"
#include "gpu/cuda/attention.h"
#include "gpu/cuda/check.h"
#include "gpu/cuda/embedding.h"
#include "gpu/cuda/gemm.h"
#include "gpu/cuda/kv_cache.h"
#include "gpu/cuda/moe_combine.h"
#include "gpu/cuda/moe_gemv.h"
#include "gpu/cuda/moe_permute.h"
#include "gpu/cuda/prefill_attention.h"
#include "gpu/cuda/qk_norm_rope.h"
#include "gpu/cuda/random_init.h"
#include "gpu/cuda/rms_norm.h"
#include "gpu/cuda/router.h"
#include "gpu/cuda/swiglu.h"
#include "model/gen_model.h"
#include "tests/gpu/cuda_test_util.h"

using namespace conclave;
using namespace conclave::test::cuda;
namespace cu = conclave::gpu::cuda;
namespace cpu = conclave::gpu::cpu;

namespace {
// Tolerances: fp32 kernels differ from the CPU only in summation order; bf16 outputs
// carry one rounding (2^-8 relative) on top.
double rel_tol(elem t) {
  return t == elem::f32 ? 1e-5 : 1e-2;
}
}  // namespace

TEST_CASE("cuda embedding_gather copies the rows of the ids", "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (elem t : {elem::f32, elem::bf16}) {
    for (auto [vocab, hidden, rows] : {std::tuple{17, 33, 5}, {1000, 256, 64}, {3, 1, 1}}) {
      INFO(name(t) << " vocab " << vocab << " hidden " << hidden << " rows " << rows);
      const auto table = round_as(randn(size_t(vocab) * hidden, rng), t);
      std::vector<int32_t> ids(rows);
      std::uniform_int_distribution<int32_t> d(0, vocab - 1);
      for (auto& i : ids) i = d(rng);
      auto dt = upload_as(table, t);
      auto di = device_buffer::from(ids);
      auto out = poisoned(size_t(rows) * hidden, elem::f32);
      cu::embedding_gather(dt.get(), t, di.as<int32_t>(), rows, hidden, out.as<float>(), nullptr);
      std::vector<float> want;
      for (int32_t id : ids)
        want.insert(want.end(), table.begin() + size_t(id) * hidden,
                    table.begin() + size_t(id + 1) * hidden);
      check_close(out.to_vector<float>(size_t(rows) * hidden), want, 0, 0);
    }
  }
}

TEST_CASE("cuda add_rms_norm matches residual add + cpu rms_norm", "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (elem t : {elem::f32, elem::bf16}) {
    for (auto [rows, dim] : {std::pair{1, 7}, {5, 129}, {33, 2048}, {3, 4096}}) {
      for (int mode = 0; mode < 3; ++mode) {  // 0: norm only, 1: add + bias, 2: add, row gather
        INFO(name(t) << " rows " << rows << " dim " << dim << " mode " << mode);
        auto x = randn(size_t(rows) * dim, rng), add = randn(size_t(rows) * dim, rng),
             bias = randn(dim, rng), w = randn(dim, rng);
        std::vector<int32_t> index;
        if (mode == 2)
          for (int r = rows - 1; r >= 0; r -= 2) index.push_back(r);
        const size_t out_rows = mode == 2 ? index.size() : size_t(rows);
        auto dx = device_buffer::from(x), dadd = device_buffer::from(add),
             dbias = device_buffer::from(bias), dw = device_buffer::from(w),
             didx = device_buffer::from(index);
        auto out = poisoned(out_rows * dim, t);
        cu::add_rms_norm(dx.as<float>(), mode ? dadd.as<float>() : nullptr,
                         mode == 1 ? dbias.as<float>() : nullptr, dw.as<float>(), out.get(), t,
                         mode == 2 ? didx.as<int32_t>() : nullptr, out_rows, dim, 1e-6f, nullptr);
        // CPU twin.
        std::vector<float> want_x = x;
        std::vector<size_t> rows_used(out_rows);
        for (size_t i = 0; i < out_rows; ++i) rows_used[i] = mode == 2 ? size_t(index[i]) : i;
        for (size_t r : rows_used) {
          for (int j = 0; j < dim; ++j) {
            if (mode) want_x[r * dim + j] += add[r * dim + j];
            if (mode == 1) want_x[r * dim + j] += bias[j];
          }
        }
        std::vector<float> want(out_rows * dim);
        for (size_t i = 0; i < out_rows; ++i)
          cpu::rms_norm(want_x.data() + rows_used[i] * dim, w.data(), want.data() + i * dim, 1, dim,
                        1e-6f);
        check_close(download_as(out, t, out_rows * dim), want, rel_tol(t), 1e-5);
        check_close(dx.to_vector<float>(x.size()), want_x, 1e-6, 1e-6);
      }
    }
  }
}

TEST_CASE("cuda qk_norm_rope matches bias + cpu rms_norm per head + cpu apply_rope",
          "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (auto [rows, heads, kvh, hd] : {std::tuple{1, 4, 2, 16},
                                      {7, 6, 2, 128},
                                      {33, 32, 4, 128},
                                      {5, 3, 1, 64},
                                      {3, 2, 1, 256},
                                      {4, 4, 2, 48}}) {
    for (bool with_bias : {false, true}) {
      INFO("rows " << rows << " heads " << heads << "/" << kvh << " head_dim " << hd << " bias "
                   << with_bias);
      const size_t width = size_t(heads + 2 * kvh) * hd;
      auto qkv = randn(rows * width, rng), bias = randn(width, rng), qw = randn(hd, rng),
           kw = randn(hd, rng);
      std::vector<int32_t> pos(rows);
      std::uniform_int_distribution<int32_t> dp(0, 40000);
      for (auto& p : pos) p = dp(rng);
      const auto inv = cpu::rope_inv_freq(hd, 1e6);
      auto d = device_buffer::from(qkv), db = device_buffer::from(bias),
           dq = device_buffer::from(qw), dk = device_buffer::from(kw),
           dpos = device_buffer::from(pos), dinv = device_buffer::from(inv);
      cu::qk_norm_rope(d.as<float>(), with_bias ? db.as<float>() : nullptr, dq.as<float>(),
                       dk.as<float>(), dpos.as<int32_t>(), dinv.as<float>(), rows, heads, kvh, hd,
                       1e-6f, nullptr);
      auto want = qkv;
      for (size_t r = 0; r < size_t(rows); ++r) {
        float* row = want.data() + r * width;
        if (with_bias)
          for (size_t j = 0; j < width; ++j) row[j] += bias[j];
        cpu::rms_norm(row, qw.data(), row, heads, hd, 1e-6f);
        cpu::rms_norm(row + heads * hd, kw.data(), row + heads * hd, kvh, hd, 1e-6f);
      }
      cpu::apply_rope(want.data(), rows, width, heads, hd, pos.data(), inv.data());
      cpu::apply_rope(want.data() + heads * hd, rows, width, kvh, hd, pos.data(), inv.data());
      check_close(d.to_vector<float>(qkv.size()), want, 1e-5, 1e-5);
    }
  }
}

namespace {

struct attention_case {
  std::vector<int32_t> num_cached, num_tokens;
  int32_t block_size;
  size_t heads, kvh, hd;
};

void run_attention_case(const attention_case& c, elem t, std::mt19937_64& rng) {
  const size_t width = c.kvh * c.hd, qw = c.heads * c.hd, stride = qw + 2 * width;
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
  // Earlier context: random keys/values already in the cache (as stored in t).
  auto kc = round_as(randn(slots * width, rng), t), vc = round_as(randn(slots * width, rng), t);
  auto qkv = randn(rows * stride, rng);
  // The CPU twin sees the new keys/values as the cache will hold them.
  auto qkv_rounded = qkv;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t j = qw; j < stride; ++j) {
      qkv_rounded[r * stride + j] = round_as({qkv[r * stride + j]}, t)[0];
    }
  }
  std::vector<float> want_k = kc, want_v = vc;
  cpu::paged_kv kv{want_k.data(), want_v.data(), c.block_size, int32_t(c.kvh), int32_t(c.hd)};
  cpu::kv_cache_write(kv, seqs, qkv_rounded.data() + qw, qkv_rounded.data() + qw + width, stride);
  std::vector<float> want(rows * qw);
  cpu::paged_attention(kv, seqs, qkv.data(), stride, c.heads, want.data(), nullptr);

  // Device: per-row metadata as the backend builds it.
  std::vector<int32_t> slot_of_row, ctx, off, flat;
  for (size_t s = 0; s < nseq; ++s) {
    const int32_t o = int32_t(flat.size());
    flat.insert(flat.end(), tables[s].begin(), tables[s].end());
    for (int32_t i = 0; i < c.num_tokens[s]; ++i) {
      const int32_t p = c.num_cached[s] + i;
      slot_of_row.push_back(tables[s][size_t(p / c.block_size)] * c.block_size + p % c.block_size);
      ctx.push_back(p + 1);
      off.push_back(o);
    }
  }
  auto dk = upload_as(kc, t), dv = upload_as(vc, t);
  auto dqkv = device_buffer::from(qkv), dslot = device_buffer::from(slot_of_row),
       dctx = device_buffer::from(ctx), doff = device_buffer::from(off),
       dtab = device_buffer::from(flat);
  cu::kv_cache_write(dqkv.as<float>(), stride, qw, qw + width, dslot.as<int32_t>(), rows, width,
                     dk.get(), dv.get(), t, nullptr);
  check_close(download_as(dk, t, kc.size()), want_k, 0, 0);
  check_close(download_as(dv, t, vc.size()), want_v, 0, 0);
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
  cu::paged_attention(a, nullptr);
  {
    INFO("simple kernel");
    check_close(download_as(out, t, rows * qw), want, t == elem::f32 ? 1e-4 : 1e-2, 1e-4);
  }
  // The GQA kernel (fast paths), whole contexts per block, then split over the sequence
  // where the step has few rows and long contexts.
  a.tiled = true;
  auto out1 = poisoned(rows * qw, t);
  a.out = out1.get();
  cu::paged_attention(a, nullptr);
  {
    INFO("GQA kernel");
    check_close(download_as(out1, t, rows * qw), want, t == elem::f32 ? 1e-4 : 1e-2, 1e-4);
  }
  // Split planned for the step's longest context, then for a graph's (the model's
  // longest context: most slices of these rows are empty).
  for (int32_t max_ctx : {*std::max_element(ctx.begin(), ctx.end()), 40960}) {
    a.max_ctx = max_ctx;
    device_buffer ws(std::max<size_t>(cu::attention_workspace_floats(a), 1) * sizeof(float));
    ws.fill(0);  // the split's arrival counters start at zero
    a.workspace = ws.as<float>();
    INFO("GQA kernel + split for max_ctx " << max_ctx << ", workspace "
                                           << cu::attention_workspace_floats(a) << " floats");
    auto out2 = poisoned(rows * qw, t);
    a.out = out2.get();
    cu::paged_attention(a, nullptr);
    check_close(download_as(out2, t, rows * qw), want, t == elem::f32 ? 1e-4 : 1e-2, 1e-4);
  }
  // Tensor-core prefill tiles (bf16; head_dim 64 or 128) for chunks of >= 16 tokens,
  // the GQA kernel for the rows left. bf16 q and probabilities: a looser tolerance.
  if (t == elem::bf16 && cu::prefill_attention_supported(c.hd)) {
    std::vector<int32_t> tiles, rest;
    for (size_t s = 0; s < nseq; ++s) {
      const auto r0 = static_cast<int32_t>(seqs[s].first_row);
      const int32_t n = c.num_tokens[s];
      const int32_t o = off[seqs[s].first_row];
      if (n >= 16) {
        for (int32_t r = 0; r < n; r += cu::kPrefillTileRows)
          tiles.insert(tiles.end(),
                       {r0 + r, std::min(cu::kPrefillTileRows, n - r), c.num_cached[s] + r, o});
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
      cu::prefill_attention(p, nullptr);
      a.out = out3.get();
      a.row_index = drest.as<int32_t>();
      a.index_rows = rest.size();
      a.workspace = nullptr;
      cu::paged_attention(a, nullptr);
      a.row_index = nullptr;
      const auto got = download_as(out3, t, rows * qw);
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
  }
}

}  // namespace

TEST_CASE("cuda kv_cache_write + paged_attention match the cpu twins on mixed batches",
          "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::vector<attention_case> cases = {
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
  };
  for (elem t : {elem::f32, elem::bf16}) {
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO(name(t) << " case " << i);
      run_attention_case(cases[i], t, rng);
    }
  }
}

TEST_CASE("cuda router_topk matches cpu router_topk", "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (auto [tokens, experts, k] :
       {std::tuple{1, 8, 2}, {13, 128, 8}, {300, 160, 8}, {5, 7, 7}, {4, 1000, 3}}) {
    for (bool norm : {false, true}) {
      INFO("tokens " << tokens << " experts " << experts << " k " << k << " norm " << norm);
      auto logits = randn(size_t(tokens) * experts, rng, 2.0f);
      std::vector<int32_t> want_ids(size_t(tokens) * k);
      std::vector<float> want_w(size_t(tokens) * k);
      cpu::router_topk(logits.data(), tokens, experts, k, norm, want_ids.data(), want_w.data());
      auto dl = device_buffer::from(logits);
      auto ids = poisoned(want_ids.size(), elem::f32), w = poisoned(want_w.size(), elem::f32);
      cu::router_topk(dl.as<float>(), tokens, experts, k, norm, ids.as<int32_t>(), w.as<float>(),
                      nullptr);
      CHECK(ids.to_vector<int32_t>(want_ids.size()) == want_ids);
      check_close(w.to_vector<float>(want_w.size()), want_w, 1e-5, 1e-7);
    }
  }
}

TEST_CASE(
    "cuda moe_permute groups pairs per expert as the cpu MoE does; gather, swiglu, "
    "combine match",
    "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (elem t : {elem::f32, elem::bf16}) {
    for (auto [tokens, experts, k, hidden, m] : {std::tuple{1, 8, 2, 33, 17},
                                                 {37, 128, 8, 64, 48},
                                                 {5000, 160, 8, 16, 8},
                                                 {3, 4, 4, 5, 3},
                                                 {4096, 128, 8, 8, 8},
                                                 {700, 1000, 3, 8, 8}}) {
      INFO(name(t) << " tokens " << tokens << " experts " << experts << " k " << k);
      // Random distinct experts per token.
      std::vector<int32_t> ids;
      std::vector<int32_t> all(static_cast<size_t>(experts));
      std::iota(all.begin(), all.end(), 0);
      for (int i = 0; i < tokens; ++i) {
        std::shuffle(all.begin(), all.end(), rng);
        ids.insert(ids.end(), all.begin(), all.begin() + k);
      }
      const size_t n = ids.size();
      // CPU twin: moe_forward's buckets (ascending expert, tokens ascending within).
      std::vector<std::vector<std::pair<int32_t, size_t>>> routed(experts);
      for (size_t p = 0; p < n; ++p) routed[size_t(ids[p])].emplace_back(int32_t(p / k), p);
      std::vector<int32_t> want_off{0}, want_tok, want_slot(n);
      for (const auto& list : routed) {
        for (const auto& [tok, pair] : list) {
          want_slot[pair] = int32_t(want_tok.size());
          want_tok.push_back(tok);
        }
        want_off.push_back(int32_t(want_tok.size()));
      }
      auto dids = device_buffer::from(ids);
      auto off = poisoned(size_t(experts) + 1, elem::f32), tok = poisoned(n, elem::f32),
           slot = poisoned(n, elem::f32), active = poisoned(size_t(experts), elem::f32);
      cu::moe_permute(dids.as<int32_t>(), tokens, k, experts, off.as<int32_t>(), tok.as<int32_t>(),
                      slot.as<int32_t>(), active.as<int32_t>(), nullptr);
      CHECK(off.to_vector<int32_t>(size_t(experts) + 1) == want_off);
      CHECK(tok.to_vector<int32_t>(n) == want_tok);
      CHECK(slot.to_vector<int32_t>(n) == want_slot);
      std::vector<int32_t> want_active;
      for (int e = 0; e < experts; ++e)
        if (!routed[size_t(e)].empty()) want_active.push_back(e);
      want_active.resize(size_t(experts), -1);
      CHECK(active.to_vector<int32_t>(size_t(experts)) == want_active);

      // gather_rows
      const auto h = round_as(randn(size_t(tokens) * hidden, rng), t);
      auto dh = upload_as(h, t);
      auto xs = poisoned(n * hidden, t);
      cu::gather_rows(dh.get(), t, tok.as<int32_t>(), n, hidden, xs.get(), nullptr);
      std::vector<float> want_xs;
      for (int32_t r : want_tok)
        want_xs.insert(want_xs.end(), h.begin() + size_t(r) * hidden,
                       h.begin() + size_t(r + 1) * hidden);
      check_close(download_as(xs, t, n * hidden), want_xs, 0, 0);

      // swiglu
      const auto gu = randn(n * 2 * m, rng, 3.0f);
      auto dgu = device_buffer::from(gu);
      auto act = poisoned(n * m, t);
      cu::swiglu(dgu.as<float>(), n, m, act.get(), t, nullptr);
      std::vector<float> want_act(n * m);
      cpu::swiglu(gu.data(), want_act.data(), n, m);
      check_close(download_as(act, t, n * m), want_act, rel_tol(t), 1e-6);

      // combine
      const auto down = randn(n * hidden, rng);
      const auto w = randn(n, rng);
      auto ddown = device_buffer::from(down), dw = device_buffer::from(w);
      auto out = poisoned(size_t(tokens) * hidden, elem::f32);
      cu::moe_combine(ddown.as<float>(), slot.as<int32_t>(), dw.as<float>(), tokens, k, hidden,
                      out.as<float>(), nullptr);
      std::vector<float> want_out(size_t(tokens) * hidden, 0.0f);
      for (size_t p = 0; p < n; ++p) {
        const size_t tkn = p / k, row = size_t(want_slot[p]);
        for (int j = 0; j < hidden; ++j)
          want_out[tkn * hidden + j] += down[row * hidden + j] * w[p];
      }
      check_close(out.to_vector<float>(want_out.size()), want_out, 1e-5, 1e-5);
    }
  }
}

TEST_CASE("cuda blas::linear matches cpu linear (strict fp32 and bf16 inputs)", "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  cu::blas b;
  for (elem t : {elem::f32, elem::bf16}) {
    for (auto [m, n, k] : {std::tuple{1, 7, 13}, {5, 129, 64}, {64, 512, 2048}, {3, 1, 1}}) {
      INFO(name(t) << " m " << m << " n " << n << " k " << k);
      const auto x = round_as(randn(size_t(m) * k, rng), t),
                 w = round_as(randn(size_t(n) * k, rng), t);
      auto dx = upload_as(x, t), dw = upload_as(w, t);
      auto y = poisoned(size_t(m) * n, elem::f32);
      b.linear(dx.get(), dw.get(), t, y.as<float>(), m, n, k);
      std::vector<float> want(size_t(m) * n);
      cpu::linear(x.data(), w.data(), nullptr, want.data(), m, n, k);
      // Inputs are identical; only the fp32 summation order differs.
      check_close(y.to_vector<float>(want.size()), want, 1e-4, 1e-4 * std::sqrt(double(k)));
    }
  }
}

TEST_CASE("cuda random_fill generates gen-model's values", "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  for (bool norm : {false, true}) {
    const std::string name = norm ? "model.layers.3.input_layernorm.weight" : "model.embed.weight";
    const size_t n = 10007;
    const uint64_t seed = 42;
    auto d = poisoned(n, elem::f32);
    cu::random_fill(d.get(), elem::f32, n, model::random_weight_stream(seed, name), 0, 0.02f, norm,
                    nullptr);
    std::vector<float> want(n);
    for (size_t i = 0; i < n; ++i) want[i] = model::random_weight(seed, name, i, 0.02f, norm);
    check_close(d.to_vector<float>(n), want, 1e-6, 1e-9);
  }
}

TEST_CASE("cuda grouped_gemv matches cpu linear per expert; dense_gemv matches cpu linear",
          "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (elem t : {elem::f32, elem::bf16}) {
    for (auto [experts, rows, n, k] : {std::tuple{8, 5, 33, 17},
                                       {128, 512, 1536, 2048},
                                       {4, 21, 7, 3},
                                       {160, 8, 768, 6144},
                                       {128, 8, 2048, 768},
                                       {3, 40, 37, 24}}) {
      INFO(name(t) << " experts " << experts << " rows " << rows << " n " << n << " k " << k);
      // Random split of the rows over the experts (some empty, some with > 8 rows).
      std::vector<int32_t> offsets(size_t(experts) + 1, 0);
      std::uniform_int_distribution<int32_t> pick(0, experts - 1);
      std::vector<int32_t> count(static_cast<size_t>(experts), 0);
      for (int i = 0; i < rows; ++i) ++count[size_t(pick(rng))];
      for (int e = 0; e < experts; ++e)
        offsets[size_t(e) + 1] = offsets[size_t(e)] + count[size_t(e)];
      // The rows read x through a random row index (as the MoE reads its tokens).
      const int xrows = rows / 2 + 1;
      std::uniform_int_distribution<int32_t> pick_row(0, xrows - 1);
      std::vector<int32_t> x_rows(static_cast<size_t>(rows));
      for (auto& r : x_rows) r = pick_row(rng);
      const auto x = round_as(randn(size_t(xrows) * k, rng), t);
      const auto w = round_as(randn(size_t(experts) * n * k, rng), t);
      auto dx = upload_as(x, t), dw = upload_as(w, t);
      auto doff = device_buffer::from(offsets), dxr = device_buffer::from(x_rows);
      std::vector<float> want(size_t(rows) * n);
      std::vector<float> xg;
      for (int32_t r : x_rows)
        xg.insert(xg.end(), x.begin() + size_t(r) * k, x.begin() + size_t(r + 1) * k);
      std::vector<int32_t> active;
      for (int e = 0; e < experts; ++e) {
        const size_t b = size_t(offsets[size_t(e)]), c = size_t(count[size_t(e)]);
        if (c == 0) continue;
        active.push_back(e);
        cpu::linear(xg.data() + b * k, w.data() + size_t(e) * n * k, nullptr, want.data() + b * n,
                    c, n, k);
      }
      const size_t grid = std::min<size_t>(size_t(experts), size_t(rows));
      active.resize(grid, -1);
      auto dact = device_buffer::from(active);
      for (bool with_active : {false, true}) {
        INFO("active list " << with_active);
        auto y = poisoned(size_t(rows) * n, elem::f32);
        cu::gemv_args g;
        g.x = dx.get();
        g.x_rows = dxr.as<int32_t>();
        g.w = dw.get();
        g.t = t;
        g.offsets = doff.as<int32_t>();
        g.active = with_active ? dact.as<int32_t>() : nullptr;
        g.experts = size_t(experts);
        g.grid_experts = with_active ? grid : size_t(experts);
        g.y = y.as<float>();
        g.n = size_t(n);
        g.k = size_t(k);
        cu::grouped_gemv(g, nullptr);
        check_close(y.to_vector<float>(want.size()), want, 1e-4, 1e-4 * std::sqrt(double(k)));
      }
    }
    for (auto [m, n, k] : {std::tuple{1, 5120, 2048}, {3, 129, 64}, {8, 2048, 4096}, {2, 7, 13}}) {
      INFO(name(t) << " dense m " << m << " n " << n << " k " << k);
      const auto x = round_as(randn(size_t(m) * k, rng), t),
                 w = round_as(randn(size_t(n) * k, rng), t);
      auto dx = upload_as(x, t), dw = upload_as(w, t);
      auto y = poisoned(size_t(m) * n, elem::f32);
      cu::dense_gemv(dx.get(), dw.get(), t, m, y.as<float>(), n, k, nullptr);
      std::vector<float> want(size_t(m) * n);
      cpu::linear(x.data(), w.data(), nullptr, want.data(), m, n, k);
      check_close(y.to_vector<float>(want.size()), want, 1e-4, 1e-4 * std::sqrt(double(k)));
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
      for (size_t i = 0; i < batches.size(); ++i) {
        const auto& ctx = batches[i];
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
  for (auto [t, sh] : {std::pair{elem::bf16, decode_shape{32, 4, 128, 16}},
                       std::pair{elem::f32, decode_shape{12, 1, 40, 7}},
                       std::pair{elem::bf16, decode_shape{6, 3, 256, 5}}}) {
    INFO(name(t) << " heads " << sh.heads << "/" << sh.kvh << " head_dim " << sh.hd << " block "
                 << sh.bs);
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
