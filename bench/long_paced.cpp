// See long_paced.h.
#include "bench/long_paced.h"

#include <algorithm>
#include <random>
#include <set>
#include <stdexcept>

#include "bench/clock.h"
#include "bench/serve_bench.h"
#include "engine/llm_engine.h"

namespace conclave::bench {

namespace {

constexpr int64_t kMostStreamTokens = 1 << 16;

}  // namespace

int64_t long_paced_context(const long_paced_options& opts) {
  return std::max(int64_t{opts.prompt_len} + 1, opts.stream_context + kMostStreamTokens);
}

std::vector<long_paced_row> run_long_paced(engine::llm_engine& eng, const long_paced_options& opts,
                                           std::FILE* out) {
  if (opts.streams <= 0 || opts.stream_context <= 0 || opts.prompt_len <= 0 ||
      opts.quiet_steps <= 0)
    throw std::invalid_argument("bench long --paced: sizes must be > 0");
  // The streams decode for as many steps as the prompt takes: as long as the context and
  // the cache let one of them.
  const auto kv = eng.backend().kv_shape();
  const auto limit = std::min(static_cast<int64_t>(eng.max_model_len()),
                              static_cast<int64_t>(kv.num_blocks) * kv.block_size);
  const int64_t room = limit - opts.stream_context;
  if (room < 1 || limit < int64_t{opts.prompt_len} + 1)
    throw std::invalid_argument(
        "bench long --paced: the engine's context or KV cache is too short for the prompt");
  const auto stream_tokens = static_cast<int32_t>(std::min(room, kMostStreamTokens));
  const config::scheduler_config& sc = eng.engine_config().scheduler;
  std::fprintf(out,
               "\n%s: %d streams at %d tokens of context decoding while a %d-token prompt is "
               "read, through the engine (steps of %d tokens, prefill_stall_pairs %lld; KV "
               "cache %lld tokens), per decode_slowdown. Step times are wall times of "
               "engine steps, x the streams' quiet step before the prompt came.\n"
               "  slowdown  quiet ms  steps  chunked  held  mean x  p50 x  p90 x  max x  "
               "TTFT s\n",
               opts.model_name.c_str(), opts.streams, opts.stream_context, opts.prompt_len,
               sc.max_num_batched_tokens, static_cast<long long>(sc.prefill_stall_pairs),
               static_cast<long long>(kv.num_blocks) * kv.block_size);
  std::fflush(out);
  std::mt19937_64 rng(11);
  std::vector<long_paced_row> rows;
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
    sample_stats quiet;
    for (int i = 0; i < opts.quiet_steps; ++i) {
      const auto t = clock_type::now();
      eng.step();
      quiet.add(seconds_since(t));
    }
    const double quiet_s = quiet.percentile(50);
    sp.max_tokens = 1;
    const auto before = eng.stats();
    const auto t0 = clock_type::now();
    const int64_t longp =
        eng.add_request(random_prompt(rng, opts.prompt_len, eng.model_config().vocab_size), sp);
    sample_stats steps;
    size_t chunked = 0;
    double ttft = -1;
    for (auto computed = before.prompt_tokens_computed; ttft < 0 && eng.has_work();) {
      const auto t = clock_type::now();
      const auto events = eng.step();
      steps.add(seconds_since(t));
      const auto now_computed = eng.stats().prompt_tokens_computed;
      if (now_computed > computed) ++chunked;
      computed = now_computed;
      for (const auto& e : events)
        if (e.id == longp) ttft = seconds_since(t0);
    }
    const auto after = eng.stats();
    for (const int64_t id : streams) eng.abort(id);
    while (eng.has_work()) eng.step();
    long_paced_row r;
    r.slowdown = slowdown;
    r.quiet_s = quiet_s;
    r.steps = steps.count();
    r.chunked = chunked;
    r.held = after.paced_steps - before.paced_steps;
    r.mean = steps.mean() / quiet_s;
    r.p50 = steps.percentile(50) / quiet_s;
    r.p90 = steps.percentile(90) / quiet_s;
    r.max = steps.max() / quiet_s;
    r.ttft_s = ttft;
    std::fprintf(out, "  %8s  %8.2f  %5zu  %7zu  %4llu  %6.2f  %5.2f  %5.2f  %5.2f  %6.1f\n",
                 slowdown == 0 ? "off" : std::to_string(slowdown).substr(0, 4).c_str(),
                 r.quiet_s * 1e3, r.steps, r.chunked, static_cast<unsigned long long>(r.held),
                 r.mean, r.p50, r.p90, r.max, r.ttft_s);
    rows.push_back(r);
    std::fflush(out);
  }
  eng.set_decode_pacing(0);
  return rows;
}

}  // namespace conclave::bench
