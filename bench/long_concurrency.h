// The last part of `conclave bench long`: several sequences of a long prompt run to
// completion through the engine at once (random weights on the device), with whatever KV
// offload the engine options give; prints each one's time to first token, the total, and
// the engine's swap / preemption / recompute counters. Plain C++ interface.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "bench/random_engine.h"

namespace conclave::bench {

struct long_concurrency_options {
  random_engine_spec spec;
  int32_t sequences = 2;
  int32_t prompt_len = 262144;
  int32_t max_tokens = 8;
};

void run_long_concurrency(const long_concurrency_options& opts, std::FILE* out);

}  // namespace conclave::bench
