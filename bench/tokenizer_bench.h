// tokenizer_bench: single-thread encode and decode throughput of the tokenizer on a
// deterministic mix of prose, code and other scripts (`conclave bench tokenizer`).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace conclave::bench {

struct tokenizer_bench_options {
  std::string tokenizer_file;  ///< the model's tokenizer.json
  double mib = 8;              ///< size of the generated text
  int32_t repeats = 3;         ///< timed passes; the best one is reported
  uint64_t seed = 1;
};

/// Registers --tokenizer, --mib, --repeats and --seed on `cmd`.
void add_tokenizer_bench_options(CLI::App& cmd, tokenizer_bench_options& opts);

/// Deterministic benchmark text of about `bytes` bytes, as documents of 1-16 KiB mixing
/// English prose, source code, CJK, other scripts, emoji, numbers and a little non-NFC text.
std::vector<std::string> make_tokenizer_bench_text(size_t bytes, uint64_t seed);

/// Runs the benchmark and prints MiB/s and tokens/s (and the machine) to `out`.
int run_tokenizer_bench(const tokenizer_bench_options& opts, std::FILE* out);

}  // namespace conclave::bench
