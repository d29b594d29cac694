// The batch-1 decode kernels (gemv_decode.cu, the fused route + permute) and the tensor-core
// grouped GEMM with SwiGLU in its epilogue, against their CPU twins and against the unfused
// launches they replace: the one-row GEMV, gate/up with SwiGLU in the epilogue, down with
// the weighted combine. Fresh random inputs, fp32 and bf16, outputs poisoned before the
// run. Skips without a GPU.
#include <algorithm>
#include <array>
#include <numeric>
#include <tuple>

#include "gpu/cpu/ops.h"
#include "gpu/cuda/gemv_decode.h"
#include "gpu/cuda/moe_gemv.h"
#include "gpu/cuda/moe_permute.h"
#include "gpu/cuda/moe_router.h"
#include "gpu/cuda/quant_row_mma.h"
#include "gpu/cuda/swiglu.h"
#include "tests/gpu/cuda_test_util.h"
#include "tests/gpu/test_weights.h"

using namespace conclave;
using namespace conclave::test::cuda;
namespace cu = conclave::gpu::cuda;
namespace cpu = conclave::gpu::cpu;

namespace {

/// k distinct experts for each of `tokens` tokens.
std::vector<int32_t> distinct_picks(int tokens, int experts, int k, std::mt19937_64& rng) {
  std::vector<int32_t> all(static_cast<size_t>(experts)), ids;
  std::iota(all.begin(), all.end(), 0);
  for (int i = 0; i < tokens; ++i) {
    std::shuffle(all.begin(), all.end(), rng);
    ids.insert(ids.end(), all.begin(), all.begin() + k);
  }
  return ids;
}

/// One token's picks as moe_permute groups them: offsets, row_token (all 0), slot_row and
/// the active list, for one row per expert in ascending expert order.
struct one_token_rows {
  std::vector<int32_t> offsets, row_token, slot_row, active;
};
one_token_rows permute_one(const std::vector<int32_t>& ids, int experts) {
  one_token_rows p;
  p.offsets.assign(size_t(experts) + 1, 0);
  for (int32_t e : ids) p.offsets[size_t(e) + 1] = 1;
  std::partial_sum(p.offsets.begin(), p.offsets.end(), p.offsets.begin());
  p.row_token.assign(ids.size(), 0);
  for (int32_t e : ids) p.slot_row.push_back(p.offsets[size_t(e)]);
  for (int e = 0; e < experts; ++e)
    if (p.offsets[size_t(e) + 1] > p.offsets[size_t(e)]) p.active.push_back(e);
  p.active.resize(std::min(ids.size(), size_t(experts)), -1);
  return p;
}

/// One token's picks on the device, and the grouped GEMV's arguments for a one-row launch
/// over them (x read through row_token; the active list, or a block row per expert).
struct one_token_launch {
  one_token_rows p;
  device_buffer off, tok, act;
  one_token_launch(const std::vector<int32_t>& ids, int experts)
      : p(permute_one(ids, experts)),
        off(device_buffer::from(p.offsets)),
        tok(device_buffer::from(p.row_token)),
        act(device_buffer::from(p.active)) {}
  template <class W>
  cu::gemv_args args(const device_buffer& x, const W& w, elem t, int experts, int n, int k,
                     bool with_active) const {
    cu::gemv_args a;
    a.x = x.get();
    a.x_rows = tok.as<int32_t>();
    w.set(a);
    a.t = t;
    a.offsets = off.as<int32_t>();
    a.active = with_active ? act.as<int32_t>() : nullptr;
    a.experts = size_t(experts);
    a.grid_experts = with_active ? p.active.size() : size_t(experts);
    a.max_rows = 1;
    a.n = size_t(n);
    a.k = size_t(k);
    return a;
  }
};

double sum_tol(size_t k) {
  return 1e-4 * std::sqrt(double(k));
}

/// The one-row kernels' paths for a quantized format: CUDA cores, and tensor cores
/// (quant_row_mma.h) where they take rows of k inputs; plain weights have one.
std::vector<bool> tensor_core_choices(model::quant_method fmt, elem t, int k) {
  gpu::quant_layout q;
  q.method = fmt;
  q.group = row_group(fmt, 16, k);
  if (fmt == model::quant_method::none || !cu::quant_row_mma_ok(q, t, size_t(k))) return {false};
  return {false, true};
}

}  // namespace

