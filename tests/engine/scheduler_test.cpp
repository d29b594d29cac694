// scheduler: steps simulated without a model (schedule, then postprocess with made-up
// sampled tokens): prefill, chunking, admission, stop rules, preemption, abort.
#include <catch2/catch.hpp>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "config/engine_config.h"
#include "engine/scheduler.h"
#include "tests/engine/iota_tokens.h"

using namespace conclave::engine;
using conclave::config::scheduler_config;

namespace {

using tokens = std::vector<int32_t>;

using conclave::test::iota_tokens;

std::shared_ptr<sequence> make_seq(int64_t id, size_t prompt_len, int32_t max_tokens = 16) {
  sampling_params p;
  p.max_tokens = max_tokens;
  return std::make_shared<sequence>(id, iota_tokens(prompt_len, static_cast<int32_t>(id) * 100), p);
}

scheduler_config cfg(int32_t max_num_seqs = 64, int32_t max_num_batched_tokens = 2048) {
  scheduler_config c;
  c.max_num_seqs = max_num_seqs;
  c.max_num_batched_tokens = max_num_batched_tokens;
  return c;
}

/// The token a fake model samples: 5000 + 10 * id + (outputs so far), never an eos/stop id
/// used below unless `forced` overrides it.
int32_t fake_token(const sequence& s) {
  return 5000 + 10 * static_cast<int32_t>(s.id()) + static_cast<int32_t>(s.num_output_tokens());
}

struct step_result {
  std::vector<scheduled> step;
  std::vector<bool> samples;  ///< step[i].samples() before postprocess moved num_computed
  std::vector<std::shared_ptr<sequence>> done;
};

step_result run_step(scheduler& sched, const tokens& eos = {}, size_t max_model_len = 1 << 20,
                     int32_t forced = -1) {
  step_result r;
  r.step = sched.schedule();
  tokens sampled;
  for (const auto& e : r.step) {
    r.samples.push_back(e.samples());
    sampled.push_back(forced >= 0 ? forced : fake_token(*e.seq));
  }
  r.done = sched.postprocess(r.step, sampled, eos, max_model_len);
  return r;
}

}  // namespace

TEST_CASE("a single sequence: whole-prompt prefill, then one token per step", "[scheduler]") {
  block_manager bm(16, 4);
  scheduler sched(cfg(), bm);
  CHECK(sched.idle());
  CHECK(sched.schedule().empty());
  auto s = make_seq(1, 6, 3);
  sched.add(s);
  CHECK(sched.num_waiting() == 1);
  CHECK(s->status == sequence_status::waiting);

  auto r = run_step(sched);
  REQUIRE(r.step.size() == 1);
  CHECK(r.step[0].seq == s);
  CHECK(r.step[0].num_tokens == 6);
  CHECK(s->status == sequence_status::running);
  CHECK(sched.num_running() == 1);
  CHECK(sched.num_waiting() == 0);
  CHECK(r.done.empty());
  CHECK(s->num_computed == 6);
  CHECK(s->size() == 7);
  CHECK(s->last_token() == 5010);
  CHECK(bm.num_free_blocks() == 14);

  for (size_t k = 0; k < 2; ++k) {
    const auto before = s->num_computed;
    auto st = sched.schedule();
    REQUIRE(st.size() == 1);
    CHECK(st[0].num_tokens == 1);
    CHECK(st[0].samples());
    CHECK(st[0].seq->num_computed == before);
    const tokens sampled = {fake_token(*s)};
    r.done = sched.postprocess(st, sampled, {}, 1000);
    if (s->status == sequence_status::running) CHECK(s->num_computed == before + 1);
  }
  REQUIRE(r.done.size() == 1);
  CHECK(r.done[0] == s);
  CHECK(s->status == sequence_status::finished);
  CHECK(s->finish == finish_reason::length);
  CHECK(s->num_output_tokens() == 3);
  CHECK(std::vector<int32_t>(s->output().begin(), s->output().end()) == tokens{5010, 5011, 5012});
  CHECK(sched.idle());
  CHECK(bm.num_free_blocks() == 16);
  CHECK(s->block_table.empty());
}

