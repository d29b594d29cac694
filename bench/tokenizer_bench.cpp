// PLACEHOLDER owned by the tokenizer work: replaced with the real benchmark.
#include "bench/tokenizer_bench.h"
namespace conclave::bench {
int run_tokenizer_bench(const tokenizer_bench_options&, std::FILE* out) {
  std::fprintf(out, "tokenizer benchmark not built yet\n");
  return 1;
}
}  // namespace conclave::bench