TEST_CASE("cuda one-row GEMV matches cpu linear, dense and per expert", "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (elem t : {elem::f32, elem::bf16})
    for (auto fmt : formats(t)) {
      // k past one round (> 16 steps), each round size, n not a multiple of the rows per
      // warp; quantized: a partial last scale group (k 208), one round of 8 loads or more.
      // Inputs of magnitude 1, 3e4 and 1e-5 (the tensor-core path scales them into f16).
      int shape = 0;
      for (auto [n, k] : {std::tuple{5120, 2048},
                          {2048, 4096},
                          {128, 2048},
                          {37, 24},
                          {1001, 768},
                          {64, 12288},
                          {3, 8},
                          {136, 208}}) {
        const float xmag = std::array{1.0f, 3.0e4f, 1.0e-5f}[size_t(shape++) % 3];
        if (row_group(fmt, n, k) == 0) continue;
        INFO(name(t) << " " << model::quant_method_name(fmt) << " dense n " << n << " k " << k
                     << " |x| ~ " << xmag);
        const auto x = round_as(randn(size_t(k), rng, xmag), t);
        const auto w = make_weights(fmt, t, 1, n, k, 1.0f, rng);
        auto dx = upload_as(x, t);
        std::vector<float> want(static_cast<size_t>(n));
        cpu::linear(x.data(), w.ref.data(), nullptr, want.data(), 1, n, k);
        for (bool mma : tensor_core_choices(fmt, t, k)) {
          INFO("tensor cores " << mma);
          auto y = poisoned(size_t(n), elem::f32);
          cu::gemv_args a;
          a.x = dx.get();
          w.set(a);
          a.t = t;
          a.rows = 1;
          a.y = y.as<float>();
          a.n = size_t(n);
          a.k = size_t(k);
          a.qp.row_mma = mma;
          REQUIRE(cu::row_gemv_ok(a));
          cu::row_gemv(a, nullptr);
          check_close(y.to_vector<float>(want.size()), want, 1e-4, sum_tol(size_t(k)) * xmag);
        }
      }
      // Per expert: k picks of E experts for one token, x read through row_token.
      for (auto [experts, kpick, n, k] : {std::tuple{16, 8, 1536, 2048},
                                          {12, 8, 768, 6144},
                                          {8, 3, 40, 16},
                                          {4, 4, 17, 264},
                                          {6, 3, 40, 384}}) {
        if (row_group(fmt, n, k) == 0) continue;
        INFO(name(t) << " " << model::quant_method_name(fmt) << " experts " << experts << " picks "
                     << kpick << " n " << n << " k " << k);
        const auto ids = distinct_picks(1, experts, kpick, rng);
        const one_token_launch l(ids, experts);
        const auto x = round_as(randn(size_t(k), rng), t);
        const auto w = make_weights(fmt, t, experts, n, k, 1.0f, rng);
        auto dx = upload_as(x, t);
        for (bool with_active : {false, true})
          for (bool mma : tensor_core_choices(fmt, t, k)) {
            INFO("active list " << with_active << ", tensor cores " << mma);
            auto y = poisoned(size_t(kpick) * n, elem::f32);
            cu::gemv_args a = l.args(dx, w, t, experts, n, k, with_active);
            a.y = y.as<float>();
            a.qp.row_mma = mma;
            REQUIRE(cu::row_gemv_ok(a));
            // grouped_gemv sends it to the row kernel (quantized weights when allowed, as
            // the backend's CONCLAVE_QUANT_ROW_GEMV, on by default, allows them).
            a.qp.rows = true;
            cu::grouped_gemv(a, nullptr);
            std::vector<float> want(size_t(kpick) * n);
            for (size_t j = 0; j < ids.size(); ++j)
              cpu::linear(x.data(), w.ref.data() + size_t(ids[j]) * n * k, nullptr,
                          want.data() + size_t(l.p.slot_row[j]) * n, 1, n, k);
            check_close(y.to_vector<float>(want.size()), want, 1e-4, sum_tol(size_t(k)));
          }
      }
    }
}

