// rank_assign and the scheduler over several ranks: admission spreads sequences, a
// sequence's blocks, preemptions and prefix hits stay within its rank.
#include <catch2/catch.hpp>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
#include <vector>

#include "engine/rank_assign.h"
#include "engine/scheduler.h"

using namespace conclave::engine;
using conclave::config::scheduler_config;

namespace {

using tokens = std::vector<int32_t>;

std::shared_ptr<sequence> make_seq(int64_t id, tokens prompt, int32_t max_tokens) {
  sampling_params p;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  return std::make_shared<sequence>(id, std::move(prompt), p);
}

tokens distinct(size_t n, int32_t first) {
  tokens t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

/// Two ranks of `blocks` blocks each.
struct two_ranks {
  block_manager r0, r1;
  scheduler sched;
  two_ranks(int32_t blocks, int32_t block_size, scheduler_config cfg = {})
      : r0(blocks, block_size), r1(blocks, block_size), sched(cfg, {&r0, &r1}) {}
  const block_manager& of(const sequence& s) const { return s.rank == 0 ? r0 : r1; }
};

std::vector<scheduled> run_step(scheduler& sched) {
  auto step = sched.schedule();
  tokens sampled;
  for (const auto& e : step)
    sampled.push_back(7000 + 10 * static_cast<int32_t>(e.seq->id()) +
                      static_cast<int32_t>(e.seq->num_output_tokens()));
  sched.postprocess(step, sampled, {}, 1 << 20);
  return step;
}

/// Without shared prefixes: each rank's used blocks are exactly its running sequences'.
void check_ownership(const two_ranks& t, const std::vector<std::shared_ptr<sequence>>& seqs) {
  int32_t used[2] = {0, 0};
  std::set<int32_t> seen[2];
  for (const auto& s : seqs) {
    if (s->status != sequence_status::running) {
      CHECK(s->block_table.empty());
      continue;
    }
    REQUIRE((s->rank == 0 || s->rank == 1));
    const block_manager& bm = t.of(*s);
    for (int32_t b : s->block_table) {
      REQUIRE(b >= 0);
      REQUIRE(b < bm.num_blocks());
      CHECK(bm.ref_count(b) == 1);
      CHECK(seen[s->rank].insert(b).second);  // no block held twice within a rank
    }
    used[s->rank] += static_cast<int32_t>(s->block_table.size());
  }
  CHECK(t.r0.num_blocks() - t.r0.num_free_blocks() == used[0]);
  CHECK(t.r1.num_blocks() - t.r1.num_free_blocks() == used[1]);
}

}  // namespace

TEST_CASE("assign_rank: most free blocks, then fewest running, then lowest id",
          "[engine][rank_assign]") {
  CHECK(assign_rank(std::vector<rank_load>{{10, 0}}) == 0);
  CHECK(assign_rank(std::vector<rank_load>{{10, 0}, {12, 5}, {11, 0}}) == 1);
  CHECK(assign_rank(std::vector<rank_load>{{10, 3}, {10, 2}, {10, 2}}) == 1);
  CHECK(assign_rank(std::vector<rank_load>{{4, 1}, {4, 1}}) == 0);
  CHECK(assign_rank(std::vector<rank_load>{{0, 0}, {0, 0}, {1, 9}}) == 2);
  CHECK_THROWS_AS(assign_rank({}), std::invalid_argument);
}

TEST_CASE("a scheduler needs ranks of one shape", "[engine][rank_assign]") {
  block_manager a(8, 4), b(8, 4), c(9, 4), d(8, 2);
  CHECK(scheduler({}, {&a, &b}).num_ranks() == 2);
  CHECK_THROWS_AS(scheduler({}, {&a, &c}), std::invalid_argument);
  CHECK_THROWS_AS(scheduler({}, {&a, &d}), std::invalid_argument);
  CHECK_THROWS_AS(scheduler({}, std::vector<block_manager*>{}), std::invalid_argument);
  CHECK_THROWS_AS(scheduler({}, {&a, nullptr}), std::invalid_argument);
}

TEST_CASE("two ranks: admission spreads sequences, each one's blocks stay on its rank",
          "[engine][rank_assign]") {
  two_ranks t(16, 4);
  std::vector<std::shared_ptr<sequence>> seqs;
  for (int64_t i = 0; i < 6; ++i) {
    seqs.push_back(make_seq(
        i + 1, distinct(3 + static_cast<size_t>(i), 100 * (static_cast<int32_t>(i) + 1)), 6));
    t.sched.add(seqs.back());
  }
  run_step(t.sched);
  std::vector<int32_t> ranks;
  for (const auto& s : seqs) ranks.push_back(s->rank);
  // 1 -> 0 (tie), 2 -> 1 (more free), 3 -> 0, then by free blocks.
  CHECK(ranks[0] == 0);
  CHECK(ranks[1] == 1);
  CHECK(ranks[2] == 0);
  CHECK(std::count(ranks.begin(), ranks.end(), 0) == 3);
  CHECK(std::count(ranks.begin(), ranks.end(), 1) == 3);
  check_ownership(t, seqs);
  while (!t.sched.idle()) {
    run_step(t.sched);
    check_ownership(t, seqs);
  }
  for (const auto& s : seqs) CHECK(s->num_output_tokens() == 6);
  CHECK(t.r0.num_free_blocks() == 16);
  CHECK(t.r1.num_free_blocks() == 16);
}

TEST_CASE("two ranks: a rank that runs out preempts only its own sequences",
          "[engine][rank_assign]") {
  // 4 blocks of 2 tokens per rank; each sequence grows to 8 tokens (all of a rank).
  two_ranks t(4, 2);
  auto a = make_seq(1, distinct(3, 100), 5);
  auto b = make_seq(2, distinct(3, 200), 5);
  auto c = make_seq(3, distinct(3, 300), 5);
  const std::vector<std::shared_ptr<sequence>> seqs{a, b, c};
  for (const auto& s : seqs) t.sched.add(s);
  run_step(t.sched);
  REQUIRE(a->rank == 0);
  REQUIRE(b->rank == 1);
  REQUIRE(c->rank == 0);  // rank 0 is now full, rank 1 has 2 blocks left
  std::vector<int32_t> preempted_on;
  bool b_preempted = false;
  while (!t.sched.idle()) {
    std::vector<bool> was_running;
    for (const auto& s : seqs) was_running.push_back(s->status == sequence_status::running);
    run_step(t.sched);
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (was_running[i] && seqs[i]->status == sequence_status::waiting) {
        preempted_on.push_back(seqs[i]->rank);
        b_preempted = b_preempted || seqs[i] == b;
      }
    }
    check_ownership(t, seqs);
  }
  CHECK(t.sched.num_preemptions() > 0);
  CHECK_FALSE(preempted_on.empty());
  for (int32_t r : preempted_on) CHECK(r == 0);
  CHECK_FALSE(b_preempted);
  for (const auto& s : seqs) CHECK(s->num_output_tokens() == 5);
}

