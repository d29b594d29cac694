#include "engine/logprobs.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>

using namespace conclave::engine;

TEST_CASE("logprobs are log-softmax of the raw logits", "[logprobs]") {
  const std::vector<float> logits{1.0f, 3.0f, 2.0f, 3.0f};
  const double z = std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0);
  const auto r = compute_logprobs(logits, 2, 3);
  CHECK(r.logprob == Approx(2.0 - std::log(z)).epsilon(1e-6));
  REQUIRE(r.top.size() == 3);
  // Best first; the tie between ids 1 and 3 goes to the lower id.
  CHECK(r.top[0].first == 1);
  CHECK(r.top[1].first == 3);
  CHECK(r.top[2].first == 2);
  CHECK(r.top[0].second == Approx(3.0 - std::log(z)).epsilon(1e-6));
  CHECK(r.top[2].second == r.logprob);
  CHECK(compute_logprobs(logits, 0, 0).top.empty());
  CHECK(compute_logprobs(logits, 0, 10).top.size() == 4);  // at most the vocabulary
  CHECK_THROWS_AS(compute_logprobs(logits, 4, 1), std::invalid_argument);
}

TEST_CASE("logprobs of a large random row sum to one and stay finite", "[logprobs]") {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 8.0f);
  std::vector<float> logits(151936);
  for (auto& v : logits) v = d(rng);
  logits[5] = -std::numeric_limits<float>::infinity();  // a token ruled out
  // logprob(c) = logit[c] - logsumexp, so one call gives the normaliser for all.
  const double lse = static_cast<double>(logits[9]) - compute_logprobs(logits, 9, 0).logprob;
  double total = 0;
  for (float v : logits) total += std::exp(static_cast<double>(v) - lse);
  CHECK(total == Approx(1.0).epsilon(1e-5));
  const auto r = compute_logprobs(logits, 5, 20);
  CHECK(std::isinf(r.logprob));
  REQUIRE(r.top.size() == 20);
  for (const auto& [id, lp] : r.top) {
    CHECK(std::isfinite(lp));
    CHECK(lp <= 0.0f);
    CHECK(lp == Approx(static_cast<double>(logits[static_cast<size_t>(id)]) - lse).margin(1e-4));
  }
}
