// See long_concurrency.h.
#include "bench/long_concurrency.h"

#include <chrono>
#include <map>
#include <random>
#include <stdexcept>

#include "engine/llm_engine.h"

namespace conclave::bench {

void run_long_concurrency(const long_concurrency_options& opts, std::FILE* out) {
  if (opts.sequences <= 0 || opts.prompt_len <= 0 || opts.max_tokens <= 0)
    throw std::invalid_argument("bench long --concurrent: sizes must be > 0");
  const auto engine =
      make_random_engine(opts.spec, int64_t{opts.prompt_len} + opts.max_tokens, opts.sequences);
  engine::llm_engine& eng = *engine;
  const config::scheduler_config& sc = opts.spec.engine.scheduler;
  const auto kv = eng.backend().kv_shape();
  std::fprintf(out,
               "\n%s: %d sequences of %d prompt tokens + %d generated, at once, through the "
               "engine (steps of %d tokens): KV cache %d blocks of %d (%.1f GiB, %lld tokens), "
               "host pool %d blocks (%.1f GiB)\n",
               opts.spec.model_name.c_str(), opts.sequences, opts.prompt_len, opts.max_tokens,
               sc.max_num_batched_tokens, kv.num_blocks, kv.block_size,
               static_cast<double>(kv.bytes_per_block) * kv.num_blocks / (1ull << 30),
               static_cast<long long>(kv.num_blocks) * kv.block_size, kv.num_host_blocks,
               static_cast<double>(kv.bytes_per_block) * kv.num_host_blocks / (1ull << 30));
  std::fflush(out);
  std::mt19937_64 rng(opts.spec.seed + 7);
  engine::sampling_params sp;
  sp.temperature = 0.0f;
  sp.ignore_eos = true;
  sp.max_tokens = opts.max_tokens;
  std::map<int64_t, int> index;
  for (int i = 0; i < opts.sequences; ++i) {
    index[eng.add_request(random_prompt(rng, opts.prompt_len, eng.model_config().vocab_size), sp)] =
        i;
  }
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  std::vector<double> first(static_cast<size_t>(opts.sequences), -1), done = first;
  std::vector<int> tokens(static_cast<size_t>(opts.sequences), 0);
  while (eng.has_work()) {
    for (const auto& e : eng.step()) {
      const auto i = static_cast<size_t>(index.at(e.id));
      const double s = std::chrono::duration<double>(clock::now() - t0).count();
      if (first[i] < 0) {
        first[i] = s;
        std::fprintf(out, "  (sequence %zu: first token at %.1f s)\n", i, s);
        std::fflush(out);  // a run cut short still shows how far it got
      }
      ++tokens[i];
      if (e.finished) done[i] = s;
    }
  }
  const double total = std::chrono::duration<double>(clock::now() - t0).count();
  for (size_t i = 0; i < first.size(); ++i)
    std::fprintf(out, "  sequence %zu: first token at %.1f s, %d tokens, done at %.1f s\n", i,
                 first[i], tokens[i], done[i]);
  const auto s = eng.stats();
  std::fprintf(out,
               "  all done in %.1f s; offloaded %llu times (%llu blocks out, %llu in), "
               "recomputed %llu times, prompt tokens computed %llu of %lld\n",
               total, static_cast<unsigned long long>(s.swap_outs),
               static_cast<unsigned long long>(s.blocks_swapped_out),
               static_cast<unsigned long long>(s.blocks_swapped_in),
               static_cast<unsigned long long>(s.preemptions),
               static_cast<unsigned long long>(s.prompt_tokens_computed),
               static_cast<long long>(opts.sequences) * opts.prompt_len);
  std::fflush(out);
}

}  // namespace conclave::bench
