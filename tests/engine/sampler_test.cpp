// sampler transforms against distributions computed by hand on tiny vocabularies, with
// HF generate / OpenAI semantics; seeded draws; sampling_params validation.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "engine/sampling_params.h"

using namespace conclave::engine;

namespace {

using tokens = std::vector<int32_t>;

std::vector<double> dist(const sampling_params& p, const std::vector<float>& logits,
                         const tokens& prompt = {}, const tokens& output = {}) {
  const sampler s(p);
  return s.distribution(logits, prompt, output);
}

/// softmax of x, by hand.
std::vector<double> softmax_ref(const std::vector<double>& x) {
  double sum = 0.0;
  std::vector<double> p(x.size());
  for (size_t i = 0; i < x.size(); ++i) sum += p[i] = std::exp(x[i]);
  for (double& v : p) v /= sum;
  return p;
}

/// Removed tokens (want == 0) must be exactly 0, the rest close to the expectation.
void check_dist(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("token " << i);
    if (want[i] == 0.0) {
      CHECK(got[i] == 0.0);
    } else {
      CHECK(got[i] == Approx(want[i]).margin(1e-6));
    }
  }
}

/// Logits whose softmax is exactly (up to float rounding) the given probabilities.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

const std::vector<double> known = {0.5, 0.3, 0.15, 0.05};

}  // namespace

TEST_CASE("greedy is one-hot at the argmax, lowest index on ties", "[sampler]") {
  sampling_params p;
  p.temperature = 0.0f;
  REQUIRE(p.greedy());
  check_dist(dist(p, {1.0f, 3.0f, 3.0f, 2.0f}), {0, 1, 0, 0});
  check_dist(dist(p, {-1.0f, -2.0f, 0.5f, 0.5f, 0.5f}), {0, 0, 1, 0, 0});
  CHECK(argmax(std::vector<float>{2.0f, 2.0f}) == 0);

  sampler s(p);
  const std::vector<float> l = {0.0f, 5.0f, 5.0f, 1.0f};
  for (int i = 0; i < 5; ++i) CHECK(s.sample(l, {}, {}) == 1);

  SECTION("warpers do not apply to greedy") {
    p.top_k = 1;
    p.top_p = 0.1f;
    p.min_p = 0.9f;
    std::vector<float> x = {1.0f, 3.0f, 2.0f};
    sampler(p).transform(x, {}, {});
    CHECK(x == std::vector<float>{1.0f, 3.0f, 2.0f});
  }
}

TEST_CASE("penalties still apply in greedy and can move the argmax", "[sampler]") {
  sampling_params p;
  p.temperature = 0.0f;
  const std::vector<float> l = {1.0f, 3.0f, 2.5f, 0.0f};
  check_dist(dist(p, l, {1}), {0, 1, 0, 0});
  p.repetition_penalty = 2.0f;  // token 1: 3 / 2 = 1.5 < 2.5
  check_dist(dist(p, l, {1}), {0, 0, 1, 0});
  sampler s(p);
  CHECK(s.sample(l, tokens{1}, {}) == 2);

  sampling_params f;
  f.temperature = 0.0f;
  f.frequency_penalty = 0.4f;  // token 2 twice in the output: 2.5 - 0.8 = 1.7 < 2 (token 3)
  check_dist(dist(f, {1.0f, 0.0f, 2.5f, 2.0f}, {}, {2, 2}), {0, 0, 0, 1});
}

TEST_CASE("temperature divides logits before the softmax", "[sampler]") {
  const std::vector<float> l = {1.0f, 2.0f, 0.5f, -1.0f, 0.0f};
  for (float t : {0.25f, 0.5f, 1.0f, 2.0f, 10.0f}) {
    INFO("T = " << t);
    sampling_params p;
    p.temperature = t;
    std::vector<double> scaled;
    for (float x : l) scaled.push_back(static_cast<double>(x) / static_cast<double>(t));
    check_dist(dist(p, l), softmax_ref(scaled));
  }
  // Hand-computed: softmax({1, 2, 0.5, -1, 0} / 0.5) = exp({2, 4, 1, -2, 0}) / sum.
  sampling_params p;
  p.temperature = 0.5f;
  const double sum = std::exp(2.0) + std::exp(4.0) + std::exp(1.0) + std::exp(-2.0) + 1.0;
  CHECK(dist(p, l)[1] == Approx(std::exp(4.0) / sum));
  CHECK(dist(p, l)[1] == Approx(0.8292).margin(1e-4));
}

