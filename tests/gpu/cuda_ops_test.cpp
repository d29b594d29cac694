// Every CUDA op against its CPU twin (gpu/cpu ops, or the CPU MoE's grouping) on fresh
// random inputs: several shapes including odd sizes, fp32 and bf16 storage, outputs
// poisoned before the run so that an element left unwritten fails. Skips without a GPU.
// The KV-cache write and the attention kernels are in cuda_attention_test.cpp.
#include <algorithm>
#include <numeric>

#include "gpu/cpu/ops.h"
#include "gpu/cuda/embedding.h"
#include "gpu/cuda/gemm.h"
#include "gpu/cuda/moe_combine.h"
#include "gpu/cuda/moe_gemv.h"
#include "gpu/cuda/moe_permute.h"
#include "gpu/cuda/moe_router.h"
#include "gpu/cuda/qk_norm_rope.h"
#include "gpu/cuda/random_init.h"
#include "gpu/cuda/rms_norm.h"
#include "gpu/cuda/swiglu.h"
#include "gpu/host_ops.h"
#include "model/gen_model.h"
#include "tests/gpu/cuda_test_util.h"
#include "tests/gpu/test_weights.h"

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
      const auto inv = gpu::rope_inv_freq(hd, 1e6);
      const float scale = with_bias ? 1.1386294f : 1.0f;  // yarn's attention scaling (factor 4)
      auto d = device_buffer::from(qkv), db = device_buffer::from(bias),
           dq = device_buffer::from(qw), dk = device_buffer::from(kw),
           dpos = device_buffer::from(pos), dinv = device_buffer::from(inv);
      cu::qk_norm_rope(d.as<float>(), with_bias ? db.as<float>() : nullptr, dq.as<float>(),
                       dk.as<float>(), dpos.as<int32_t>(), dinv.as<float>(), rows, heads, kvh, hd,
                       1e-6f, nullptr, scale);
      auto want = qkv;
      for (size_t r = 0; r < size_t(rows); ++r) {
        float* row = want.data() + r * width;
        if (with_bias)
          for (size_t j = 0; j < width; ++j) row[j] += bias[j];
        cpu::rms_norm(row, qw.data(), row, heads, hd, 1e-6f);
        cpu::rms_norm(row + heads * hd, kw.data(), row + heads * hd, kvh, hd, 1e-6f);
      }
      cpu::apply_rope(want.data(), rows, width, heads, hd, pos.data(), inv.data(), scale);
      cpu::apply_rope(want.data() + heads * hd, rows, width, kvh, hd, pos.data(), inv.data(),
                      scale);
      check_close(d.to_vector<float>(qkv.size()), want, 1e-5, 1e-5);
    }
  }
}

