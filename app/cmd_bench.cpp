// `conclave bench engine`: prefill/decode throughput (results go to docs/PERFORMANCE.md).
#include <sstream>

#include "app/commands.h"
#include "app/engine_options.h"
#include "bench/engine_bench.h"
#include "bench/serve_bench.h"
#include "bench/tokenizer_bench.h"

namespace conclave::app {

std::vector<command> add_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "benchmarks that print their numbers and the machine");
  bench->require_subcommand(1);

  auto opts = std::make_shared<bench::engine_bench_options>();
  auto* eng = bench->add_subcommand("engine", "prefill and decode tokens/s at several batch sizes");
  eng->add_option("--model", opts->model_dir, "Hugging Face model folder")->required();
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

  auto topts = std::make_shared<bench::tokenizer_bench_options>();
  auto* tok =
      bench->add_subcommand("tokenizer", "single-thread tokenizer encode/decode throughput");
  bench::add_tokenizer_bench_options(*tok, *topts);

  auto sopts = std::make_shared<bench::serve_bench_options>();
  auto* srv = bench->add_subcommand(
      "serve", "load a running `conclave serve` with streaming clients (SSE or WebSocket)");
  bench::add_serve_bench_options(*srv, *sopts);
  return {{eng,
           [opts] {
             bench::run_engine_bench(*opts, stdout);
             return exit_ok;
           }},
          {tok, [topts] { return bench::run_tokenizer_bench(*topts, stdout); }},
          {srv, [sopts] { return bench::run_serve_bench(*sopts, stdout); }}};
}

}  // namespace conclave::app
