// scheduler: prefill_stall_pairs bounds a prompt chunk's attention in steps that decode
// (config::scheduler_config::stall_chunk, then the scheduler's use of it).
#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "config/engine_config.h"
#include "engine/scheduler.h"
#include "tests/engine/iota_tokens.h"

using namespace conclave::engine;
using conclave::config::scheduler_config;

namespace {

std::shared_ptr<sequence> stall_seq(int64_t id, size_t prompt_len, int32_t max_tokens = 64) {
  sampling_params p;
  p.max_tokens = max_tokens;
  return std::make_shared<sequence>(
      id, conclave::test::iota_tokens(prompt_len, static_cast<int32_t>(id) * 100), p);
}

/// The pairs a chunk of n tokens after c computed ones attends.
long double chunk_pairs(size_t c, size_t n) {
  return static_cast<long double>(n) * c + static_cast<long double>(n) * (n + 1) / 2;
}

/// One step with made-up sampled tokens; returns what was scheduled.
std::vector<scheduled> stall_step(scheduler& sched) {
  auto s = sched.schedule();
  std::vector<int32_t> sampled(s.size(), 7);
  sched.postprocess(s, sampled, {}, 1 << 20);
  return s;
}

size_t stall_tokens_of(const std::vector<scheduled>& s, const std::shared_ptr<sequence>& seq) {
  for (const auto& e : s)
    if (e.seq == seq) return e.num_tokens;
  return 0;
}

}  // namespace

TEST_CASE("stall_chunk: the longest chunk whose pairs fit, never below the floor", "[scheduler]") {
  scheduler_config c;
  CHECK(c.prefill_stall_pairs == 8'000'000);  // the default (docs/long-context.md)
  c.prefill_stall_pairs = 0;
  CHECK(c.stall_chunk(100000, 5000) == 5000);  // off: everything left
  c.prefill_stall_pairs = 1'000'000;
  for (size_t computed : {size_t{0}, size_t{1000}, size_t{4096}, size_t{131072}, size_t{1} << 30}) {
    for (size_t remaining : {size_t{1}, size_t{16}, size_t{17}, size_t{900}, size_t{1} << 20}) {
      INFO("computed " << computed << " remaining " << remaining);
      const size_t n = c.stall_chunk(computed, remaining);
      CHECK(n <= remaining);
      CHECK(n >= std::min(remaining, scheduler_config::kMinStallChunk));
      if (n > scheduler_config::kMinStallChunk) CHECK(chunk_pairs(computed, n) <= 1e6L);
      if (n < remaining && n > scheduler_config::kMinStallChunk)
        CHECK(chunk_pairs(computed, n + 1) > 1e6L);  // the longest that fits
    }
  }
  // By hand, at 1,000 computed tokens: n = 732 gives 732,000 + 268,278 = 1,000,278 > 1e6;
  // n = 731 gives 731,000 + 267,546 = 998,546.
  CHECK(c.stall_chunk(1000, 5000) == 731);
  // Deep in a long prompt the floor keeps it moving.
  CHECK(c.stall_chunk(131072, 5000) == scheduler_config::kMinStallChunk);
  CHECK(c.stall_chunk(131072, 3) == 3);
}

TEST_CASE("prefill_stall_pairs bounds a long prompt's chunks while others decode, not alone",
          "[scheduler]") {
  block_manager bm(1024, 16);
  scheduler_config c;
  c.max_num_batched_tokens = 2048;
  c.prefill_stall_pairs = 200'000;
  scheduler sched(c, bm);

  // Alone, the prompt reads at the full budget.
  auto alone = stall_seq(1, 3000, 1);
  sched.add(alone);
  CHECK(stall_tokens_of(stall_step(sched), alone) == 2048);
  CHECK(stall_tokens_of(stall_step(sched), alone) == 952);
  while (!sched.idle()) stall_step(sched);
  CHECK(sched.num_stall_bounded_chunks() == 0);

  // Two decoding streams, then a long prompt: its chunks stay under the bound and get
  // shorter as its context grows; the streams decode every step.
  auto a = stall_seq(2, 4, 1000), b = stall_seq(3, 4, 1000);  // decoding throughout
  sched.add(a);
  sched.add(b);
  stall_step(sched);  // their prefill
  auto longp = stall_seq(4, 6000, 1);
  sched.add(longp);
  size_t last = 1 << 30, steps = 0;
  while (longp->status != sequence_status::finished && steps < 1000) {
    const size_t computed = longp->num_computed;
    auto s = stall_step(sched);
    ++steps;
    CHECK(stall_tokens_of(s, a) == 1);
    CHECK(stall_tokens_of(s, b) == 1);
    const size_t n = stall_tokens_of(s, longp);
    REQUIRE(n > 0);
    INFO("chunk at " << computed << ": " << n);
    if (n > scheduler_config::kMinStallChunk && computed + n < 6000)
      CHECK(chunk_pairs(computed, n) <= 200'000.0L);
    if (computed + n < 6000) CHECK(n <= last);  // never longer as the context grows
    last = n;
  }
  CHECK(longp->num_output_tokens() == 1);  // read to the end, then its one token
  CHECK(sched.num_stall_bounded_chunks() > 3);
  CHECK(steps > 3);  // 6,000 tokens at 2,048 a step would take 3
}

TEST_CASE("under prefill_stall_pairs a long prompt leaves room for a new one to start",
          "[scheduler]") {
  for (const int64_t pairs : {int64_t{0}, int64_t{100'000}}) {
    INFO("prefill_stall_pairs " << pairs);
    block_manager bm(1024, 16);
    scheduler_config c;
    c.max_num_batched_tokens = 512;
    c.prefill_stall_pairs = pairs;
    scheduler sched(c, bm);
    auto longp = stall_seq(1, 8000, 1);
    sched.add(longp);
    // Alone, the prompt reads at the full budget (no decodes, nothing waiting).
    CHECK(stall_tokens_of(stall_step(sched), longp) == 512);
    CHECK(stall_tokens_of(stall_step(sched), longp) == 512);
    auto late = stall_seq(2, 40);
    sched.add(late);
    const auto s = stall_step(sched);
    if (pairs == 0) {
      // The prompt takes the whole step; the new one waits until it is read.
      CHECK(stall_tokens_of(s, longp) == 512);
      CHECK(stall_tokens_of(s, late) == 0);
    } else {
      // At 1,024 read tokens the chunk is 93 (93 * 1,024 + 93 * 94 / 2 = 99,603), and the
      // new prompt is read whole in the same step.
      CHECK(stall_tokens_of(s, longp) == 93);
      CHECK(stall_tokens_of(s, late) == 40);
    }
  }
}

TEST_CASE("prefill_stall_pairs must not be negative", "[scheduler]") {
  conclave::config::engine_config e;
  e.scheduler.prefill_stall_pairs = -1;
  CHECK(e.validate() == "prefill_stall_pairs must be >= 0");
  e.scheduler.prefill_stall_pairs = 0;
  CHECK(e.validate().empty());
}
