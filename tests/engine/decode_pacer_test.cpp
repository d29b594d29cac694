// decode_pacer and the scheduler under decode_slowdown: after a step with a prompt chunk
// next to decodes, decode-only steps run until the decoders' mean step is back at the
// chosen multiple of their quiet step. Steps are timed by a fake clock.
#include <catch2/catch.hpp>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "config/engine_config.h"
#include "engine/decode_pacer.h"
#include "engine/scheduler.h"
#include "tests/engine/iota_tokens.h"

using namespace conclave::engine;
using conclave::config::scheduler_config;
using kind = decode_pacer::step_kind;

namespace {

std::shared_ptr<sequence> paced_seq(int64_t id, size_t prompt_len, int32_t max_tokens) {
  sampling_params p;
  p.max_tokens = max_tokens;
  return std::make_shared<sequence>(
      id, conclave::test::iota_tokens(prompt_len, static_cast<int32_t>(id) * 100), p);
}

size_t paced_tokens_of(const std::vector<scheduled>& s, const std::shared_ptr<sequence>& seq) {
  for (const auto& e : s)
    if (e.seq == seq) return e.num_tokens;
  return 0;
}

}  // namespace

TEST_CASE("decode_pacer: off, or a slowdown above 1", "[scheduler][pacer]") {
  CHECK_FALSE(decode_pacer().enabled());
  CHECK(decode_pacer(1.5).enabled());
  for (double bad : {1.0, 0.5, -2.0}) CHECK_THROWS_AS(decode_pacer(bad), std::invalid_argument);
  scheduler_config c;
  CHECK(c.decode_slowdown == 0);  // off unless asked for
  conclave::config::engine_config e;
  e.scheduler.decode_slowdown = 1.0;
  CHECK(e.validate().find("decode_slowdown") != std::string::npos);
  e.scheduler.decode_slowdown = 1.5;
  CHECK(e.validate().empty());
}

TEST_CASE("decode_pacer: a busy step is followed by quiet ones until the mean is back",
          "[scheduler][pacer]") {
  double now = 0;
  decode_pacer p(1.5, [&] { return now; });
  // Drives one step of `k` lasting `dt` seconds; returns whether chunks were allowed in it.
  auto step = [&](kind k, double dt) {
    p.close_step();
    const bool allowed = p.allows_chunks();
    p.open_step(k, k == kind::quiet && !allowed);
    now += dt;
    return allowed;
  };
  // Before any quiet step is timed the first busy step goes; then one quiet step is
  // needed to learn the pace, and the busy one is charged against it.
  CHECK(step(kind::busy, 3.0));
  CHECK_FALSE(step(kind::quiet, 1.0));  // held: no quiet pace known yet
  p.close_step();
  CHECK(p.quiet_seconds() == Approx(1.0));
  // Debt: busy 3 - 1.5 = 1.5, quiet 1 - 1.5 = -0.5: 1.0 left, two more quiet steps.
  CHECK(p.debt_seconds() == Approx(1.0));
  CHECK_FALSE(p.allows_chunks());
  p.open_step(kind::quiet, true);
  now += 1.0;
  CHECK_FALSE(step(kind::quiet, 1.0));
  CHECK(step(kind::busy, 3.0));  // debt 0: a chunk goes
  // Over the cycle of one busy and three quiet steps the mean is 6 / 4 = 1.5.
  for (int i = 0; i < 3; ++i) CHECK_FALSE(step(kind::quiet, 1.0));
  CHECK(step(kind::busy, 3.0));
  CHECK(p.held_steps() == 6);
  // Steps that do not decode are not paced and do not count.
  CHECK_FALSE(step(kind::other, 50.0));  // (still owes for the busy step)
  p.close_step();
  CHECK(p.debt_seconds() == Approx(1.5));
  // Quiet stretches bank no credit: after many quiet steps one busy step still costs.
  p.open_step(kind::quiet, false);
  now += 1.0;
  for (int i = 0; i < 20; ++i) step(kind::quiet, 1.0);
  p.close_step();
  CHECK(p.debt_seconds() == 0);
  CHECK(p.allows_chunks());
  // Time with no step open (an idle engine) is nobody's: the quiet pace stays.
  const double quiet = p.quiet_seconds();
  now += 1000;
  p.close_step();
  CHECK(p.quiet_seconds() == quiet);
  p.open_step(kind::busy, false);
  now += 3 * quiet;
  p.close_step();
  CHECK(p.debt_seconds() == Approx(1.5 * quiet));
}

