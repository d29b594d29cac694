// See long_paced.h.
#include "bench/long_paced.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>

#include "bench/clock.h"
#include "engine/llm_engine.h"

namespace conclave::bench {

namespace {

/// The q-quantile of `v` (sorted copy, nearest rank).
double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

void run_long_paced(const long_paced_options& opts, std::FILE* out) {
  if (opts.streams <= 0 || opts.stream_context <= 0 || opts.prompt_len <= 0 ||
      opts.quiet_steps <= 0)
    throw std::invalid_argument("bench long --paced: sizes must be > 0");
  // The streams decode for as many steps as the prompt takes; room for that many tokens.
  const int32_t stream_tokens = 1 << 16;
  const auto engine = make_random_engine(
      opts.spec,
      std::max<int64_t>(int64_t{opts.prompt_len} + 1, int64_t{opts.stream_context} + stream_tokens),
      opts.streams + 1);
  engine::llm_engine& eng = *engine;
  const config::scheduler_config& sc = opts.spec.engine.scheduler;
  const auto kv = eng.backend().kv_shape();
  std::fprintf(out,
               "\n%s: %d streams at %d tokens of context decoding while a %d-token prompt is "
               "read, through the engine (steps of %d tokens, prefill_stall_pairs %lld; KV "
               "cache %lld tokens), per decode_slowdown. Step times are wall times of "
               "engine steps, x the streams' quiet step before the prompt came.\n"
               "  slowdown  quiet ms  steps  chunked  held  mean x  p50 x  p90 x  max x  "
               "TTFT s\n",
               opts.spec.model_name.c_str(), opts.streams, opts.stream_context, opts.prompt_len,
               sc.max_num_batched_tokens, static_cast<long long>(sc.prefill_stall_pairs),
               static_cast<long long>(kv.num_blocks) * kv.block_size);
  std::fflush(out);
  std::mt19937_64 rng(opts.spec.seed + 11);
  engine::sampling_params sp;
  sp.temperature = 0.0f;
  sp.ignore_eos = true;
  for (const double slowdown : opts.slowdowns) {
    eng.set_decode_pacing(slowdown);
    sp.max_tokens = stream_tokens;
    std::set<int64_t> streams, started;
    for (int i = 0; i < opts.streams; ++i)
      streams.insert(eng.add_request(
          random_prompt(rng, opts.stream_context, eng.model_config().vocab_size), sp));
    while (started.size() < streams.size() && eng.has_work())
      for (const auto& e : eng.step()) started.insert(e.id);
    std::vector<double> quiet;
    for (int i = 0; i < opts.quiet_steps; ++i) {
      const auto t = clock_type::now();
      eng.step();
      quiet.push_back(seconds_since(t));
    }
    const double quiet_s = quantile(quiet, 0.5);
    sp.max_tokens = 1;
    const auto before = eng.stats();
    const auto t0 = clock_type::now();
    const int64_t longp =
        eng.add_request(random_prompt(rng, opts.prompt_len, eng.model_config().vocab_size), sp);
    std::vector<double> steps;
    size_t chunked = 0;
    double ttft = -1;
    while (ttft < 0 && eng.has_work()) {
      const auto computed = eng.stats().prompt_tokens_computed;
      const auto t = clock_type::now();
      const auto events = eng.step();
      steps.push_back(seconds_since(t));
      if (eng.stats().prompt_tokens_computed > computed) ++chunked;
      for (const auto& e : events)
        if (e.id == longp) ttft = seconds_since(t0);
    }
    const auto after = eng.stats();
    for (const int64_t id : streams) eng.abort(id);
    while (eng.has_work()) eng.step();
    const double mean = std::accumulate(steps.begin(), steps.end(), 0.0) / steps.size();
    std::fprintf(out, "  %8s  %8.2f  %5zu  %7zu  %4llu  %6.2f  %5.2f  %5.2f  %5.2f  %6.1f\n",
                 slowdown == 0 ? "off" : std::to_string(slowdown).substr(0, 4).c_str(),
                 quiet_s * 1e3, steps.size(), chunked,
                 static_cast<unsigned long long>(after.paced_steps - before.paced_steps),
                 mean / quiet_s, quantile(steps, 0.5) / quiet_s, quantile(steps, 0.9) / quiet_s,
                 *std::max_element(steps.begin(), steps.end()) / quiet_s, ttft);
    std::fflush(out);
  }
}

}  // namespace conclave::bench
