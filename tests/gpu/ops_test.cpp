// CPU ops against direct double-precision formulas (the CUDA twins are compared to
// these same ops in tests/gpu/cuda_*).
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "gpu/cpu/ops.h"
#include "gpu/cpu/thread_pool.h"
#include "gpu/host_ops.h"

using namespace conclave::gpu::cpu;

namespace {
std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
}  // namespace

TEST_CASE("rms_norm matches the formula", "[ops]") {
  const size_t rows = 3, dim = 37;
  auto x = randn(rows * dim, 1), w = randn(dim, 2);
  std::vector<float> out(rows * dim);
  rms_norm(x.data(), w.data(), out.data(), rows, dim, 1e-6f);
  for (size_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (size_t i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-6);
    for (size_t i = 0; i < dim; ++i)
      CHECK(out[r * dim + i] == Approx(w[i] * x[r * dim + i] * inv).epsilon(1e-5));
  }
}

TEST_CASE("linear computes x W^T + b for gemv and gemm shapes", "[ops]") {
  for (size_t m : {1, 5}) {
    const size_t n = 7, k = 13;
    auto x = randn(m * k, 3), w = randn(n * k, 4), b = randn(n, 5);
    std::vector<float> y(m * n);
    linear(x.data(), w.data(), b.data(), y.data(), m, n, k);
    for (size_t r = 0; r < m; ++r) {
      for (size_t j = 0; j < n; ++j) {
        double acc = b[j];
        for (size_t i = 0; i < k; ++i) acc += double(x[r * k + i]) * w[j * k + i];
        CHECK(y[r * n + j] == Approx(acc).margin(1e-4));
      }
    }
  }
}

TEST_CASE("rope rotates pairs (i, i + d/2) by position * inv_freq", "[ops]") {
  const size_t hd = 8, heads = 2;
  auto inv = conclave::gpu::rope_inv_freq(hd, 10000.0);
  REQUIRE(inv.size() == 4);
  CHECK(inv[0] == 1.0f);
  CHECK(inv[1] == Approx(std::pow(10000.0, -0.25)));
  auto x = randn(heads * hd, 6);
  auto y = x;
  const int32_t pos = 7;
  apply_rope(y.data(), 1, heads * hd, heads, hd, &pos, inv.data());
  for (size_t h = 0; h < heads; ++h) {
    for (size_t i = 0; i < hd / 2; ++i) {
      const double a = x[h * hd + i], b = x[h * hd + i + hd / 2], th = pos * double(inv[i]);
      CHECK(y[h * hd + i] == Approx(a * std::cos(th) - b * std::sin(th)).margin(1e-5));
      CHECK(y[h * hd + i + hd / 2] == Approx(b * std::cos(th) + a * std::sin(th)).margin(1e-5));
    }
  }
  // Position 0 is the identity.
  auto z = x;
  const int32_t zero = 0;
  apply_rope(z.data(), 1, heads * hd, heads, hd, &zero, inv.data());
  CHECK(z == x);
}

TEST_CASE("router_topk: softmax, top-k, optional renormalisation", "[ops]") {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 0.5f};
  int32_t ids[2];
  float w[2];
  router_topk(logits.data(), 1, 4, 2, false, ids, w);
  double z = 0;
  for (float l : logits) z += std::exp(double(l));
  CHECK(ids[0] == 1);
  CHECK(ids[1] == 2);
  CHECK(w[0] == Approx(std::exp(3.0) / z));
  CHECK(w[1] == Approx(std::exp(2.0) / z));
  router_topk(logits.data(), 1, 4, 2, true, ids, w);
  CHECK(w[0] + w[1] == Approx(1.0));
  CHECK(w[0] / w[1] == Approx(std::exp(1.0)));
}

TEST_CASE("swiglu is silu(gate) * up", "[ops]") {
  const std::vector<float> gu = {0.5f, -1.0f, 2.0f, 3.0f};  // one row, m = 2
  std::vector<float> out(2);
  swiglu(gu.data(), out.data(), 1, 2);
  CHECK(out[0] == Approx(0.5 / (1 + std::exp(-0.5)) * 2.0));
  CHECK(out[1] == Approx(-1.0 / (1 + std::exp(1.0)) * 3.0));
}