TEST_CASE("top_k keeps the k largest, ties at the k-th value included", "[sampler]") {
  sampling_params p;
  const double e4 = std::exp(4.0), e3 = std::exp(3.0), e2 = std::exp(2.0);
  p.top_k = 2;
  check_dist(dist(p, {1.0f, 4.0f, 2.0f, 3.0f, 0.0f}), {0, e4 / (e4 + e3), 0, e3 / (e4 + e3), 0});
  p.top_k = 1;
  check_dist(dist(p, {1.0f, 4.0f, 2.0f, 3.0f, 0.0f}), {0, 1, 0, 0, 0});

  SECTION("ties at the k-th largest are all kept") {
    p.top_k = 2;  // k-th largest is 2, shared by tokens 2 and 3
    const double s = e3 + 2 * e2;
    check_dist(dist(p, {1.0f, 3.0f, 2.0f, 2.0f, 0.0f}), {0, e3 / s, e2 / s, e2 / s, 0});
  }
  SECTION("k >= vocabulary size changes nothing") {
    p.top_k = 5;
    const std::vector<float> l = {1.0f, 4.0f, 2.0f, 3.0f, 0.0f};
    check_dist(dist(p, l), softmax_ref({1, 4, 2, 3, 0}));
    p.top_k = 50;
    check_dist(dist(p, l), softmax_ref({1, 4, 2, 3, 0}));
  }
  SECTION("removed tokens become -inf") {
    p.top_k = 2;
    std::vector<float> x = {1.0f, 4.0f, 2.0f, 3.0f, 0.0f};
    sampler(p).transform(x, {}, {});
    const float ninf = -std::numeric_limits<float>::infinity();
    CHECK(x == std::vector<float>{ninf, 4.0f, ninf, 3.0f, ninf});
  }
}

TEST_CASE("top_p removes the low tail whose cumulative probability <= 1 - top_p", "[sampler]") {
  sampling_params p;
  const auto l = logits_of(known);  // 0.5, 0.3, 0.15, 0.05
  check_dist(dist(p, l), known);
  // Ascending cumulative sums: 0.05, 0.20, 0.50, 1.00.
  p.top_p = 0.9f;  // drop cum <= 0.1: token 3
  check_dist(dist(p, l), {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0});
  p.top_p = 0.8f;  // boundary: 0.5 + 0.3 == 0.8 is reached with two tokens
  const auto at_08 = dist(p, l);
  CHECK(at_08[0] > 0.0);
  CHECK(at_08[1] > 0.0);
  CHECK(at_08[3] == 0.0);
  p.top_p = 0.75f;  // drop cum <= 0.25: tokens 3, 2
  check_dist(dist(p, l), {0.5 / 0.8, 0.3 / 0.8, 0, 0});
  p.top_p = 0.6f;  // drop cum <= 0.4: tokens 3, 2
  check_dist(dist(p, l), {0.625, 0.375, 0, 0});
  p.top_p = 0.45f;  // drop cum <= 0.55: tokens 3, 2, 1
  check_dist(dist(p, l), {1, 0, 0, 0});
  p.top_p = 0.01f;  // everything but the most likely token goes
  check_dist(dist(p, l), {1, 0, 0, 0});

  SECTION("the most likely token is always kept, even above top_p") {
    p.top_p = 0.01f;
    check_dist(dist(p, logits_of({0.2, 0.3, 0.25, 0.25})), {0, 1, 0, 0});
  }
  SECTION("a cumulative sum equal to 1 - top_p is removed (<=, exact on uniform logits)") {
    // Four equal logits: probabilities exactly 0.25, cumulative 0.25, 0.5, 0.75.
    const std::vector<float> u = {0.0f, 0.0f, 0.0f, 0.0f};
    p.top_p = 0.5f;  // cum 0.25 and 0.5 are <= 0.5: two tokens removed
    auto d = dist(p, u);
    CHECK(std::count(d.begin(), d.end(), 0.0) == 2);
    CHECK(std::count(d.begin(), d.end(), 0.5) == 2);
    p.top_p = 0.75f;  // cum 0.25 <= 0.25: one token removed
    d = dist(p, u);
    CHECK(std::count(d.begin(), d.end(), 0.0) == 1);
    for (double v : d) {
      if (v != 0.0) CHECK(v == Approx(1.0 / 3.0));
    }
  }
}