TEST_CASE("cuda gate/up with SwiGLU in the epilogue matches cpu linear + cpu swiglu",
          "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (elem t : {elem::f32, elem::bf16})
    for (auto fmt : formats(t))
      for (auto [experts, kpick, m, h] : {std::tuple{16, 8, 768, 2048},
                                          {8, 8, 640, 6144},
                                          {8, 2, 17, 24},
                                          {4, 4, 9, 1032},
                                          {4, 2, 20, 96},
                                          {4, 3, 20, 256}}) {
        if (row_group(fmt, 2 * m, h) == 0) continue;
        INFO(name(t) << " " << model::quant_method_name(fmt) << " experts " << experts << " picks "
                     << kpick << " m " << m << " h " << h);
        const auto ids = distinct_picks(1, experts, kpick, rng);
        const one_token_launch l(ids, experts);
        const auto x = round_as(randn(size_t(h), rng), t);
        const auto w = make_weights(fmt, t, experts, 2 * m, h, 0.05f, rng);
        auto dx = upload_as(x, t);
        std::vector<float> gu(size_t(kpick) * 2 * m), want(size_t(kpick) * m);
        for (size_t j = 0; j < ids.size(); ++j)
          cpu::linear(x.data(), w.ref.data() + size_t(ids[j]) * 2 * m * h, nullptr,
                      gu.data() + size_t(l.p.slot_row[j]) * 2 * m, 1, 2 * m, h);
        cpu::swiglu(gu.data(), want.data(), size_t(kpick), size_t(m));
        for (bool mma : tensor_core_choices(fmt, t, h)) {
          INFO("tensor cores " << mma);
          auto act = poisoned(size_t(kpick) * m, t);
          cu::gemv_args a = l.args(dx, w, t, experts, 2 * m, h, true);
          a.qp.row_mma = mma;
          REQUIRE(cu::row_gemv_ok(a));
          cu::row_gemv_swiglu(a, act.get(), nullptr);
          check_close(download_as(act, t, want.size()), want, t == elem::f32 ? 1e-4 : 1e-2,
                      sum_tol(size_t(h)));
        }
      }
}

TEST_CASE("cuda down with the weighted combine matches cpu linear + the combine sum",
          "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (elem t : {elem::f32, elem::bf16})
    for (auto fmt : formats(t)) {
      // m's rounds: 3 steps (4 experts at a time), 6, 10, 24 (two rounds of one expert).
      for (auto [tokens, experts, kpick, h, m] : {std::tuple{1, 16, 8, 2048, 768},
                                                  {1, 12, 8, 600, 1536},
                                                  {2, 8, 5, 33, 2560},
                                                  {3, 16, 1, 7, 6144},
                                                  {1, 4, 4, 9, 8},
                                                  {1, 6, 4, 16, 96}}) {
        if (row_group(fmt, h, m) == 0) continue;
        INFO(name(t) << " " << model::quant_method_name(fmt) << " tokens " << tokens << " experts "
                     << experts << " picks " << kpick << " h " << h << " m " << m);
        const auto ids = distinct_picks(tokens, experts, kpick, rng);
        const size_t pairs = ids.size();
        // Any permutation of the pairs' rows will do: the kernel follows slot_row.
        std::vector<int32_t> slot(pairs);
        std::iota(slot.begin(), slot.end(), 0);
        std::shuffle(slot.begin(), slot.end(), rng);
        const auto act = round_as(randn(pairs * m, rng), t);
        const auto w = make_weights(fmt, t, experts, h, m, 0.05f, rng);
        const auto wts = randn(pairs, rng);
        auto dact = upload_as(act, t);
        auto dids = device_buffer::from(ids), dslot = device_buffer::from(slot),
             dwts = device_buffer::from(wts);
        std::vector<float> want(size_t(tokens) * h, 0.0f), dn(static_cast<size_t>(h));
        for (size_t p = 0; p < pairs; ++p) {
          cpu::linear(act.data() + size_t(slot[p]) * m, w.ref.data() + size_t(ids[p]) * h * m,
                      nullptr, dn.data(), 1, h, m);
          for (int i = 0; i < h; ++i) want[(p / kpick) * h + size_t(i)] += wts[p] * dn[size_t(i)];
        }
        for (bool mma : tensor_core_choices(fmt, t, m))
          for (bool settled : {false, true}) {
            if (settled && !mma) continue;  // only the tensor-core kernel reads ids early
            INFO("tensor cores " << mma << " ids settled " << settled);
            auto out = poisoned(size_t(tokens) * h, elem::f32);
            cu::down_combine_args d;
            d.act = dact.get();
            w.set(d);
            d.t = t;
            d.ids = dids.as<int32_t>();
            d.slot_row = dslot.as<int32_t>();
            d.weights = dwts.as<float>();
            d.tokens = size_t(tokens);
            d.k = size_t(kpick);
            d.n = size_t(h);
            d.m = size_t(m);
            d.out = out.as<float>();
            d.quant_row_mma = mma;
            d.ids_settled = settled;
            REQUIRE(cu::down_combine_ok(d));
            if (mma) REQUIRE(cu::quant_down_combine_mma_ok(d));
            cu::down_combine(d, nullptr);
            check_close(out.to_vector<float>(want.size()), want, 1e-4, sum_tol(size_t(m)) * kpick);
          }
      }
    }
}

