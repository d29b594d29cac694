// Engine throughput. Prompts are random ids drawn per sequence so prefix caching cannot
// help; decode is timed only after every sequence has its first token.
#include "bench/engine_bench.h"
#include "bench/clock.h"

#include <spdlog/fmt/fmt.h>
#include <chrono>
#include <random>

#include "bench/machine_info.h"
#include "bench/random_engine.h"
#include "engine/llm_engine.h"
#include "gpu/device_bench.h"
#include "gpu/devices.h"
#include "model/checkpoint.h"
#include "model/gen_model.h"
#include "model/model_error.h"

namespace conclave::bench {

random_model random_model_of(const std::string& preset, int64_t layers, const std::string& quant) {
  const model::model_preset& p = model::find_preset(preset);
  random_model m{p.name, p.config, p.init_std};
  if (layers > 0) {
    if (layers > m.config.num_layers)
      throw model::model_error(fmt::format("--layers must be between 1 and {} for preset {}",
                                           m.config.num_layers, p.name));
    m.config.num_layers = layers;
    m.name += fmt::format(" (first {} layers)", layers);
  }
  if (quant == "fp8" || quant == "awq") {
    m.config.quant = {};
    m.config.quant.method = quant == "fp8" ? model::quant_method::fp8 : model::quant_method::awq;
    m.name += " " + quant;
  } else if (quant != "none") {
    throw model::model_error("--quant must be none, fp8 or awq, not " + quant);
  }
  return m;
}

std::vector<engine_bench_row> run_engine_bench(const engine_bench_options& opts, std::FILE* out) {
  if (opts.random_weights) {
    const random_model m = random_model_of(opts.preset, opts.layers, opts.quant);
    gpu::device_bench_options d;
    d.model_name = m.name;
    d.model = m.config;
    d.init_std = m.init_std;
    d.seed = opts.seed;
    d.backend = opts.engine.backend;
    if (opts.batches_given) d.decode_batches = opts.batches;
    if (opts.decode_context_given) d.decode_context = opts.decode_context;
    if (!opts.prefill_lens.empty()) d.prefill_lens = opts.prefill_lens;
    gpu::run_device_bench(d, out);
    return {};
  }
  const model::checkpoint ckpt(opts.model_dir);
  config::engine_config cfg = opts.engine;
  cfg.scheduler.enable_prefix_caching = false;
  int32_t max_batch = 1;
  for (int32_t b : opts.batches) max_batch = std::max(max_batch, b);
  cfg.scheduler.max_num_seqs = std::max(cfg.scheduler.max_num_seqs, max_batch);
  engine::llm_engine eng(gpu::make_backend(ckpt, cfg.backend), cfg);
  const auto& mc = eng.model_config();
  std::mt19937_64 rng(opts.seed);

  std::fprintf(out,
               "conclave bench engine\n  machine: %s\n  backend: %s\n  model:   %s (%s, %lld "
               "layers, hidden %lld, %lld experts, top-%lld)\n",
               describe_machine().c_str(), std::string(eng.backend().name()).c_str(),
               opts.model_dir.c_str(), mc.architecture_name.c_str(),
               static_cast<long long>(mc.num_layers), static_cast<long long>(mc.hidden_size),
               static_cast<long long>(mc.num_experts),
               static_cast<long long>(mc.num_experts_per_tok));
  std::fprintf(out, "  gpus:    %s\n", gpu::describe_gpus().c_str());
  std::fprintf(out,
               "  prefill: %d-token prompts; decode: %d tokens after a %d-token prompt; step "
               "budget %d tokens\n",
               opts.prompt_len, opts.decode_tokens, opts.decode_context,
               cfg.scheduler.max_num_batched_tokens);
  std::fprintf(out, "%8s %18s %18s %12s\n", "batch", "prefill tok/s", "decode tok/s", "TPOT ms");

  engine::sampling_params sp;
  sp.temperature = 0.0f;
  sp.ignore_eos = true;
  std::vector<engine_bench_row> rows;
  // Warm-up: first touches of weights and KV pages stay out of the numbers.
  sp.max_tokens = 2;
  eng.generate(random_prompt(rng, std::min(opts.prompt_len, 64), mc.vocab_size), sp);

  for (int32_t batch : opts.batches) {
    engine_bench_row row;
    row.batch = batch;
    // Prefill: batch prompts, one token each.
    sp.max_tokens = 1;
    for (int32_t i = 0; i < batch; ++i)
      eng.add_request(random_prompt(rng, opts.prompt_len, mc.vocab_size), sp);
    auto t0 = clock_type::now();
    while (eng.has_work()) eng.step();
    row.prefill_tokens_per_s = static_cast<double>(batch) * opts.prompt_len / seconds_since(t0);

    // Decode: prefill every sequence first, then time the remaining steps.
    sp.max_tokens = opts.decode_tokens;
    for (int32_t i = 0; i < batch; ++i)
      eng.add_request(random_prompt(rng, opts.decode_context, mc.vocab_size), sp);
    size_t first_tokens = 0;
    while (first_tokens < static_cast<size_t>(batch)) {
      for (const auto& e : eng.step()) first_tokens += e.token >= 0 ? 1 : 0;
    }
    size_t decoded = 0, steps = 0;
    t0 = clock_type::now();
    while (eng.has_work()) {
      decoded += eng.step().size();
      ++steps;
    }
    const double s = seconds_since(t0);
    row.decode_tokens_per_s = static_cast<double>(decoded) / s;
    row.tpot_ms = steps ? 1e3 * s / static_cast<double>(steps) : 0.0;
    std::fprintf(out, "%8d %18.1f %18.1f %12.2f\n", batch, row.prefill_tokens_per_s,
                 row.decode_tokens_per_s, row.tpot_ms);
    std::fflush(out);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace conclave::bench