TEST_CASE("min_p removes tokens below min_p times the top probability", "[sampler]") {
  sampling_params p;
  const auto l = logits_of(known);  // 0.5, 0.3, 0.15, 0.05
  p.min_p = 0.2f;                   // threshold 0.1
  check_dist(dist(p, l), {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0});
  p.min_p = 0.5f;  // threshold 0.25
  check_dist(dist(p, l), {0.625, 0.375, 0, 0});
  p.min_p = 0.9f;  // threshold 0.45
  check_dist(dist(p, l), {1, 0, 0, 0});
  p.min_p = 1.0f;  // only tokens tied with the top survive
  check_dist(dist(p, {2.0f, 1.0f, 2.0f}), {0.5, 0, 0.5});
  p.min_p = 0.05f;  // threshold 0.025: nothing removed
  check_dist(dist(p, l), known);
}

TEST_CASE("repetition_penalty divides positive, multiplies negative, once per token", "[sampler]") {
  sampling_params p;
  p.repetition_penalty = 2.0f;
  std::vector<float> x = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f};
  // Token 0 appears in prompt and output, token 1 twice in the prompt, token 2 in the output.
  sampler(p).transform(x, tokens{0, 1, 1}, tokens{0, 2, 0});
  CHECK(x == std::vector<float>{1.0f, -2.0f, 0.25f, 3.0f, -2.0f});

  p.repetition_penalty = 0.5f;  // < 1 rewards repeats
  x = {2.0f, -1.0f, 0.0f};
  sampler(p).transform(x, tokens{0, 1, 2}, {});
  CHECK(x == std::vector<float>{4.0f, -0.5f, 0.0f});

  SECTION("the distribution follows the penalised logits") {
    p.repetition_penalty = 1.5f;
    check_dist(dist(p, {3.0f, 1.0f, -1.0f}, {0, 2}), softmax_ref({2.0, 1.0, -1.5}));
  }
  SECTION("out-of-range token ids are ignored") {
    p.repetition_penalty = 2.0f;
    x = {2.0f, 2.0f};
    sampler(p).transform(x, tokens{-1, 7}, tokens{1});
    CHECK(x == std::vector<float>{2.0f, 1.0f});
  }
}

TEST_CASE("presence and frequency penalties count output tokens only", "[sampler]") {
  sampling_params p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  std::vector<float> x = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  // Prompt tokens 0 and 3 are not penalised; output: token 1 twice, token 2 once.
  sampler(p).transform(x, tokens{0, 3, 3}, tokens{1, 1, 2});
  CHECK(x == std::vector<float>{1.0f, 0.0f, 0.25f, 1.0f, 1.0f});

  p.presence_penalty = 0.0f;
  p.frequency_penalty = 1.0f;
  x = {0.0f, 0.0f, 0.0f};
  sampler(p).transform(x, {}, tokens{2, 2, 2, 0});
  CHECK(x == std::vector<float>{-1.0f, 0.0f, -3.0f});

  p.presence_penalty = -1.0f;  // negative values encourage repeats
  p.frequency_penalty = 0.0f;
  x = {0.0f, 0.0f};
  sampler(p).transform(x, tokens{0}, tokens{1, 1});
  CHECK(x == std::vector<float>{0.0f, 1.0f});
  check_dist(dist(p, {0.0f, 0.0f}, {0}, {1, 1}), softmax_ref({0.0, 1.0}));
}

