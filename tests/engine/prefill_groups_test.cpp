// prefill_groups: the choices of one prompt wait for the first one's prefill, then meet
// it in the prefix cache; held choices can be aborted; a leader that ends early lets
// them go. Plain-class cases, then llm_engine on the CPU backend.
#include <catch2/catch.hpp>
#include <map>

#include "engine/llm_engine.h"
#include "engine/prefill_groups.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"
#include "tests/tiny_moe.h"

using namespace conclave;

namespace {

std::shared_ptr<engine::sequence> member(int64_t id, uint64_t group, size_t prompt_len = 10) {
  engine::sampling_params sp;
  sp.prefill_group = group;
  return std::make_shared<engine::sequence>(id, std::vector<int32_t>(prompt_len, 1), sp);
}

engine::llm_engine make_engine(bool prefix = true) {
  config::engine_config cfg;
  cfg.backend.num_kv_blocks = 128;
  cfg.backend.block_size = 4;
  cfg.scheduler.max_num_batched_tokens = 64;
  cfg.scheduler.enable_prefix_caching = prefix;
  return engine::llm_engine(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
}

std::vector<int32_t> prompt(size_t n) {
  std::vector<int32_t> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>((i * 131 + 17) % 8192);
  return p;
}

engine::sampling_params choice(uint64_t seed, uint64_t group) {
  engine::sampling_params sp;
  sp.temperature = 0.9f;
  sp.max_tokens = 8;
  sp.ignore_eos = true;
  sp.seed = seed;
  sp.prefill_group = group;
  return sp;
}

/// Runs until idle; each request's tokens by id.
std::map<int64_t, std::vector<int32_t>> drain(engine::llm_engine& eng) {
  std::map<int64_t, std::vector<int32_t>> out;
  while (eng.has_work()) {
    for (const auto& e : eng.step()) out[e.id].push_back(e.token);
  }
  return out;
}

}  // namespace

TEST_CASE("prefill_groups holds a group's later members until its leader's prompt is computed",
          "[engine][prefill_group]") {
  engine::prefill_groups g;
  auto lead = member(1, 5), second = member(2, 5), third = member(3, 5), other = member(4, 0);
  CHECK_FALSE(g.hold(lead));   // the first leads
  CHECK_FALSE(g.hold(other));  // no group
  CHECK(g.hold(second));
  CHECK(g.hold(third));
  CHECK(g.num_held() == 2);
  CHECK(g.contains(2));
  CHECK(g.release().empty());  // nothing computed yet
  lead->rank = 1;
  lead->num_computed = 6;
  CHECK(g.release().empty());  // part of the prompt only
  lead->num_computed = 10;
  const auto out = g.release();
  REQUIRE(out.size() == 2);
  CHECK(out[0]->id() == 2);
  CHECK(out[1]->id() == 3);
  CHECK(out[0]->preferred_rank == 1);
  CHECK(g.num_held() == 0);
  // The group is forgotten: a late member leads afresh.
  CHECK_FALSE(g.hold(member(9, 5)));
}

TEST_CASE(
    "prefill_groups: a held member can be dropped, and a leader that ends early frees "
    "the rest",
    "[engine][prefill_group]") {
  engine::prefill_groups g;
  auto lead = member(1, 8), a = member(2, 8), b = member(3, 8);
  CHECK_FALSE(g.hold(lead));
  CHECK(g.hold(a));
  CHECK(g.hold(b));
  CHECK(g.drop(2));
  CHECK(a->finish == engine::finish_reason::aborted);
  CHECK_FALSE(g.drop(2));
  lead->status = engine::sequence_status::finished;  // aborted before any prefill
  const auto out = g.release();
  REQUIRE(out.size() == 1);
  CHECK(out[0]->id() == 3);
  CHECK(out[0]->preferred_rank == -1);  // nothing of the prompt is cached
}

TEST_CASE(
    "n choices of one prompt: one prefill, the others from the prefix cache, each "
    "choice the tokens of its seed",
    "[engine][prefill_group]") {
  const auto p = prompt(22);
  auto eng = make_engine();
  std::vector<int64_t> ids;
  for (uint64_t i = 0; i < 4; ++i) ids.push_back(eng.add_request(p, choice(40 + i, 123)));
  CHECK(eng.stats().num_waiting == 4);  // one queued, three held
  const auto out = drain(eng);
  const auto s = eng.stats();
  // 22 tokens for the first; the others find 20 (5 full blocks of 4) cached and compute
  // the 2 of their last block.
  CHECK(s.prompt_tokens_computed == 22 + 3 * 2);
  CHECK(s.prefix_hit_tokens == 3 * 20);
  CHECK(s.kv_blocks_free == s.kv_blocks_total);
  // Each choice is what its seed gives alone, without the group.
  for (uint64_t i = 0; i < 4; ++i) {
    auto alone = make_engine(false);
    CHECK(alone.generate(p, choice(40 + i, 0)) == out.at(ids[i]));
  }
  CHECK(out.at(ids[0]) != out.at(ids[1]));  // the seeds differ, so do the choices
}

TEST_CASE("n choices: aborting the first before its prefill lets the rest run",
          "[engine][prefill_group]") {
  const auto p = prompt(13);
  auto eng = make_engine();
  const int64_t first = eng.add_request(p, choice(1, 9));
  const int64_t second = eng.add_request(p, choice(2, 9));
  const int64_t third = eng.add_request(p, choice(3, 9));
  CHECK(eng.abort(second));  // held: dropped
  CHECK(eng.abort(first));   // the leader: the held third is queued
  const auto out = drain(eng);
  CHECK(out.count(first) == 0);
  CHECK(out.count(second) == 0);
  REQUIRE(out.count(third) == 1);
  CHECK(out.at(third).size() == 8);
  CHECK(eng.stats().prompt_tokens_computed == 13);
}