TEST_CASE("chunked prefill splits a long prompt over the token budget", "[scheduler]") {
  block_manager bm(16, 4);
  scheduler sched(cfg(64, 4), bm);
  auto s = make_seq(1, 10, 2);
  sched.add(s);
  const std::vector<size_t> chunks = {4, 4, 2};
  for (size_t i = 0; i < chunks.size(); ++i) {
    INFO("step " << i);
    auto st = sched.schedule();
    REQUIRE(st.size() == 1);
    CHECK(st[0].num_tokens == chunks[i]);
    CHECK(st[0].samples() == (i + 1 == chunks.size()));
    const tokens sampled = {777};  // ignored where the step does not sample
    CHECK(sched.postprocess(st, sampled, {}, 1000).empty());
    CHECK(s->size() == (i + 1 == chunks.size() ? 11u : 10u));
  }
  CHECK(s->num_computed == 10);
  CHECK(s->last_token() == 777);
  auto r = run_step(sched);
  REQUIRE(r.step.size() == 1);
  CHECK(r.step[0].num_tokens == 1);
  REQUIRE(r.done.size() == 1);
  CHECK(s->finish == finish_reason::length);
  CHECK(bm.num_free_blocks() == 16);
}

TEST_CASE("max_num_seqs limits admitted sequences", "[scheduler]") {
  block_manager bm(32, 4);
  scheduler sched(cfg(2), bm);
  auto a = make_seq(1, 3, 2), b = make_seq(2, 3, 5), c = make_seq(3, 3, 1);
  sched.add(a);
  sched.add(b);
  sched.add(c);
  auto r = run_step(sched);
  REQUIRE(r.step.size() == 2);
  CHECK(r.step[0].seq == a);
  CHECK(r.step[1].seq == b);
  CHECK(sched.num_running() == 2);
  CHECK(sched.num_waiting() == 1);
  CHECK(c->status == sequence_status::waiting);

  r = run_step(sched);  // a finishes (2 tokens)
  CHECK(r.step.size() == 2);
  REQUIRE(r.done.size() == 1);
  CHECK(r.done[0] == a);
  r = run_step(sched);  // c admitted: b decodes, c prefills and finishes (1 token)
  REQUIRE(r.step.size() == 2);
  CHECK(r.step[0].seq == b);
  CHECK(r.step[1].seq == c);
  CHECK(r.step[1].num_tokens == 3);
  REQUIRE(r.done.size() == 1);
  CHECK(r.done[0] == c);
}

TEST_CASE("running sequences are scheduled before waiting ones", "[scheduler]") {
  block_manager bm(32, 4);
  scheduler sched(cfg(64, 5), bm);
  auto a = make_seq(1, 3), b = make_seq(2, 8);
  sched.add(a);
  run_step(sched);  // a prefilled
  sched.add(b);
  auto r = run_step(sched);
  REQUIRE(r.step.size() == 2);
  CHECK(r.step[0].seq == a);
  CHECK(r.step[0].num_tokens == 1);
  CHECK(r.step[1].seq == b);
  CHECK(r.step[1].num_tokens == 4);  // what the budget leaves
  CHECK_FALSE(r.samples[1]);
  r = run_step(sched);
  REQUIRE(r.step.size() == 2);
  CHECK(r.step[0].seq == a);
  CHECK(r.step[1].seq == b);
  CHECK(r.step[1].num_tokens == 4);
  CHECK(r.samples[1]);
  CHECK(b->num_output_tokens() == 1);

  SECTION("a budget used up by running sequences admits nothing") {
    auto c = make_seq(3, 2);
    scheduler tight(cfg(64, 1), bm);
    auto d = make_seq(4, 1);
    tight.add(d);
    run_step(tight);  // d prefilled with its single token
    tight.add(c);
    auto st = run_step(tight);
    REQUIRE(st.step.size() == 1);
    CHECK(st.step[0].seq == d);
    CHECK(tight.num_waiting() == 1);
  }
}