TEST_CASE("paged attention equals dense causal attention whatever the block layout", "[ops]") {
  const int32_t bs = 4, kvh = 2, hd = 8, heads = 4, n = 11;
  const size_t width = size_t(kvh) * hd;
  std::vector<float> kc(16 * bs * width), vc(16 * bs * width);
  paged_kv kv{kc.data(), vc.data(), bs, kvh, hd};
  auto q = randn(n * heads * hd, 7), k = randn(n * width, 8), v = randn(n * width, 9);
  const std::vector<int32_t> table = {9, 2, 14};  // scattered blocks
  attention_seq s{0, n, 0, table};
  kv_cache_write(kv, {&s, 1}, k.data(), v.data(), width);
  std::vector<float> out(n * heads * hd);
  thread_pool pool(3);
  paged_attention(kv, {&s, 1}, q.data(), heads * hd, heads, out.data(), &pool);
  const double scale = 1.0 / std::sqrt(double(hd));
  for (int32_t t = 0; t < n; ++t) {
    for (int32_t h = 0; h < heads; ++h) {
      const int32_t g = h / (heads / kvh);
      std::vector<double> p(t + 1);
      double mx = -1e30, sum = 0;
      for (int32_t j = 0; j <= t; ++j) {
        double d = 0;
        for (int32_t i = 0; i < hd; ++i)
          d += double(q[(t * heads + h) * hd + i]) * k[j * width + g * hd + i];
        p[j] = d * scale;
        mx = std::max(mx, p[j]);
      }
      for (auto& x : p) sum += (x = std::exp(x - mx));
      for (int32_t i = 0; i < hd; ++i) {
        double acc = 0;
        for (int32_t j = 0; j <= t; ++j) acc += p[j] / sum * v[j * width + g * hd + i];
        CHECK(out[(t * heads + h) * hd + i] == Approx(acc).margin(1e-5));
      }
    }
  }
}

TEST_CASE("paged attention with a sliding window equals a naive windowed reference",
          "[ops][window]") {
  // Window 6 over blocks of 4 (not a multiple), a prompt of 23 > 6, a sequence resumed at
  // position 9 (chunked prefill) and one decoding at position 22 past the window. Blocks
  // wholly before the window of a sequence's first query point at a block of NaN: a
  // kernel that reads them fails every check.
  const int32_t bs = 4, kvh = 2, hd = 8, heads = 4, n = 23, win = 6, poison = 15;
  const size_t width = size_t(kvh) * hd;
  std::vector<float> kc(16 * bs * width), vc(16 * bs * width);
  paged_kv kv{kc.data(), vc.data(), bs, kvh, hd};
  auto q = randn(n * heads * hd, 17), k = randn(n * width, 18), v = randn(n * width, 19);
  const std::vector<int32_t> table = {9, 2, 14, 0, 7, 11};  // 24 positions
  attention_seq all{0, n, 0, table};
  kv_cache_write(kv, {&all, 1}, k.data(), v.data(), width);
  std::fill(kc.begin() + poison * bs * width, kc.begin() + (poison + 1) * bs * width, NAN);
  std::fill(vc.begin() + poison * bs * width, vc.begin() + (poison + 1) * bs * width, NAN);
  kv.window = win;

  const auto dropped = [&](int32_t first_pos) {
    std::vector<int32_t> t = table;
    for (size_t b = 0; b < t.size(); ++b)
      if (int32_t(b + 1) * bs <= first_pos - win + 1) t[b] = poison;
    return t;
  };
  for (const int32_t first : {0, 9, 22}) {
    INFO("queries from position " << first);
    const std::vector<int32_t> t = dropped(first);
    if (first == 22) CHECK(t[3] == poison);  // blocks 0..3 end before 22 - 6 + 1
    attention_seq s{0, n - first, first, t};
    std::vector<float> out(size_t(n - first) * heads * hd);
    thread_pool pool(3);
    paged_attention(kv, {&s, 1}, q.data() + size_t(first) * heads * hd, heads * hd, heads,
                    out.data(), &pool);
    const double scale = 1.0 / std::sqrt(double(hd));
    for (int32_t p = first; p < n; ++p) {
      for (int32_t h = 0; h < heads; ++h) {
        const int32_t g = h / (heads / kvh);
        std::vector<double> w(n, 0.0);
        double mx = -1e30, sum = 0;
        for (int32_t j = 0; j <= p; ++j) {
          if (p - j >= win) continue;  // transformers: kv_idx > q_idx - sliding_window
          double d = 0;
          for (int32_t i = 0; i < hd; ++i)
            d += double(q[(p * heads + h) * hd + i]) * k[j * width + g * hd + i];
          w[j] = d * scale;
          mx = std::max(mx, w[j]);
        }
        for (int32_t j = 0; j <= p; ++j) sum += (w[j] = p - j < win ? std::exp(w[j] - mx) : 0.0);
        for (int32_t i = 0; i < hd; ++i) {
          double acc = 0;
          for (int32_t j = 0; j <= p; ++j) acc += w[j] / sum * v[j * width + g * hd + i];
          CHECK(out[((p - first) * heads + h) * hd + i] == Approx(acc).margin(1e-5));
        }
      }
    }
  }
  // The window matters: without it the last row differs.
  kv.window = 0;
  attention_seq s{0, 1, n - 1, table};
  std::vector<float> full(heads * hd), windowed(heads * hd);
  paged_attention(kv, {&s, 1}, q.data() + size_t(n - 1) * heads * hd, heads * hd, heads,
                  full.data(), nullptr);
  kv.window = win;
  paged_attention(kv, {&s, 1}, q.data() + size_t(n - 1) * heads * hd, heads * hd, heads,
                  windowed.data(), nullptr);
  double diff = 0;
  for (size_t i = 0; i < full.size(); ++i)
    diff = std::max(diff, double(std::abs(full[i] - windowed[i])));
  CHECK(diff > 1e-3);
}

