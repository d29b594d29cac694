// A part of `conclave bench long`: decoding streams next to one long prompt, through the
// engine itself (random weights on the device there; any engine here), once per
// decode_slowdown. Prints each
// run's decoder step times while the prompt is read (mean, median, 90th percentile and
// longest, against their quiet step before it), the steps that carried a prompt chunk and
// those the pacer held back, and the prompt's time to first token. Plain C++ interface.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/llm_engine.h"

namespace conclave::bench {

struct long_paced_options {
  std::string model_name;
  int32_t streams = 8;
  int32_t stream_context = 1024;
  int32_t prompt_len = 131072;
  std::vector<double> slowdowns;  ///< decode_slowdown per run (0: off)
  int32_t quiet_steps = 20;       ///< the decoders' steps timed before the prompt comes
};

/// One run: its decoders' steps while the prompt was read, in seconds and as multiples of
/// their quiet step.
struct long_paced_row {
  double slowdown = 0;
  double quiet_s = 0;  ///< the median decode-only step before the prompt came
  size_t steps = 0;    ///< steps until the prompt's first token
  size_t chunked = 0;  ///< of them, steps that read prompt tokens
  uint64_t held = 0;   ///< steps whose chunk waited (engine_stats::paced_steps)
  double mean = 0, p50 = 0, p90 = 0, max = 0;  ///< x quiet_s
  double ttft_s = 0;
};

/// The context the engine needs: the prompt, or a stream's context and as many tokens as
/// the streams may decode while the prompt is read (up to 65,536).
int64_t long_paced_context(const long_paced_options& opts);

/// Runs on `eng` (idle, prefix cache off: random prompts share nothing); leaves it idle
/// with its pacing off. Throws std::invalid_argument for sizes <= 0 or an engine whose
/// context or KV cache cannot hold the prompt and a token.
std::vector<long_paced_row> run_long_paced(engine::llm_engine& eng, const long_paced_options& opts,
                                           std::FILE* out);

}  // namespace conclave::bench