TEST_CASE("sequences finish by max_tokens, stop ids, eos and max_model_len", "[scheduler]") {
  block_manager bm(32, 4);
  scheduler sched(cfg(), bm);
  const tokens eos = {2};

  SECTION("max_tokens") {
    auto s = make_seq(1, 4, 2);
    sched.add(s);
    CHECK(run_step(sched, eos).done.empty());
    auto r = run_step(sched, eos);
    REQUIRE(r.done.size() == 1);
    CHECK(s->finish == finish_reason::length);
    CHECK(s->num_output_tokens() == 2);
  }
  SECTION("a stop token id") {
    sampling_params p;
    p.stop_token_ids = {42, 43};
    auto s = std::make_shared<sequence>(1, tokens{7, 8, 9}, p);
    sched.add(s);
    CHECK(run_step(sched, eos).done.empty());
    auto r = run_step(sched, eos, 1 << 20, 43);
    REQUIRE(r.done.size() == 1);
    CHECK(s->finish == finish_reason::stop);
    CHECK(s->last_token() == 43);  // the stop token is kept in the output
    CHECK(s->num_output_tokens() == 2);
  }
  SECTION("stop wins over length when both apply") {
    auto s = make_seq(1, 3, 1);
    sched.add(s);
    auto r = run_step(sched, eos, 1 << 20, 2);
    REQUIRE(r.done.size() == 1);
    CHECK(s->finish == finish_reason::stop);
  }
  SECTION("eos, unless ignore_eos") {
    auto s = make_seq(1, 3);
    sampling_params p;
    p.ignore_eos = true;
    p.max_tokens = 3;
    auto t = std::make_shared<sequence>(2, tokens{7, 8, 9}, p);
    sched.add(s);
    sched.add(t);
    auto r = run_step(sched, eos, 1 << 20, 2);
    REQUIRE(r.done.size() == 1);
    CHECK(r.done[0] == s);
    CHECK(s->finish == finish_reason::stop);
    CHECK(t->status == sequence_status::running);
    run_step(sched, eos, 1 << 20, 2);
    r = run_step(sched, eos, 1 << 20, 2);
    REQUIRE(r.done.size() == 1);
    CHECK(t->finish == finish_reason::length);
    CHECK(t->num_output_tokens() == 3);
  }
  SECTION("max_model_len") {
    auto s = make_seq(1, 6, 100);
    sched.add(s);
    CHECK(run_step(sched, eos, 8).done.empty());
    auto r = run_step(sched, eos, 8);
    REQUIRE(r.done.size() == 1);
    CHECK(s->finish == finish_reason::length);
    CHECK(s->size() == 8);
  }
  CHECK(sched.idle());
  CHECK(bm.num_free_blocks() == 32);
}

TEST_CASE("with a tiny cache the newest sequence is preempted and later completes", "[scheduler]") {
  const bool caching = GENERATE(false, true);
  INFO("prefix caching " << caching);
  block_manager bm(4, 2, caching);
  scheduler sched(cfg(), bm);
  auto a = make_seq(1, 3, 4), b = make_seq(2, 3, 4);
  sched.add(a);
  sched.add(b);
  auto r = run_step(sched);  // both prefill: 2 blocks each, the cache is full
  CHECK(r.step.size() == 2);
  CHECK(bm.num_free_blocks() == 0);
  r = run_step(sched);  // both decode their 4th token, still in 2 blocks
  CHECK(r.step.size() == 2);
  CHECK(a->size() == 5);
  CHECK(b->size() == 5);
  CHECK(sched.num_preemptions() == 0);

  r = run_step(sched);  // a needs a third block: b goes
  REQUIRE(r.step.size() == 1);
  CHECK(r.step[0].seq == a);
  CHECK(sched.num_preemptions() == 1);
  CHECK(b->status == sequence_status::waiting);
  CHECK(b->num_computed == 0);
  CHECK(b->block_table.empty());
  CHECK(b->num_output_tokens() == 2);  // its tokens are kept for recomputation
  CHECK(sched.num_waiting() == 1);
  CHECK(sched.num_running() == 1);

  r = run_step(sched);  // a's last token
  REQUIRE(r.done.size() == 1);
  CHECK(r.done[0] == a);
  CHECK(a->finish == finish_reason::length);

  // b is readmitted and recomputes prompt + outputs. With prefix caching its first block
  // (computed before the preemption, freed but not yet overwritten) is a hit; its second
  // was handed to a when a grew.
  r = run_step(sched);
  REQUIRE(r.step.size() == 1);
  CHECK(r.step[0].seq == b);
  CHECK(r.step[0].num_tokens == (caching ? 3u : 5u));
  CHECK(b->num_output_tokens() == 3);
  size_t steps = 0;
  while (!sched.idle() && steps++ < 10) run_step(sched);
  CHECK(sched.idle());
  CHECK(b->finish == finish_reason::length);
  CHECK(std::vector<int32_t>(b->output().begin(), b->output().end()) ==
        tokens{5020, 5021, 5022, 5023});
  CHECK(std::vector<int32_t>(a->output().begin(), a->output().end()) ==
        tokens{5010, 5011, 5012, 5013});
  CHECK(bm.num_free_blocks() == 4);
  CHECK(sched.num_preemptions() == 1);
}

