// constrain_bench: the cost of constrained tool calls (`conclave bench constrain`):
// building the vocabulary trie, compiling a tool or JSON grammar, and the per-decode-step
// overhead of the token mask in the sampler over Qwen3's 151k vocabulary.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <string>

namespace conclave::bench {

struct constrain_bench_options {
  std::string tokenizer_file;  ///< the model's tokenizer.json
  int32_t calls = 30;          ///< constrained generations timed per mode
  int32_t max_tokens = 200;    ///< token budget of each generation
  uint64_t seed = 1;
};

/// Registers --tokenizer, --calls, --max-tokens and --seed on `cmd`.
void add_constrain_bench_options(CLI::App& cmd, constrain_bench_options& opts);

/// Runs the benchmark and prints its numbers (and the machine) to `out`.
int run_constrain_bench(const constrain_bench_options& opts, std::FILE* out);

}  // namespace conclave::bench
