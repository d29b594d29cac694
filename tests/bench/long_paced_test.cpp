// `conclave bench long --paced` on the CPU engine over tiny_moe: one row per
// decode_slowdown, every step of the prompt's reading either carries a chunk or holds it
// back for the decoders, none held with pacing off, and the engine left idle. Timings are
// never asserted.
#include <catch2/catch.hpp>
#include <cstdio>
#include <stdexcept>

#include "bench/long_paced.h"
#include "gpu/backend.h"
#include "tests/tiny_moe.h"

using namespace conclave;

TEST_CASE("bench long --paced on tiny_moe: rows per slowdown, steps chunked or held",
          "[bench][pacer]") {
  config::engine_config cfg;
  cfg.backend.num_kv_blocks = 1024;
  cfg.backend.block_size = 4;
  cfg.scheduler.max_num_batched_tokens = 32;
  cfg.scheduler.prefill_stall_pairs = 0;
  cfg.scheduler.enable_prefix_caching = false;
  engine::llm_engine eng(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
  bench::long_paced_options o;
  o.model_name = "tiny_moe";
  o.streams = 2;
  o.stream_context = 8;
  o.prompt_len = 300;
  o.quiet_steps = 4;
  o.slowdowns = {0, 1.5};
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  const auto rows = bench::run_long_paced(eng, o, out);
  std::fclose(out);
  REQUIRE(rows.size() == 2);
  for (const auto& r : rows) {
    INFO("slowdown " << r.slowdown);
    CHECK(r.steps == r.chunked + r.held);
    CHECK(r.chunked >= 10);  // 300 tokens, at most 30 a step next to the two decodes
    CHECK(r.quiet_s > 0);
    CHECK(r.ttft_s > 0);
    CHECK(r.max >= r.p90);
    CHECK(r.p90 >= r.p50);
  }
  CHECK(rows[0].slowdown == 0);
  CHECK(rows[0].held == 0);
  CHECK(rows[1].slowdown == 1.5);
  CHECK_FALSE(eng.has_work());  // the streams were stopped
  // A context too short for the prompt is refused before anything runs.
  o.prompt_len = 9000;
  CHECK_THROWS_AS(bench::run_long_paced(eng, o, stdout), std::invalid_argument);
}