TEST_CASE("cuda moe_route_permute equals router_topk then moe_permute", "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  // One token takes the register top-k (route_token_regs): 4 and 16 experts a lane.
  for (auto [tokens, experts, k] : {std::tuple{1, 128, 8},
                                    {1, 160, 8},
                                    {1, 512, 32},
                                    {1, 100, 20},
                                    {16, 128, 8},
                                    {5, 160, 8},
                                    {3, 7, 7},
                                    {40, 512, 32},
                                    {1, 1, 1},
                                    {0, 64, 4}})
    for (bool norm : {false, true})
      for (bool ties : {false, true}) {
        INFO("tokens " << tokens << " experts " << experts << " k " << k << " norm " << norm
                       << " ties " << ties);
        const size_t pairs = size_t(tokens) * k;
        auto logits = randn(std::max<size_t>(1, size_t(tokens) * experts), rng, 2.0f);
        // Logits on a coarse grid: many equal probabilities, picked by the lower id.
        if (ties)
          for (float& v : logits) v = std::round(v);
        auto dl = device_buffer::from(logits);
        auto run = [&](bool fused) {
          std::vector<device_buffer> b;
          b.push_back(poisoned(std::max<size_t>(1, pairs), elem::f32));  // ids
          b.push_back(poisoned(std::max<size_t>(1, pairs), elem::f32));  // weights
          b.push_back(poisoned(size_t(experts) + 1, elem::f32));         // offsets
          b.push_back(poisoned(std::max<size_t>(1, pairs), elem::f32));  // row_token
          b.push_back(poisoned(std::max<size_t>(1, pairs), elem::f32));  // slot_row
          b.push_back(poisoned(size_t(experts), elem::f32));             // active
          if (fused) {
            cu::moe_route_permute(dl.as<float>(), tokens, experts, k, norm, b[0].as<int32_t>(),
                                  b[1].as<float>(), b[2].as<int32_t>(), b[3].as<int32_t>(),
                                  b[4].as<int32_t>(), b[5].as<int32_t>(), nullptr);
          } else {
            cu::router_topk(dl.as<float>(), tokens, experts, k, norm, b[0].as<int32_t>(),
                            b[1].as<float>(), nullptr);
            cu::moe_permute(b[0].as<int32_t>(), tokens, k, experts, b[2].as<int32_t>(),
                            b[3].as<int32_t>(), b[4].as<int32_t>(), b[5].as<int32_t>(), nullptr);
          }
          return std::tuple{b[0].to_vector<int32_t>(pairs),
                            b[1].to_vector<float>(pairs),
                            b[2].to_vector<int32_t>(size_t(experts) + 1),
                            b[3].to_vector<int32_t>(pairs),
                            b[4].to_vector<int32_t>(pairs),
                            b[5].to_vector<int32_t>(size_t(experts))};
        };
        const auto fused = run(true), apart = run(false);
        CHECK(std::get<0>(fused) == std::get<0>(apart));
        CHECK(std::get<1>(fused) == std::get<1>(apart));  // the same code: bit-equal weights
        CHECK(std::get<2>(fused) == std::get<2>(apart));
        CHECK(std::get<3>(fused) == std::get<3>(apart));
        CHECK(std::get<4>(fused) == std::get<4>(apart));
        CHECK(std::get<5>(fused) == std::get<5>(apart));
        // And the router's part is the CPU's.
        std::vector<int32_t> want_ids(pairs);
        std::vector<float> want_w(pairs);
        if (tokens > 0)
          cpu::router_topk(logits.data(), tokens, experts, k, norm, want_ids.data(), want_w.data());
        CHECK(std::get<0>(fused) == want_ids);
        check_close(std::get<1>(fused), want_w, 1e-5, 1e-7);
      }
  CHECK_THROWS_AS(cu::moe_route_permute(nullptr, 1, 513, 8, false, nullptr, nullptr, nullptr,
                                        nullptr, nullptr, nullptr, nullptr),
                  std::invalid_argument);
}