TEST_CASE("thread_pool covers every index exactly once and propagates exceptions", "[ops]") {
  thread_pool pool(4);
  std::vector<int> hits(1000, 0);
  pool.parallel_for(hits.size(), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) ++hits[i];
  });
  CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
  CHECK_THROWS_AS(pool.parallel_for(10,
                                    [](size_t b, size_t) {
                                      if (b > 0) throw std::runtime_error("x");
                                    }),
                  std::runtime_error);
  pool.parallel_for(3, [](size_t, size_t) {});  // still usable
}

TEST_CASE("RoPE parameters: default, linear and yarn as transformers computes them",
          "[ops][rope]") {
  conclave::model::model_config c;
  c.head_dim = 64;
  c.rope_theta = 1e6;
  c.max_position_embeddings = 32768;
  const auto plain = conclave::gpu::rope_inv_freq(64, 1e6);
  auto t = conclave::gpu::rope_parameters(c);
  CHECK(t.inv_freq == plain);
  CHECK(t.attention_scaling == 1.0f);

  c.rope.type = conclave::model::rope_scaling_config::kind::linear;
  c.rope.factor = 4.0;
  t = conclave::gpu::rope_parameters(c);
  for (size_t i = 0; i < plain.size(); ++i) CHECK(t.inv_freq[i] == plain[i] / 4.0f);
  CHECK(t.attention_scaling == 1.0f);

  // yarn, Qwen's recipe: factor 4 over a 32768-token original context. The correction
  // range is dims [floor(11.80), ceil(19.83)] = [11, 20]: below it the frequencies stay as
  // they were (extrapolation), above it they are divided by the factor (interpolation),
  // and in between they blend.
  c.rope.type = conclave::model::rope_scaling_config::kind::yarn;
  c.rope.original_max_position_embeddings = 32768;
  t = conclave::gpu::rope_parameters(c);
  REQUIRE(t.inv_freq.size() == 32);
  CHECK(t.attention_scaling == Approx(0.1 * std::log(4.0) + 1.0).epsilon(1e-7));
  for (size_t i = 0; i <= 11; ++i) CHECK(t.inv_freq[i] == plain[i]);
  for (size_t i = 20; i < 32; ++i) {
    const float pos = 1.0f / plain[i];
    CHECK(t.inv_freq[i] == Approx(1.0f / (4.0f * pos)).epsilon(1e-6));
  }
  for (size_t i = 12; i < 20; ++i) {
    CHECK(t.inv_freq[i] < plain[i]);
    CHECK(t.inv_freq[i] > plain[i] / 4.0f);
  }
  // A given attention factor wins; mscale / mscale_all_dim give their ratio.
  c.rope.has_attention_factor = true;
  c.rope.attention_factor = 1.25;
  CHECK(conclave::gpu::rope_parameters(c).attention_scaling == 1.25f);
  c.rope.has_attention_factor = false;
  c.rope.mscale = 1.0;
  c.rope.mscale_all_dim = 0.5;
  CHECK(conclave::gpu::rope_parameters(c).attention_scaling ==
        Approx((0.1 * std::log(4.0) + 1.0) / (0.05 * std::log(4.0) + 1.0)).epsilon(1e-7));
}

TEST_CASE("apply_rope scales cos and sin by the attention factor", "[ops][rope]") {
  std::vector<float> x = {0.5f, -1.0f, 2.0f, 0.25f}, y = x;
  const int32_t pos = 7;
  const float inv[2] = {1.0f, 0.01f};
  conclave::gpu::cpu::apply_rope(x.data(), 1, 4, 1, 4, &pos, inv, 1.0f);
  conclave::gpu::cpu::apply_rope(y.data(), 1, 4, 1, 4, &pos, inv, 2.0f);
  for (size_t i = 0; i < 4; ++i) CHECK(y[i] == Approx(2.0f * x[i]).epsilon(1e-6));
}