TEST_CASE("abort frees a waiting or running sequence", "[scheduler]") {
  block_manager bm(8, 4);
  scheduler sched(cfg(1), bm);
  auto a = make_seq(1, 5), b = make_seq(2, 3);
  sched.add(a);
  sched.add(b);
  run_step(sched);  // a runs, b waits (max_num_seqs 1)
  CHECK(bm.num_free_blocks() == 6);
  CHECK_FALSE(sched.abort(99));

  CHECK(sched.abort(2));
  CHECK(b->status == sequence_status::finished);
  CHECK(b->finish == finish_reason::aborted);
  CHECK(sched.num_waiting() == 0);
  CHECK_FALSE(sched.abort(2));

  CHECK(sched.abort(1));
  CHECK(a->status == sequence_status::finished);
  CHECK(a->finish == finish_reason::aborted);
  CHECK(a->block_table.empty());
  CHECK(bm.num_free_blocks() == 8);
  CHECK(sched.idle());

  SECTION("abort between schedule and postprocess") {
    auto c = make_seq(3, 4);
    sched.add(c);
    auto st = sched.schedule();
    REQUIRE(st.size() == 1);
    CHECK(sched.abort(3));
    const tokens sampled = {9};
    CHECK(sched.postprocess(st, sampled, {}, 1000).empty());
    CHECK(c->finish == finish_reason::aborted);
    CHECK(c->num_output_tokens() == 0);
    CHECK(bm.num_free_blocks() == 8);
    CHECK(sched.idle());
  }
}

TEST_CASE("add refuses a sequence larger than the whole cache", "[scheduler]") {
  block_manager bm(4, 2);
  scheduler sched(cfg(), bm);
  CHECK_THROWS_AS(sched.add(make_seq(1, 9, 1)), std::invalid_argument);
  CHECK(sched.idle());
  CHECK_NOTHROW(sched.add(make_seq(2, 7, 1)));  // 7 + 1 tokens: exactly the cache
  CHECK(sched.num_waiting() == 1);
}

TEST_CASE("a sequence that outgrows the whole cache does not leave the scheduler stuck",
          "[scheduler]") {
  // schedule() promises an empty step only when idle, relying on add() to refuse what can
  // never fit. A sequence whose prompt fits but whose prompt + max_tokens does not (3 + 10
  // tokens, 4 blocks of 2) must either be refused by add() or end; it must not preempt
  // itself forever while schedule() returns nothing. add() refuses it, naming the numbers.
  block_manager bm(4, 2);
  scheduler sched(cfg(), bm);
  bool refused = false;
  try {
    sched.add(make_seq(1, 3, 10));
  } catch (const std::invalid_argument& e) {
    refused = true;
    CHECK_THAT(e.what(), Catch::Contains("13 tokens need 7 KV blocks but the whole cache holds 4"));
  }
  CHECK(refused);
  sched.add(make_seq(2, 3, 5));  // 8 tokens: exactly the cache
  CHECK(sched.num_waiting() == 1);
  size_t steps = 0;
  bool stuck = false;
  while (!sched.idle() && steps++ < 50) {
    if (run_step(sched).step.empty()) {
      stuck = true;
      break;
    }
  }
  INFO("steps " << steps << ", waiting " << sched.num_waiting() << ", preemptions "
                << sched.num_preemptions());
  CHECK_FALSE(stuck);
  CHECK(sched.idle());
}

