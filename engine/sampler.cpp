// Sampling transforms with HF generate's semantics (see the header for the order).
#include "engine/sampler.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "engine/constrained/token_constraint.h"
#include "engine/logprobs.h"

namespace conclave::engine {
namespace {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

/// softmax in double over finite entries (-inf gives 0).
std::vector<double> softmax_double(std::span<const float> x) {
  std::vector<double> p(x.size());
  const float mx = *std::max_element(x.begin(), x.end());
  double sum = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    p[i] = std::isinf(x[i]) && x[i] < 0 ? 0.0 : std::exp(static_cast<double>(x[i]) - mx);
    sum += p[i];
  }
  for (double& v : p) v /= sum;
  return p;
}

}  // namespace

std::string sampling_params::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    return "temperature must be a number >= 0";
  if (top_k < 0) return "top_k must be >= 0 (0 disables it)";
  if (!(top_p > 0.0f && top_p <= 1.0f)) return "top_p must be in (0, 1]";
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return "min_p must be in [0, 1]";
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty))
    return "repetition_penalty must be > 0";
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    return "presence_penalty must be in [-2, 2]";
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    return "frequency_penalty must be in [-2, 2]";
  if (max_tokens <= 0) return "max_tokens must be >= 1";
  if (logprobs < -1 || logprobs > max_top_logprobs) return "top_logprobs must be in [0, 20]";
  return {};
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

sampler::sampler(const sampling_params& params)
    : params_(params), rng_(params.seed ? *params.seed : std::random_device{}()) {}

void sampler::transform(std::span<float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> output) const {
  const auto& p = params_;
  const size_t vocab = logits.size();
  if (p.constraint) {
    // The sequence's position in the grammar follows from its output so far (a resumed
    // or preempted sequence needs nothing else); the walk costs a few table lookups per
    // output byte.
    constrained::matcher m(p.constraint);
    for (int32_t t : output) m.advance(t);
    m.apply(logits, static_cast<int64_t>(p.max_tokens) - static_cast<int64_t>(output.size()));
  }
  if (p.repetition_penalty != 1.0f) {
    // HF: each distinct token seen in prompt or output, once.
    std::vector<bool> seen(vocab, false);
    auto penalise = [&](int32_t t) {
      if (t < 0 || static_cast<size_t>(t) >= vocab || seen[static_cast<size_t>(t)]) return;
      seen[static_cast<size_t>(t)] = true;
      float& s = logits[static_cast<size_t>(t)];
      s = s < 0 ? s * p.repetition_penalty : s / p.repetition_penalty;
    };
    for (int32_t t : prompt) penalise(t);
    for (int32_t t : output) penalise(t);
  }
  if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    std::unordered_map<int32_t, int32_t> counts;
    for (int32_t t : output) ++counts[t];
    for (auto [t, n] : counts) {
      if (t < 0 || static_cast<size_t>(t) >= vocab) continue;
      logits[static_cast<size_t>(t)] -=
          p.presence_penalty + p.frequency_penalty * static_cast<float>(n);
    }
  }
  if (p.greedy()) return;  // warpers do not apply to greedy search
  if (p.temperature != 1.0f) {
    for (float& s : logits) s /= p.temperature;
  }
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < vocab) {
    scratch_.assign(logits.begin(), logits.end());
    std::nth_element(scratch_.begin(), scratch_.begin() + (p.top_k - 1), scratch_.end(),
                     std::greater<>());
    const float kth = scratch_[static_cast<size_t>(p.top_k - 1)];
    for (float& s : logits) {
      if (s < kth) s = neg_inf;
    }
  }
  if (p.top_p < 1.0f) {
    // HF: sort ascending, drop the prefix whose cumulative probability <= 1 - top_p,
    // always keeping the most likely token.
    std::vector<int32_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return logits[static_cast<size_t>(a)] < logits[static_cast<size_t>(b)];
    });
    const std::vector<double> probs = softmax_double(logits);
    double cum = 0.0;
    for (size_t i = 0; i + 1 < vocab; ++i) {
      cum += probs[static_cast<size_t>(order[i])];
      if (cum <= 1.0 - static_cast<double>(p.top_p)) {
        logits[static_cast<size_t>(order[i])] = neg_inf;
      } else {
        break;
      }
    }
  }
  if (p.min_p > 0.0f) {
    const std::vector<double> probs = softmax_double(logits);
    const double top = *std::max_element(probs.begin(), probs.end());
    const double threshold = static_cast<double>(p.min_p) * top;
    for (size_t i = 0; i < vocab; ++i) {
      if (probs[i] < threshold) logits[i] = neg_inf;
    }
  }
}

std::vector<double> sampler::distribution(std::span<const float> logits,
                                          std::span<const int32_t> prompt,
                                          std::span<const int32_t> output) const {
  std::vector<float> l(logits.begin(), logits.end());
  transform(l, prompt, output);
  if (params_.greedy()) {
    std::vector<double> one_hot(l.size(), 0.0);
    one_hot[static_cast<size_t>(argmax(l))] = 1.0;
    return one_hot;
  }
  return softmax_double(l);
}

int32_t sampler::sample(std::span<const float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> output) {
  std::vector<float> l(logits.begin(), logits.end());
  transform(l, prompt, output);
  if (params_.greedy()) return argmax(l);
  const std::vector<double> probs = softmax_double(l);
  // 53-bit uniform in [0, 1): portable, unlike std::uniform_real_distribution.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  double cum = 0.0;
  int32_t last_nonzero = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0.0) continue;
    cum += probs[i];
    last_nonzero = static_cast<int32_t>(i);
    if (u < cum) return last_nonzero;
  }
  return last_nonzero;  // rounding left u just past the total
}

}  // namespace conclave::engine