TEST_CASE("cuda moe_router_route_permute_one equals row_gemv then moe_route_permute, bit for bit",
          "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  auto counter = device_buffer::from(std::vector<uint32_t>{0u});
  for (elem t : {elem::bf16, elem::f32})
    for (auto [experts, k, h] : {std::tuple{128, 8, 2048},
                                 {160, 8, 2048},
                                 {512, 32, 4096},
                                 {7, 7, 64},
                                 {1, 1, 8},
                                 {100, 20, 2056}})
      for (bool norm : {false, true})
        for (bool ties : {false, true}) {
          if (h % (16 / int(elem_size(t))) != 0) continue;
          INFO(name(t) << " experts " << experts << " k " << k << " h " << h << " norm " << norm
                       << " ties " << ties);
          auto x = randn(size_t(h), rng), w = randn(size_t(experts) * h, rng, 0.05f);
          // Small integers over four inputs: exact logits, many of them equal (picked by the
          // lower id).
          if (ties) {
            for (size_t i = 0; i < x.size(); ++i) x[i] = i < 4 ? std::round(x[i] * 2.0f) : 0.0f;
            for (float& v : w) v = std::round(v * 20.0f);
          }
          x = round_as(x, t);
          w = round_as(w, t);
          auto dx = upload_as(x, t), dw = upload_as(w, t);
          const size_t E = size_t(experts), K = size_t(k);
          auto run = [&](bool fused) {
            std::vector<device_buffer> b;
            b.push_back(poisoned(E, elem::f32));      // logits
            b.push_back(poisoned(K, elem::f32));      // ids
            b.push_back(poisoned(K, elem::f32));      // weights
            b.push_back(poisoned(E + 1, elem::f32));  // offsets
            b.push_back(poisoned(K, elem::f32));      // row_token
            b.push_back(poisoned(K, elem::f32));      // slot_row
            b.push_back(poisoned(E, elem::f32));      // active
            if (fused) {
              REQUIRE(cu::router_route_one_ok(t, E, K, size_t(h), dx.get(), dw.get()));
              cu::moe_router_route_permute_one(
                  dx.get(), dw.get(), t, size_t(h), E, K, norm, b[0].as<float>(),
                  b[1].as<int32_t>(), b[2].as<float>(), b[3].as<int32_t>(), b[4].as<int32_t>(),
                  b[5].as<int32_t>(), b[6].as<int32_t>(), counter.as<unsigned int>(), nullptr);
            } else {
              cu::gemv_args a;
              a.x = dx.get();
              a.w = dw.get();
              a.t = t;
              a.rows = 1;
              a.y = b[0].as<float>();
              a.n = E;
              a.k = size_t(h);
              REQUIRE(cu::row_gemv_ok(a));
              cu::row_gemv(a, nullptr);
              cu::moe_route_permute(b[0].as<float>(), 1, E, K, norm, b[1].as<int32_t>(),
                                    b[2].as<float>(), b[3].as<int32_t>(), b[4].as<int32_t>(),
                                    b[5].as<int32_t>(), b[6].as<int32_t>(), nullptr);
            }
            return std::tuple{b[0].to_vector<float>(E),   b[1].to_vector<int32_t>(K),
                              b[2].to_vector<float>(K),   b[3].to_vector<int32_t>(E + 1),
                              b[4].to_vector<int32_t>(K), b[5].to_vector<int32_t>(K),
                              b[6].to_vector<int32_t>(E)};
          };
          const auto apart = run(false);
          for (int rep = 0; rep < 2; ++rep) {  // the counter is left 0 for the next launch
            const auto fused = run(true);
            CHECK(std::get<0>(fused) == std::get<0>(apart));
            CHECK(std::get<1>(fused) == std::get<1>(apart));
            CHECK(std::get<2>(fused) == std::get<2>(apart));
            CHECK(std::get<3>(fused) == std::get<3>(apart));
            CHECK(std::get<4>(fused) == std::get<4>(apart));
            CHECK(std::get<5>(fused) == std::get<5>(apart));
            CHECK(std::get<6>(fused) == std::get<6>(apart));
            CHECK(counter.to_vector<uint32_t>(1)[0] == 0u);
          }
          // The picks are the CPU router's on the same logits.
          std::vector<int32_t> want_ids(K);
          std::vector<float> want_w(K);
          cpu::router_topk(std::get<0>(apart).data(), 1, E, K, norm, want_ids.data(),
                           want_w.data());
          CHECK(std::get<1>(apart) == want_ids);
        }
  CHECK_THROWS_AS(cu::moe_router_route_permute_one(nullptr, nullptr, elem::bf16, 2048, 513, 8,
                                                   false, nullptr, nullptr, nullptr, nullptr,
                                                   nullptr, nullptr, nullptr, nullptr, nullptr),
                  std::invalid_argument);
}