TEST_CASE("transforms run in HF order: repetition, presence/frequency, T, top_k, top_p, min_p",
          "[sampler]") {
  sampling_params p;
  p.repetition_penalty = 2.0f;
  p.presence_penalty = 1.0f;
  p.temperature = 0.5f;
  p.top_k = 3;
  p.top_p = 0.9f;
  p.min_p = 0.1f;
  const std::vector<float> l = {3.0f, 2.0f, 1.0f, 0.5f, -1.0f};
  // repetition (prompt {4}, output {0}): {1.5, 2, 1, 0.5, -2}
  // presence (output {0}):                {0.5, 2, 1, 0.5, -2}  (the other order: token 0 = 1)
  // temperature 0.5:                      {1, 4, 2, 1, -4}
  // top_k 3 (k-th = 1, tied):             {1, 4, 2, 1, -inf}
  //   probabilities e^{1,4,2,1} / (2e + e^4 + e^2) = 0.0403, 0.8098, 0.1096, 0.0403
  // top_p 0.9: ascending cum 0.0403, 0.0806 <= 0.1 removed, 0.190 kept: {-, 4, 2, -, -}
  // min_p 0.1: 0.1192 >= 0.1 * 0.8808 kept.
  const double e4 = std::exp(4.0), e2 = std::exp(2.0);
  check_dist(dist(p, l, {4}, {0}), {0, e4 / (e4 + e2), e2 / (e4 + e2), 0, 0});

  std::vector<float> x = l;
  sampler(p).transform(x, tokens{4}, tokens{0});
  CHECK(x[1] == 4.0f);
  CHECK(x[2] == 2.0f);
  CHECK(std::isinf(x[0]));
  CHECK(std::isinf(x[3]));
  CHECK(std::isinf(x[4]));

  SECTION("top_p and min_p combine") {
    // top_p 0.9 keeps 0.5, 0.3, 0.15; min_p 0.35 then removes 0.15 (< 0.35 * 0.5).
    sampling_params q;
    q.top_p = 0.9f;
    q.min_p = 0.35f;
    check_dist(dist(q, logits_of(known)), {0.625, 0.375, 0, 0});
  }
}

TEST_CASE("seeded sampling is reproducible and follows the distribution", "[sampler]") {
  const std::vector<float> flat = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  auto draws = [&](uint64_t seed, int n) {
    sampling_params p;
    p.seed = seed;
    sampler s(p);
    std::vector<int32_t> out;
    // Each token is drawn at its output position, as generation does.
    for (int i = 0; i < n; ++i) out.push_back(s.sample(flat, {}, out));
    return out;
  };
  const auto a = draws(1234, 200), b = draws(1234, 200), c = draws(1235, 200);
  CHECK(a == b);
  CHECK(a != c);
  for (int32_t t : a) {
    CHECK(t >= 0);
    CHECK(t < 6);
  }

  SECTION("empirical frequencies match 0.5 / 0.3 / 0.2") {
    sampling_params p;
    p.seed = 7;
    sampler s(p);
    const auto l = logits_of({0.5, 0.3, 0.2});
    const int n = 20000;
    std::vector<int> counts(3, 0);
    tokens output;
    for (int i = 0; i < n; ++i) {
      const int32_t t = s.sample(l, {}, output);
      output.push_back(t);
      REQUIRE(t >= 0);
      REQUIRE(t < 3);
      ++counts[static_cast<size_t>(t)];
    }
    CHECK(counts[0] / double(n) == Approx(0.5).margin(0.02));
    CHECK(counts[1] / double(n) == Approx(0.3).margin(0.02));
    CHECK(counts[2] / double(n) == Approx(0.2).margin(0.02));
  }
  SECTION("removed tokens are never drawn") {
    sampling_params p;
    p.seed = 99;
    p.top_k = 2;
    sampler s(p);
    const std::vector<float> l = {1.0f, 0.9f, 0.8f, 1.1f};
    std::vector<int> counts(4, 0);
    tokens output;
    for (int i = 0; i < 2000; ++i) {
      output.push_back(s.sample(l, {}, output));
      ++counts[static_cast<size_t>(output.back())];
    }
    CHECK(counts[1] == 0);
    CHECK(counts[2] == 0);
    CHECK(counts[0] > 0);
    CHECK(counts[3] > 0);
  }
}