TEST_CASE("decode_pacer off: chunks always allowed, nothing counted", "[scheduler][pacer]") {
  double now = 0;
  decode_pacer p(0, [&] { return now; });
  for (int i = 0; i < 10; ++i) {
    p.close_step();
    CHECK(p.allows_chunks());
    p.open_step(kind::busy, false);
    now += 100;
  }
  CHECK(p.held_steps() == 0);
  CHECK(p.quiet_seconds() == 0);
}

TEST_CASE("scheduler under decode_slowdown: decoders keep their pace, the prompt still ends",
          "[scheduler][pacer]") {
  for (const double slowdown : {0.0, 1.5, 3.0}) {
    INFO("decode_slowdown " << slowdown);
    block_manager bm(2048, 16);
    scheduler_config c;
    c.max_num_batched_tokens = 256;
    c.prefill_stall_pairs = 0;  // chunks of the whole budget: the pacer alone paces
    scheduler sched(c, bm);
    // A step lasts 1 s for the decoders plus 1 s for any prompt chunk in it.
    double now = 0;
    sched.set_decode_pacing(slowdown, [&] { return now; });
    auto a = paced_seq(1, 4, 4000), b = paced_seq(2, 4, 4000);
    sched.add(a);
    sched.add(b);
    std::vector<double> decoder_steps;  // the decoders' step times while the prompt is read
    auto run = [&](bool record) {
      auto s = sched.schedule();
      const bool chunk = std::any_of(
          s.begin(), s.end(), [](const scheduled& w) { return w.seq->num_uncomputed() > 1; });
      const double dt = 1.0 + (chunk ? 1.0 : 0.0);
      now += dt;
      std::vector<int32_t> sampled(s.size(), 7);
      sched.postprocess(s, sampled, {}, 1 << 20);
      if (record) {
        CHECK(paced_tokens_of(s, a) == 1);  // the decoders run every step
        CHECK(paced_tokens_of(s, b) == 1);
        decoder_steps.push_back(dt);
      }
      return s;
    };
    for (int i = 0; i < 5; ++i) run(false);  // their prompts, then quiet decoding
    auto longp = paced_seq(3, 254 * 30, 1);  // chunks of 254 next to the two decodes
    sched.add(longp);
    size_t steps = 0, chunks = 0;
    while (longp->status != sequence_status::finished && steps < 2000) {
      const auto s = run(true);
      if (paced_tokens_of(s, longp) > 0) ++chunks;
      ++steps;
    }
    REQUIRE(longp->num_output_tokens() == 1);  // read to the end
    CHECK(chunks == 30);                       // whole-budget chunks either way
    const double mean =
        std::accumulate(decoder_steps.begin(), decoder_steps.end(), 0.0) / decoder_steps.size();
    if (slowdown == 0) {
      CHECK(steps == 30);  // a chunk in every step: the decoders at 2x
      CHECK(mean == Approx(2.0));
      CHECK(sched.num_paced_steps() == 0);
    } else {
      // Each 2 s chunked step owes 2 - slowdown, each 1 s quiet one repays slowdown - 1:
      // at 1.5 one quiet step follows each chunk; at 3 a chunk never owes.
      CHECK(mean <= slowdown + 0.05);
      CHECK(mean >= std::min(slowdown, 2.0) - 0.1);
      CHECK(sched.num_paced_steps() == steps - 30);
      CHECK(steps == (slowdown == 1.5 ? 59u : 30u));
    }
  }
}

TEST_CASE("scheduler under decode_slowdown holds admissions back too, not forever",
          "[scheduler][pacer]") {
  block_manager bm(1024, 16);
  scheduler_config c;
  c.max_num_batched_tokens = 512;
  scheduler sched(c, bm);
  double now = 0;
  sched.set_decode_pacing(2.0, [&] { return now; });
  auto a = paced_seq(1, 4, 1000);
  sched.add(a);
  auto step = [&](double dt) {
    auto s = sched.schedule();
    now += dt;
    std::vector<int32_t> sampled(s.size(), 7);
    sched.postprocess(s, sampled, {}, 1 << 20);
    return s;
  };
  step(1.0);  // a's prompt: no decodes, not paced
  step(1.0);  // a decodes: the quiet pace is 1 s
  step(1.0);
  auto p1 = paced_seq(2, 40, 1);
  sched.add(p1);
  CHECK(paced_tokens_of(step(5.0), p1) == 40);  // admitted; the step took 5 s (owes 3)
  auto p2 = paced_seq(3, 40, 1);
  sched.add(p2);
  // Three quiet steps (1 s each repays 1) before p2 is admitted.
  for (int i = 0; i < 3; ++i) {
    const auto s = step(1.0);
    CHECK(paced_tokens_of(s, a) == 1);
    CHECK(paced_tokens_of(s, p2) == 0);
  }
  CHECK(paced_tokens_of(step(1.0), p2) == 40);
  CHECK(sched.num_paced_steps() == 3);
}