TEST_CASE(
    "cuda qk_norm_rope_kv: the fused KV write stores what qk_norm_rope + kv_cache_write(_fp8) "
    "store, byte for byte",
    "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (auto [rows, heads, kvh, hd] :
       {std::tuple{1, 4, 2, 16}, {7, 32, 4, 128}, {5, 3, 1, 64}, {3, 2, 1, 256}, {4, 4, 2, 48}}) {
    for (int cache : {0, 1, 2}) {  // f32, bf16, fp8
      const bool with_bias = cache != 1;
      INFO("rows " << rows << " heads " << heads << "/" << kvh << " head_dim " << hd << " cache "
                   << cache);
      const size_t width = size_t(heads + 2 * kvh) * hd, kvw = size_t(kvh) * hd;
      const elem t = cache == 0 ? elem::f32 : elem::bf16;
      const size_t row_bytes =
          cache == 2 ? (kvw + 4 * size_t(kvh) + 15) / 16 * 16 : kvw * elem_size(t);
      const size_t num_slots = size_t(rows) * 3 + 2;
      auto qkv = randn(rows * width, rng, 3.0f), bias = randn(width, rng), qw = randn(hd, rng),
           kw = randn(hd, rng);
      std::vector<int32_t> pos(rows), slots(num_slots);
      std::uniform_int_distribution<int32_t> dp(0, 40000);
      for (auto& p : pos) p = dp(rng);
      std::iota(slots.begin(), slots.end(), 0);
      std::shuffle(slots.begin(), slots.end(), rng);
      slots.resize(rows);  // distinct slots, scattered
      if (rows > 1) std::fill(qkv.begin() + width, qkv.begin() + 2 * width, 0.0f);  // amax 0
      const auto inv = gpu::rope_inv_freq(hd, 1e6);
      auto db = device_buffer::from(bias), dq = device_buffer::from(qw),
           dk = device_buffer::from(kw), dpos = device_buffer::from(pos),
           dslot = device_buffer::from(slots), dinv = device_buffer::from(inv);
      std::vector<std::vector<uint8_t>> caches;
      std::vector<std::vector<float>> outs;
      for (bool fused : {false, true}) {
        auto d = device_buffer::from(qkv);
        device_buffer kc(num_slots * row_bytes), vc(num_slots * row_bytes);
        kc.fill(0xab);
        vc.fill(0xcd);
        cu::kv_target kv{dslot.as<int32_t>(), kc.get(), vc.get(), t, cache == 2, row_bytes};
        cu::qk_norm_rope_kv(d.as<float>(), with_bias ? db.as<float>() : nullptr, dq.as<float>(),
                            dk.as<float>(), dpos.as<int32_t>(), dinv.as<float>(), rows, heads, kvh,
                            hd, 1e-6f, 1.0f, kv, fused, nullptr);
        outs.push_back(d.to_vector<float>(qkv.size()));
        caches.push_back(kc.to_vector<uint8_t>(num_slots * row_bytes));
        caches.push_back(vc.to_vector<uint8_t>(num_slots * row_bytes));
      }
      CHECK(outs[0] == outs[1]);
      CHECK(caches[0] == caches[2]);  // keys
      CHECK(caches[1] == caches[3]);  // values
      // The rows' slots were written (not left as the fill), the others were not.
      const auto row0 = caches[2].begin() + std::ptrdiff_t(size_t(slots[0]) * row_bytes);
      CHECK(
          std::any_of(row0, row0 + std::ptrdiff_t(row_bytes), [](uint8_t b) { return b != 0xab; }));
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
    "cuda moe_permute groups pairs per expert as the cpu MoE does: gather, swiglu, "
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
    const auto got = d.to_vector<float>(n);
    check_close(got, want, 1e-6, 1e-9);
    // Rounded through bf16 (gen-model's storage dtype; an fp32 norm holds it): the value
    // the written file holds, bit for bit (CUDA's and glibc's log/cos may differ in the
    // last bit of a double, which the fp32 and bf16 roundings absorb).
    cu::random_fill(d.get(), elem::f32, n, model::random_weight_stream(seed, name), 0, 0.02f, norm,
                    nullptr, cu::round_through::bf16);
    const auto rounded = d.to_vector<float>(n);
    size_t f32_differ = 0, bf16_differ = 0;
    for (size_t i = 0; i < n; ++i) {
      f32_differ += got[i] != want[i];
      bf16_differ += rounded[i] != model::bf16_to_f32(model::f32_to_bf16(want[i]));
    }
    WARN(name << ": " << f32_differ << " of " << n << " fp32 values differ from the host's");
    CHECK(bf16_differ == 0);
  }
}

// No ';' in a case name: catch_discover_tests splits names at ';' (a CMake list), and
// each half then matches no case (ctest fails such an entry: `-w NoTests`).
TEST_CASE(
    "cuda grouped_gemv and grouped_mma match cpu linear per expert, dense_gemv matches cpu linear",
    "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (elem t : {elem::f32, elem::bf16}) {
    for (auto fmt : formats(t))
      for (auto [experts, rows, n, k] : {std::tuple{8, 5, 33, 17},
                                         {128, 512, 1536, 2048},
                                         {4, 21, 7, 3},
                                         {160, 8, 768, 6144},
                                         {128, 8, 2048, 768},
                                         {3, 40, 37, 24},
                                         {2, 150, 100, 72},
                                         {5, 100, 72, 192},
                                         {16, 300, 1536, 2048},
                                         {12, 40, 2048, 768}}) {
        // Quantized: the shapes both formats hold with at most 16 experts (the CPU
        // quantizers make their weights); the tensor-core GEMM also needs k and the group
        // multiples of 64; k 192 ends in a partial group of 128.
        if (fmt != model::quant_method::none &&
            (row_group(fmt, n, k) == 0 || k % 64 != 0 || experts > 16))
          continue;
        INFO(name(t) << " " << model::quant_method_name(fmt) << " experts " << experts << " rows "
                     << rows << " n " << n << " k " << k);
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
        const auto wts = make_weights(fmt, t, experts, n, k, 1.0f, rng);
        const auto& w = wts.ref;
        auto dx = upload_as(x, t);
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
          wts.set(g);
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
          // The tensor-core kernel (bf16, k % 8 == 0): passes of up to 16, 32 or 64 rows per
          // expert (max_rows picks the tile), rows past a pass, k past a stage, n past a block.
          if (t != elem::bf16 || k % 8 != 0) continue;
          REQUIRE(cu::grouped_mma_supported(g));
          for (size_t most : {size_t{16}, size_t{32}, size_t(rows)}) {
            INFO("grouped_mma, max_rows " << most);
            auto y2 = poisoned(size_t(rows) * n, elem::f32);
            g.y = y2.as<float>();
            g.max_rows = most;
            cu::grouped_mma(g, nullptr);
            check_close(y2.to_vector<float>(want.size()), want, 1e-4, 1e-4 * std::sqrt(double(k)));
          }
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
