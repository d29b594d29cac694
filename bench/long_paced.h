// A part of `conclave bench long`: decoding streams next to one long prompt, through the
// engine itself (random weights on the device), once per decode_slowdown. Prints each
// run's decoder step times while the prompt is read (mean, median, 90th percentile and
// longest, against their quiet step before it), the steps that carried a prompt chunk and
// those the pacer held back, and the prompt's time to first token. Plain C++ interface.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/random_engine.h"

namespace conclave::bench {

struct long_paced_options {
  random_engine_spec spec;
  int32_t streams = 8;
  int32_t stream_context = 1024;
  int32_t prompt_len = 131072;
  std::vector<double> slowdowns;  ///< decode_slowdown per run (0: off)
  int32_t quiet_steps = 20;       ///< the decoders' steps timed before the prompt comes
};

void run_long_paced(const long_paced_options& opts, std::FILE* out);

}  // namespace conclave::bench
