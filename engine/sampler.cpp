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

/// exp(x - max) in double, 0 for -inf: the unnormalised masses the cut-offs and the draw
/// compare (a device sampler computes the same numbers).
std::vector<double> masses(std::span<const float> x) {
  std::vector<double> e(x.size());
  const float mx = *std::max_element(x.begin(), x.end());
  for (size_t i = 0; i < x.size(); ++i)
    e[i] = std::isinf(x[i]) && x[i] < 0 ? 0.0 : std::exp(static_cast<double>(x[i]) - mx);
  return e;
}

/// softmax in double over finite entries (-inf gives 0).
std::vector<double> softmax_double(std::span<const float> x) {
  std::vector<double> p = masses(x);
  double sum = 0.0;
  for (double v : p) sum += v;
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
  for (const auto& [token, bias] : logit_bias) {
    if (token < 0) return "logit_bias token ids must be >= 0";
    if (!(bias >= -100.0f && bias <= 100.0f)) return "logit_bias values must be in [-100, 100]";
  }
  return {};
}

void sampler::penalty_entries(std::span<const int32_t> prompt, std::span<const int32_t> output,
                              size_t vocab, std::vector<gpu::penalty_entry>& out) const {
  out.clear();
  const auto& p = params_;
  const bool repeat = p.repetition_penalty != 1.0f;
  const bool additive = p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (!repeat && !additive && p.logit_bias.empty()) return;
  // HF's repetition penalty: each distinct token of prompt or output, once; OpenAI's
  // presence/frequency penalties: output tokens, by their count.
  std::unordered_map<int32_t, size_t> index;
  std::vector<int32_t> counts;
  constexpr size_t none = ~size_t{0};
  auto entry = [&](int32_t t) {
    if (t < 0 || static_cast<size_t>(t) >= vocab) return none;
    auto [it, fresh] = index.try_emplace(t, out.size());
    if (fresh) {
      out.push_back({t, repeat ? 1 : 0, 0.0f});
      counts.push_back(0);
    }
    return it->second;
  };
  if (repeat) {
    for (int32_t t : prompt) entry(t);
  }
  for (int32_t t : output) {
    if (const size_t i = entry(t); i != none) ++counts[i];
  }
  if (additive) {
    for (size_t i = 0; i < out.size(); ++i) {
      if (counts[i] > 0)
        out[i].subtract = p.presence_penalty + p.frequency_penalty * static_cast<float>(counts[i]);
    }
  }
  // logit_bias rides on the same entries (an added bias is a negative subtraction), so the
  // device sampler applies it exactly as the host does.
  for (const auto& [t, bias] : p.logit_bias) {
    if (t < 0 || static_cast<size_t>(t) >= vocab) continue;
    if (const auto it = index.find(t); it != index.end()) {
      out[it->second].subtract -= bias;
    } else {
      index.emplace(t, out.size());
      out.push_back({t, 0, -bias});
    }
  }
}

gpu::device_sampling sampler::device_spec(std::span<const int32_t> prompt,
                                          std::span<const int32_t> output, size_t vocab_limit,
                                          double u,
                                          std::vector<gpu::penalty_entry>& penalties) const {
  const auto& p = params_;
  penalty_entries(prompt, output, vocab_limit, penalties);
  gpu::device_sampling d;
  d.temperature = p.greedy() ? 0.0f : p.temperature;
  d.top_k = p.top_k;
  d.top_p = p.top_p;
  d.min_p = p.min_p;
  d.repetition_penalty = p.repetition_penalty;
  d.u = u;
  d.vocab_limit = static_cast<int32_t>(vocab_limit);
  d.penalties = penalties;
  return d;
}

int32_t sample_spec(std::span<const float> logits, const gpu::device_sampling& spec) {
  sampling_params p;
  p.temperature = spec.temperature;
  p.top_k = spec.top_k;
  p.top_p = spec.top_p;
  p.min_p = spec.min_p;
  p.seed = 0;  // never drawn from: the spec carries the draw
  const size_t n = spec.vocab_limit > 0
                       ? std::min(logits.size(), static_cast<size_t>(spec.vocab_limit))
                       : logits.size();
  std::vector<float> row(logits.begin(), logits.begin() + static_cast<std::ptrdiff_t>(n));
  apply_penalties(row, spec.penalties, spec.repetition_penalty);
  return sampler(p).sample(row, {}, {}, spec.u);
}

void apply_penalties(std::span<float> logits, std::span<const gpu::penalty_entry> entries,
                     float repetition_penalty) {
  for (const auto& e : entries) {
    if (e.token < 0 || static_cast<size_t>(e.token) >= logits.size()) continue;
    float& s = logits[static_cast<size_t>(e.token)];
    if (e.repeated != 0) s = s < 0 ? s * repetition_penalty : s / repetition_penalty;
    s -= e.subtract;
  }
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

sampler::sampler(const sampling_params& params)
    : params_(params),
      seed_(params.seed
                ? *params.seed
                : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()) {}

double sampler::draw(size_t index) const {
  // SplitMix64's output for its state after index + 1 steps from the seed.
  uint64_t z = seed_ + (static_cast<uint64_t>(index) + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

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
  if (p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f ||
      !p.logit_bias.empty()) {
    penalty_entries(prompt, output, vocab, penalty_scratch_);
    apply_penalties(logits, penalty_scratch_, p.repetition_penalty);
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
    // always keeping the most likely token. The cumulative is summed unnormalised and
    // divided once (exact for ties at the maximum, as on the device).
    std::vector<int32_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return logits[static_cast<size_t>(a)] < logits[static_cast<size_t>(b)];
    });
    const std::vector<double> e = masses(logits);
    double total = 0.0;
    for (double v : e) total += v;
    double cum = 0.0;
    for (size_t i = 0; i + 1 < vocab; ++i) {
      cum += e[static_cast<size_t>(order[i])];
      if (cum / total <= 1.0 - static_cast<double>(p.top_p)) {
        logits[static_cast<size_t>(order[i])] = neg_inf;
      } else {
        break;
      }
    }
  }
  if (p.min_p > 0.0f) {
    // p < min_p * p_max, with masses relative to the maximum (whose mass is 1).
    const std::vector<double> e = masses(logits);
    for (size_t i = 0; i < vocab; ++i) {
      if (e[i] < static_cast<double>(p.min_p)) logits[i] = neg_inf;
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
                        std::span<const int32_t> output) const {
  return sample(logits, prompt, output, params_.greedy() ? 0.0 : draw(output.size()));
}

int32_t sampler::sample(std::span<const float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> output, double u) const {
  std::vector<float> l(logits.begin(), logits.end());
  transform(l, prompt, output);
  if (params_.greedy()) return argmax(l);
  const std::vector<double> e = masses(l);
  double total = 0.0;
  for (double v : e) total += v;
  const double target = u * total;
  double cum = 0.0;
  int32_t last_nonzero = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    if (e[i] <= 0.0) continue;
    cum += e[i];
    last_nonzero = static_cast<int32_t>(i);
    if (target < cum) return last_nonzero;
  }
  return last_nonzero;  // rounding left u just past the total
}

}  // namespace conclave::engine