TEST_CASE("sampling_params::validate names invalid fields", "[sampler]") {
  CHECK(sampling_params{}.validate().empty());
  auto bad = [](auto set) {
    sampling_params p;
    set(p);
    return p.validate();
  };
  CHECK_FALSE(bad([](sampling_params& p) { p.temperature = -0.1f; }).empty());
  CHECK_FALSE(bad([](sampling_params& p) { p.top_p = 0.0f; }).empty());
  CHECK_FALSE(bad([](sampling_params& p) { p.top_p = 1.01f; }).empty());
  CHECK_FALSE(bad([](sampling_params& p) { p.min_p = 1.5f; }).empty());
  CHECK_FALSE(bad([](sampling_params& p) { p.top_k = -1; }).empty());
  CHECK_FALSE(bad([](sampling_params& p) { p.repetition_penalty = 0.0f; }).empty());
  CHECK_FALSE(bad([](sampling_params& p) { p.repetition_penalty = -1.0f; }).empty());
  CHECK_FALSE(bad([](sampling_params& p) { p.max_tokens = 0; }).empty());
  CHECK_FALSE(bad([](sampling_params& p) { p.max_tokens = -3; }).empty());
  CHECK_FALSE(bad([](sampling_params& p) { p.presence_penalty = 2.5f; }).empty());
  CHECK_FALSE(bad([](sampling_params& p) { p.frequency_penalty = -2.5f; }).empty());
  CHECK(bad([](sampling_params& p) { p.temperature = -1.0f; }).find("temperature") !=
        std::string::npos);
  CHECK(bad([](sampling_params& p) { p.top_p = 0.0f; }).find("top_p") != std::string::npos);
  // Edges that are valid.
  CHECK(bad([](sampling_params& p) {
          p.temperature = 0.0f;
          p.top_p = 1.0f;
          p.min_p = 1.0f;
          p.top_k = 0;
          p.presence_penalty = 2.0f;
          p.frequency_penalty = -2.0f;
          p.max_tokens = 1;
        }).empty());
}

TEST_CASE("the draw of output token n depends only on the seed and n", "[sampler]") {
  sampling_params p;
  p.temperature = 0.8f;
  p.top_k = 3;
  p.seed = 7;
  const std::vector<float> logits = {0.1f, 2.0f, 1.5f, -0.3f, 1.9f};
  sampler a(p);
  const sampler b(p);
  tokens output;
  std::vector<double> seen;
  for (int i = 0; i < 50; ++i) {
    const double u = b.draw(output.size());
    CHECK(u >= 0.0);
    CHECK(u < 1.0);
    CHECK(u == a.draw(output.size()));  // whatever was drawn before
    CHECK(a.sample(logits, {}, output) == b.sample(logits, {}, output, u));
    seen.push_back(u);
    output.push_back(1);
  }
  std::sort(seen.begin(), seen.end());
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());  // 50 distinct draws
  sampling_params other = p;
  other.seed = 8;
  CHECK(sampler(other).draw(0) != b.draw(0));
  // u walks the kept tokens in id order: 0 gives the first kept, just below 1 the last.
  CHECK(b.sample(logits, {}, {}, 0.0) == 1);
  CHECK(b.sample(logits, {}, {}, std::nextafter(1.0, 0.0)) == 4);
}

TEST_CASE("penalty entries: distinct tokens once, output counts, ids past the vocab dropped",
          "[sampler]") {
  sampling_params p;
  p.repetition_penalty = 1.5f;
  p.presence_penalty = 0.25f;
  p.frequency_penalty = 0.5f;
  const sampler s(p);
  std::vector<conclave::gpu::penalty_entry> e;
  s.penalty_entries(tokens{3, 1, 3, 9}, tokens{1, 4, 4, 4, 12}, 10, e);
  REQUIRE(e.size() == 4);  // 3, 1, 9, 4 (12 is past the vocabulary)
  CHECK(e[0].token == 3);
  CHECK(e[0].repeated == 1);
  CHECK(e[0].subtract == 0.0f);
  CHECK(e[1].token == 1);
  CHECK(e[1].subtract == 0.25f + 0.5f * 1);
  CHECK(e[2].token == 9);
  CHECK(e[3].token == 4);
  CHECK(e[3].subtract == 0.25f + 0.5f * 3);
  sampling_params none;
  sampler(none).penalty_entries(tokens{1, 2}, tokens{3}, 10, e);
  CHECK(e.empty());
  sampling_params additive;
  additive.presence_penalty = 1.0f;
  sampler(additive).penalty_entries(tokens{1, 2}, tokens{3}, 10, e);
  REQUIRE(e.size() == 1);  // the prompt is not penalised without a repetition penalty
  CHECK(e[0].token == 3);
  CHECK(e[0].repeated == 0);
}