TEST_CASE("cuda grouped_mma_swiglu equals grouped_mma then swiglu, bit for bit, and cpu twins",
          "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const elem t = elem::bf16;
  // (experts, rows, m, k): the 30B layer; passes past 64 rows of one expert with a k tail;
  // one block of gate/up; dense launches (no offsets). Quantized weights: the shapes with k
  // a multiple of 64 (one group of 128 wider than k at k 64).
  for (auto fmt : formats(t))
    for (auto [experts, rows, m, k] : {std::tuple{128, 512, 768, 2048},
                                       {3, 150, 64, 72},
                                       {8, 20, 32, 64},
                                       {1, 40, 96, 24},
                                       {1, 70, 96, 128}}) {
      if (fmt != model::quant_method::none && (row_group(fmt, 2 * m, k) == 0 || k % 64 != 0))
        continue;
      INFO(model::quant_method_name(fmt)
           << " experts " << experts << " rows " << rows << " m " << m << " k " << k);
      std::vector<int32_t> offsets(size_t(experts) + 1, 0);
      std::uniform_int_distribution<int32_t> pick(0, experts - 1);
      for (int i = 0; i < rows; ++i) ++offsets[size_t(pick(rng)) + 1];
      std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
      const auto x = round_as(randn(size_t(rows) * k, rng), t);
      const auto wts = make_weights(fmt, t, experts, 2 * m, k, 0.1f, rng);
      const auto& w = wts.ref;
      auto dx = upload_as(x, t), doff = device_buffer::from(offsets);
      auto gu = poisoned(size_t(rows) * 2 * m, elem::f32);
      cu::gemv_args g;
      g.x = dx.get();
      wts.set(g);
      g.t = t;
      g.offsets = experts > 1 ? doff.as<int32_t>() : nullptr;
      g.rows = size_t(rows);
      g.experts = g.grid_experts = size_t(experts);
      g.y = gu.as<float>();
      g.n = size_t(2 * m);
      g.k = size_t(k);
      REQUIRE(cu::grouped_mma_swiglu_ok(g));
      // CPU twin: each expert's rows through cpu::linear, then cpu::swiglu.
      std::vector<float> ref_gu(size_t(rows) * 2 * m), want(size_t(rows) * m);
      for (int e = 0; e < experts; ++e) {
        const size_t b = size_t(offsets[size_t(e)]), c = size_t(offsets[size_t(e) + 1]) - b;
        if (c > 0)
          cpu::linear(x.data() + b * k, w.data() + size_t(e) * 2 * m * k, nullptr,
                      ref_gu.data() + b * 2 * m, c, size_t(2 * m), size_t(k));
      }
      cpu::swiglu(ref_gu.data(), want.data(), size_t(rows), size_t(m));
      for (size_t most : {size_t{16}, size_t{32}, size_t(rows)}) {
        INFO("max_rows " << most);
        g.max_rows = most;
        auto two = poisoned(size_t(rows) * m, t), one = poisoned(size_t(rows) * m, t);
        cu::grouped_mma(g, nullptr);
        cu::swiglu(gu.as<float>(), size_t(rows), size_t(m), two.get(), t, nullptr);
        cu::grouped_mma_swiglu(g, one.get(), nullptr);
        const auto a = one.to_vector<uint16_t>(size_t(rows) * m);
        CHECK(a == two.to_vector<uint16_t>(size_t(rows) * m));
        check_close(download_as(one, t, want.size()), want, 1e-2, 1e-2 * std::sqrt(double(k)));
      }
    }
}
