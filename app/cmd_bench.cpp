// `conclave bench ...`: engine, ep, long, moe, tokenizer, serve, chaos, soak and constrain (results
// go to docs/PERFORMANCE.md and docs/RELIABILITY.md).
#include <sstream>
#include <stdexcept>

#include "app/commands.h"
#include "app/engine_options.h"
#include "bench/chaos_bench.h"
#include "bench/constrain_bench.h"
#include "bench/engine_bench.h"
#include "bench/ep_bench.h"
#include "bench/long_concurrency.h"
#include "bench/long_paced.h"
#include "bench/random_engine.h"
#include "bench/serve_bench.h"
#include "bench/soak_bench.h"
#include "bench/tokenizer_bench.h"
#include "gpu/long_bench.h"
#include "gpu/moe_bench.h"

namespace conclave::app {

std::vector<command> add_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "benchmarks that print their numbers and the machine");
  bench->require_subcommand(1);

  auto opts = std::make_shared<bench::engine_bench_options>();
  auto* eng = bench->add_subcommand("engine", "prefill and decode tokens/s at several batch sizes");
  auto* model_opt = eng->add_option("--model", opts->model_dir, "Hugging Face model folder");
  auto* random_opt = eng->add_flag(
      "--random-weights", opts->random_weights,
      "no checkpoint: random weights generated in device memory for --preset (cuda only); "
      "prints the card's ceilings, decode MBU and prefill MFU");
  eng->add_option("--preset", opts->preset, "model preset for --random-weights (gen-model's)")
      ->needs(random_opt);
  eng->add_option("--layers", opts->layers, "with --random-weights: the first N layers only")
      ->check(CLI::PositiveNumber)
      ->needs(random_opt);
  eng->add_option("--prefill-lens", opts->prefill_lens,
                  "with --random-weights: prompt lengths timed for prefill")
      ->delimiter(',')
      ->needs(random_opt);
  eng->add_option("--quant", opts->quant,
                  "with --random-weights: the projections quantized on the device: none, fp8 "
                  "(w8a16, per row and 128 inputs) or awq (w4a16, groups of 128); with --model "
                  "the checkpoint decides")
      ->check(CLI::IsMember({"none", "fp8", "awq"}))
      ->capture_default_str()
      ->needs(random_opt);
  model_opt->excludes(random_opt);
  random_opt->excludes(model_opt);
  eng->add_option("--prompt-len", opts->prompt_len, "prompt tokens for the prefill measurement")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  eng->add_option("--decode-tokens", opts->decode_tokens, "tokens generated per sequence")
      ->check(CLI::Range(2, 1 << 20))
      ->capture_default_str();
  eng->add_option("--decode-context", opts->decode_context, "prompt tokens before decoding")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  eng->add_option("--batches", opts->batches, "batch sizes")->delimiter(',')->capture_default_str();
  add_engine_options(*eng, opts->engine);

  auto popts = std::make_shared<bench::ep_bench_options>();
  auto* ep = bench->add_subcommand(
      "ep",
      "expert-parallel decode: step time split into experts, dispatch, combine and the "
      "rest, bytes moved, tokens/s, for R ranks (threads over Gloo, NCCL or device "
      "buffers) and batch sizes");
  auto* ep_model = ep->add_option("--model", popts->model_dir,
                                  "Hugging Face MoE model folder (default: the demo)");
  auto* ep_random = ep->add_flag("--random-weights", popts->random_weights,
                                 "no checkpoint: random weights of --preset generated on each "
                                 "rank's GPU, only its experts (cuda only)");
  ep->add_option("--preset", popts->preset, "model preset for --random-weights (gen-model's)")
      ->capture_default_str()
      ->needs(ep_random);
  ep->add_option("--layers", popts->layers, "with --random-weights: the first N layers only")
      ->check(CLI::PositiveNumber)
      ->needs(ep_random);
  ep->add_option("--quant", popts->quant,
                 "with --random-weights: projections quantized on the device: none, fp8, awq")
      ->check(CLI::IsMember({"none", "fp8", "awq"}))
      ->capture_default_str()
      ->needs(ep_random);
  ep_model->excludes(ep_random);
  ep_random->excludes(ep_model);
  ep->add_option("--collectives", popts->collectives,
                 "how ranks talk: gloo (host buffers; cuda ranks share GPU 0), nccl (one GPU "
                 "per rank, device buffers) or local (device buffers in this process; rank r on "
                 "GPU r mod the GPUs)")
      ->check(CLI::IsMember({"gloo", "nccl", "local"}))
      ->capture_default_str();
  ep->add_option("--ranks", popts->ranks, "replica sizes R (1: the plain backend)")
      ->delimiter(',')
      ->capture_default_str();
  ep->add_option("--batches", popts->batches, "decode sequences per step, over all ranks")
      ->delimiter(',')
      ->capture_default_str();
  ep->add_option("--threads-per-rank", popts->threads_per_rank, "CPU threads of each rank")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  ep->add_option("--steps", popts->steps, "timed decode steps")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  ep->add_option("--prompt-len", popts->prompt_len, "prompt tokens prefilled first (not timed)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  ep->add_option("--backend", popts->backend, "cpu, or cuda where it runs expert-parallel ranks")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  ep->add_option("--seed", popts->seed, "prompt seed")->capture_default_str();
  ep->add_option("--prefill-lens", popts->prefill_lens,
                 "also time to first token of one prompt of each length on rank 0, per R")
      ->delimiter(',');
  ep->add_option("--prefill-chunk", popts->prefill_chunk, "prompt tokens read a step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  auto topts = std::make_shared<bench::tokenizer_bench_options>();
  auto* tok =
      bench->add_subcommand("tokenizer", "single-thread tokenizer encode/decode throughput");
  bench::add_tokenizer_bench_options(*tok, *topts);

  auto sopts = std::make_shared<bench::serve_bench_options>();
  auto* srv = bench->add_subcommand(
      "serve", "load a running `conclave serve` with streaming clients (SSE or WebSocket)");
  bench::add_serve_bench_options(*srv, *sopts);
  auto xopts = std::make_shared<bench::chaos_bench_options>();
  auto* chaos = bench->add_subcommand(
      "chaos", "streaming load while random replica faults are injected once a second");
  bench::add_chaos_bench_options(*chaos, *xopts);
  auto kopts = std::make_shared<bench::soak_bench_options>();
  auto* soak = bench->add_subcommand(
      "soak", "many mixed requests (cancels, timeouts, refusals), then check the server is clean");
  bench::add_soak_bench_options(*soak, *kopts);
  auto lopts = std::make_shared<gpu::long_bench_options>();
  auto lpreset = std::make_shared<std::string>("qwen3-coder-30b-a3b");
  auto llayers = std::make_shared<int64_t>(0);
  auto lquant = std::make_shared<std::string>("none");
  auto lengine = std::make_shared<config::engine_config>();
  auto lonly = std::make_shared<bool>(false);
  auto* lng = bench->add_subcommand(
      "long",
      "long context on the GPU (random weights): TTFT of long prompts, decode at long "
      "contexts, other streams' step while a long prompt is read");
  lng->add_option("--preset", *lpreset, "model preset (gen-model's)")->capture_default_str();
  lng->add_option("--layers", *llayers, "the first N layers only")->check(CLI::PositiveNumber);
  lng->add_option("--quant", *lquant,
                  "the projections quantized on the device: none, fp8 or awq (the 30B shape "
                  "with a 256K cache on an 80 GB card)")
      ->check(CLI::IsMember({"none", "fp8", "awq"}))
      ->capture_default_str();
  lng->add_option("--prompt-lens", lopts->prompt_lens, "prompt lengths timed for TTFT")
      ->delimiter(',')
      ->capture_default_str();
  lng->add_option("--chunk", lopts->chunk, "prefill tokens per step for the TTFT runs")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  lng->add_option("--decode-contexts", lopts->decode_contexts,
                  "contexts of the decode steps (the first is the baseline)")
      ->delimiter(',')
      ->capture_default_str();
  lng->add_option("--streams", lopts->streams, "decoding streams next to the long prompt")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  lng->add_option("--stream-context", lopts->stream_context, "their contexts")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  lng->add_option("--busy-prompt", lopts->busy_prompt, "the prompt read while they decode")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  lng->add_option("--busy-pairs", lopts->busy_pairs,
                  "then its chunks as the scheduler sizes them under --prefill-stall-pairs = "
                  "each of these")
      ->delimiter(',');
  lng->add_option("--busy-chunks", lopts->busy_chunks, "its chunk sizes")
      ->delimiter(',')
      ->capture_default_str();
  lng->add_option("--iters", lopts->iters, "timed decode steps")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  auto conc = std::make_shared<bench::long_concurrency_options>();
  conc->sequences = 0;
  lng->add_option("--concurrent", conc->sequences,
                  "then run this many prompts of --concurrent-len tokens at once through the "
                  "engine to completion (with the engine options' KV offload; 0: skip)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  lng->add_option("--concurrent-len", conc->prompt_len, "their prompt length")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  auto paced = std::make_shared<bench::long_paced_options>();
  lng->add_option("--paced", paced->slowdowns,
                  "then, through the engine, --streams streams decoding while one "
                  "--busy-prompt prompt is read, once per decode_slowdown given (0: off): "
                  "their step times and the prompt's TTFT")
      ->delimiter(',')
      ->check([](const std::string& v) -> std::string {
        try {
          const double x = std::stod(v);
          return x == 0 || x > 1 ? "" : "--paced values must be 0 (off) or greater than 1";
        } catch (...) {
          return "--paced takes numbers";
        }
      });
  lng->add_flag("--only-concurrent,--skip-tables", *lonly, "skip the three tables");
  add_engine_options(*lng, *lengine);
  auto mopts = std::make_shared<gpu::moe_bench_options>();
  auto mpreset = std::make_shared<std::string>("qwen3-30b-a3b");
  auto mengine = std::make_shared<config::engine_config>();
  auto* moe = bench->add_subcommand(
      "moe",
      "one MoE layer alone on the GPU (random weights): router to combine, per token count, "
      "against the copy ceiling (tools/moe_grouped_mm.py: PyTorch's grouped GEMM beside it)");
  moe->add_option("--preset", *mpreset, "model preset (gen-model's)")->capture_default_str();
  moe->add_option("--tokens", mopts->tokens, "token counts timed")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  moe->add_option("--iters", mopts->iters, "timed runs per token count")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_engine_options(*moe, *mengine);
  auto copts = std::make_shared<bench::constrain_bench_options>();
  auto* con = bench->add_subcommand(
      "constrain", "constrained tool calls: grammar compile time and mask cost per decode step");
  bench::add_constrain_bench_options(*con, *copts);
  return {{eng,
           [opts, eng] {
             if (opts->model_dir.empty() && !opts->random_weights)
               throw std::invalid_argument(
                   "bench engine needs --model DIR or --random-weights --preset NAME");
             if (opts->random_weights && opts->preset.empty())
               throw std::invalid_argument("--random-weights needs --preset NAME");
             opts->batches_given = eng->count("--batches") > 0;
             opts->decode_context_given = eng->count("--decode-context") > 0;
             bench::run_engine_bench(*opts, stdout);
             return exit_ok;
           }},
          {ep,
           [popts] {
             if (popts->model_dir.empty() && !popts->random_weights)
               popts->model_dir = ensure_demo_model().string();
             bench::run_ep_bench(*popts, stdout);
             return exit_ok;
           }},
          {lng,
           [lopts, lpreset, llayers, lquant, lengine, conc, paced, lonly] {
             const bench::random_model m = bench::random_model_of(*lpreset, *llayers, *lquant);
             lopts->model_name = m.name;
             lopts->model = m.config;
             lopts->init_std = m.init_std;
             lopts->backend = lengine->backend;
             if (!*lonly) gpu::run_long_bench(*lopts, stdout);
             const bench::random_engine_spec spec{lopts->model_name, lopts->model, lopts->init_std,
                                                  lopts->seed, *lengine};
             if (conc->sequences > 0) {
               conc->spec = spec;
               conc->spec.engine.scheduler.max_num_batched_tokens = lopts->chunk;
               bench::run_long_concurrency(*conc, stdout);
             }
             if (!paced->slowdowns.empty()) {
               paced->model_name = spec.model_name;
               paced->streams = std::max(lopts->streams, 1);
               paced->stream_context = lopts->stream_context;
               paced->prompt_len = lopts->busy_prompt;
               const auto paced_eng = bench::make_random_engine(
                   spec, bench::long_paced_context(*paced), paced->streams + 1);
               bench::run_long_paced(*paced_eng, *paced, stdout);
             }
             return exit_ok;
           }},
          {moe,
           [mopts, mpreset, mengine] {
             const bench::random_model m = bench::random_model_of(*mpreset, 0);
             mopts->model_name = m.name;
             mopts->model = m.config;
             mopts->init_std = m.init_std;
             mopts->backend = mengine->backend;
             gpu::run_moe_bench(*mopts, stdout);
             return exit_ok;
           }},
          {tok, [topts] { return bench::run_tokenizer_bench(*topts, stdout); }},
          {srv, [sopts] { return bench::run_serve_bench(*sopts, stdout); }},
          {chaos, [xopts] { return bench::run_chaos_bench(*xopts, stdout); }},
          {soak, [kopts] { return bench::run_soak_bench(*kopts, stdout); }},
          {con, [copts] { return bench::run_constrain_bench(*copts, stdout); }}};
}

}  // namespace conclave::app