TEST_CASE("sample_spec (the device sampler's twin) picks what the request's sampler picks",
          "[sampler]") {
  std::mt19937_64 rng(1234);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_int_distribution<int32_t> tok(0, 299);
  for (int trial = 0; trial < 300; ++trial) {
    sampling_params p;
    p.temperature = trial % 5 == 0 ? 0.0f : 0.3f + 0.1f * static_cast<float>(trial % 13);
    p.top_k = trial % 3 == 0 ? 0 : 1 + trial % 40;
    p.top_p = trial % 4 == 0 ? 1.0f : 0.5f + 0.05f * static_cast<float>(trial % 9);
    p.min_p = trial % 6 == 0 ? 0.05f : 0.0f;
    p.repetition_penalty = trial % 2 == 0 ? 1.0f : 1.2f;
    p.presence_penalty = trial % 7 == 0 ? 0.4f : 0.0f;
    p.frequency_penalty = trial % 8 == 0 ? -0.3f : 0.0f;
    p.seed = static_cast<uint64_t>(trial);
    std::vector<float> logits(300);
    for (auto& l : logits) l = normal(rng);
    tokens prompt(20), output(static_cast<size_t>(trial % 30));
    for (auto& t : prompt) t = tok(rng);
    for (auto& t : output) t = tok(rng);
    sampler s(p);
    const size_t limit = trial % 2 == 0 ? 300 : 250;
    const double u = s.draw(output.size());
    std::vector<conclave::gpu::penalty_entry> entries;
    const auto spec = s.device_spec(prompt, output, limit, u, entries);
    INFO("trial " << trial);
    CHECK(sample_spec(logits, spec) ==
          s.sample(std::span<const float>(logits).first(limit), prompt, output, u));
  }
}

TEST_CASE("logit_bias: +100 forces a token, -100 bans it, host and device specs alike",
          "[sampler][logit_bias]") {
  std::vector<float> logits(64, 0.0f);
  logits[3] = 8.0f;  // the favourite without a bias
  for (uint64_t seed : {1, 2, 3}) {
    sampling_params p;
    p.temperature = 1.0f;
    p.seed = seed;
    p.logit_bias = {{17, 100.0f}};
    sampler s(p);
    const std::vector<int32_t> prompt{1, 2}, output{5};
    CHECK(s.sample(logits, prompt, output) == 17);
    std::vector<conclave::gpu::penalty_entry> entries;
    const double u = s.draw(output.size());
    const auto spec = s.device_spec(prompt, output, logits.size(), u, entries);
    CHECK(sample_spec(logits, spec) == s.sample(logits, prompt, output, u));
    p.logit_bias = {{3, -100.0f}};
    p.temperature = 0.0f;  // greedy: the banned favourite gives way to the next
    logits[9] = 4.0f;
    CHECK(sampler(p).sample(logits, prompt, output) == 9);
    logits[9] = 0.0f;
  }
  sampling_params bad;
  bad.logit_bias = {{1, 101.0f}};
  CHECK(bad.validate() == "logit_bias values must be in [-100, 100]");
  // With a repetition penalty the bias adds after it, for a repeated token too.
  sampling_params rp;
  rp.repetition_penalty = 2.0f;
  rp.logit_bias = {{1, 1.5f}, {40, -2.0f}};
  std::vector<conclave::gpu::penalty_entry> e;
  sampler(rp).penalty_entries(std::vector<int32_t>{1, 2}, {}, 64, e);
  REQUIRE(e.size() == 3);
  CHECK(e[0].token == 1);
  CHECK(e[0].repeated == 1);
  CHECK(e[0].subtract == -1.5f);
  CHECK(e[2].token == 40);
  CHECK(e[2].repeated == 0);
  CHECK(e[2].subtract == 2.0f);
}
