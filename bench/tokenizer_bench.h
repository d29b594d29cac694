// PLACEHOLDER owned by the tokenizer work: replaced with the real benchmark.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdio>
namespace conclave::bench {
struct tokenizer_bench_options {};
inline void add_tokenizer_bench_options(CLI::App&, tokenizer_bench_options&) {}
int run_tokenizer_bench(const tokenizer_bench_options& opts, std::FILE* out);
}  // namespace conclave::bench