TEST_CASE("with a host pool the newest sequence is offloaded, not recomputed",
          "[scheduler][offload]") {
  block_manager bm(4, 2, true, /*num_host_blocks=*/4);
  scheduler sched(cfg(), bm);
  auto a = make_seq(1, 3, 4), b = make_seq(2, 3, 4);
  sched.add(a);
  sched.add(b);
  run_step(sched);  // both prefill: 2 blocks each, the cache is full
  run_step(sched);  // both decode their 4th token, still in 2 blocks
  const auto b_blocks = b->block_table;

  auto r = run_step(sched);  // a needs a third block: b is offloaded
  REQUIRE(r.step.size() == 1);
  CHECK(r.step[0].seq == a);
  CHECK(sched.num_preemptions() == 0);
  CHECK(sched.num_swap_outs() == 1);
  CHECK(b->status == sequence_status::swapped);
  CHECK(b->num_computed == 4);  // kept: its keys and values are on the host
  CHECK(b->block_table.empty());
  REQUIRE(b->host_table.size() == 2);
  CHECK(bm.num_free_host_blocks() == 2);
  // The step's copies: b's two computed blocks to the host, nothing back yet.
  REQUIRE(sched.transfers().size() == 1);
  const auto& out = sched.transfers()[0].to_host;
  REQUIRE(out.size() == 2);
  CHECK(out[0] == conclave::gpu::kv_block_copy{b_blocks[0], b->host_table[0]});
  CHECK(out[1] == conclave::gpu::kv_block_copy{b_blocks[1], b->host_table[1]});
  CHECK(sched.transfers()[0].to_device.empty());
  CHECK(sched.num_waiting() == 1);
  CHECK(sched.num_swapped() == 1);

  r = run_step(sched);  // a's last token; b cannot come back yet
  REQUIRE(r.done.size() == 1);
  CHECK(r.done[0] == a);
  CHECK(sched.transfers()[0].empty());

  // b comes back: its two blocks are copied to the device and only its last token runs.
  const auto host = b->host_table;
  r = run_step(sched);
  REQUIRE(r.step.size() == 1);
  CHECK(r.step[0].seq == b);
  CHECK(r.step[0].num_tokens == 1);
  CHECK(sched.num_swap_ins() == 1);
  const auto& in = sched.transfers()[0].to_device;
  REQUIRE(in.size() == 2);
  CHECK(in[0] == conclave::gpu::kv_block_copy{b->block_table[0], host[0]});
  CHECK(in[1] == conclave::gpu::kv_block_copy{b->block_table[1], host[1]});
  CHECK(b->host_table.empty());
  // The host blocks read by this step's copies are free only once the step has run.
  CHECK(bm.num_free_host_blocks() == 2);
  size_t steps = 0;
  while (!sched.idle() && steps++ < 10) run_step(sched);
  CHECK(bm.num_free_host_blocks() == 4);
  CHECK(std::vector<int32_t>(b->output().begin(), b->output().end()) ==
        tokens{5020, 5021, 5022, 5023});
  CHECK(sched.blocks_swapped_out() == 2);
  CHECK(sched.blocks_swapped_in() == 2);
  CHECK(bm.num_free_blocks() == 4);
}

TEST_CASE("a full host pool falls back to recomputation", "[scheduler][offload]") {
  block_manager bm(4, 2, true, /*num_host_blocks=*/1);  // b's two blocks do not fit
  scheduler sched(cfg(), bm);
  auto a = make_seq(1, 3, 4), b = make_seq(2, 3, 4);
  sched.add(a);
  sched.add(b);
  for (int i = 0; i < 3; ++i) run_step(sched);
  CHECK(sched.num_swap_outs() == 0);
  CHECK(sched.num_preemptions() == 1);
  CHECK(b->status == sequence_status::waiting);
  CHECK(b->host_table.empty());
  CHECK(sched.transfers()[0].empty());
}

TEST_CASE("aborting an offloaded sequence frees its host blocks", "[scheduler][offload]") {
  block_manager bm(4, 2, true, 4);
  scheduler sched(cfg(), bm);
  auto a = make_seq(1, 3, 5), b = make_seq(2, 3, 5);
  sched.add(a);
  sched.add(b);
  for (int i = 0; i < 3; ++i) run_step(sched);
  REQUIRE(b->status == sequence_status::swapped);
  CHECK(bm.num_free_host_blocks() == 2);
  CHECK(sched.contains(2));
  CHECK(sched.abort(2));
  CHECK(b->finish == finish_reason::aborted);
  CHECK(bm.num_free_host_blocks() == 4);
  CHECK_FALSE(sched.contains(2));
  size_t steps = 0;
  while (!sched.idle() && steps++ < 20) run_step(sched);
  CHECK(sched.idle());
}

TEST_CASE("a long prompt read in chunks leaves every decoding stream its token", "[scheduler]") {
  block_manager bm(256, 16);
  scheduler sched(cfg(64, 16), bm);
  // Three short prompts first: they finish prefill in one step and decode from then on.
  for (int64_t id = 1; id <= 3; ++id) sched.add(make_seq(id, 3, 40));
  run_step(sched);
  // Then the long prompt, admitted after them: running sequences are served oldest first,
  // so its chunks take only what their decodes leave.
  auto big = make_seq(9, 200, 4);
  sched.add(big);
  size_t steps = 0;
  while (big->num_computed < big->num_prompt_tokens()) {
    const auto r = run_step(sched);
    size_t decodes = 0, chunk = 0;
    for (const auto& e : r.step) (e.seq == big ? chunk : decodes) += e.num_tokens;
    INFO("step " << steps);
    CHECK(decodes == 3);     // every stream decodes in every step
    CHECK(chunk <= 16 - 3);  // the prompt gets the rest of the budget
    ++steps;
  }
  CHECK(steps >= 200 / 13);
}