TEST_CASE("two ranks: a prefix is shared within a rank, never across", "[engine][rank_assign]") {
  two_ranks t(16, 4);
  const tokens shared = distinct(12, 500);  // three full blocks
  auto with_tail = [&](int32_t tail) {
    tokens p = shared;
    p.push_back(tail);
    return p;
  };
  auto p1 = make_seq(1, shared, 20);
  t.sched.add(p1);
  run_step(t.sched);  // p1 on rank 0, its three blocks computed and cached there
  REQUIRE(p1->rank == 0);

  auto p2 = make_seq(2, with_tail(1), 20);
  t.sched.add(p2);
  auto step = run_step(t.sched);
  REQUIRE(p2->rank == 1);  // rank 1 has more free blocks
  REQUIRE(step.size() == 2);
  CHECK(step[1].seq == p2);
  CHECK(step[1].num_tokens == 13);  // nothing of rank 0's cache is used on rank 1
  for (int32_t b : p2->block_table) CHECK(t.r1.ref_count(b) == 1);

  auto p3 = make_seq(3, with_tail(2), 20);
  t.sched.add(p3);
  step = run_step(t.sched);
  REQUIRE(p3->rank == 0);  // equal free blocks and running: the lowest rank
  REQUIRE(step.size() == 3);
  CHECK(step[2].seq == p3);
  CHECK(step[2].num_tokens == 1);  // 12 tokens found in rank 0's cache
  for (size_t i = 0; i < 3; ++i) {
    CHECK(p3->block_table[i] == p1->block_table[i]);
    CHECK(t.r0.ref_count(p3->block_table[i]) == 2);
  }
}
