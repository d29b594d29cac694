// llm_engine over two ranks, each a CPU backend with its own KV cache: every step is cut
// by rank, each part runs on its rank, the outputs are merged, and the tokens are the
// ones a one-rank engine produces (with preemption inside a rank too).
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "engine/llm_engine.h"
#include "engine/rank_split.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"
#include "tests/tiny_moe.h"

using namespace conclave;

namespace {

config::engine_config engine_cfg(int32_t blocks, size_t offload_bytes = 0) {
  config::engine_config cfg;
  cfg.backend.num_kv_blocks = blocks;
  cfg.backend.kv_offload_bytes = offload_bytes;
  cfg.backend.block_size = 4;
  cfg.scheduler.max_num_batched_tokens = 64;
  return cfg;
}

engine::sampling_params greedy(int32_t n) {
  engine::sampling_params p;
  p.temperature = 0.0f;
  p.max_tokens = n;
  p.ignore_eos = true;
  return p;
}

std::vector<int32_t> prompt(size_t n, int32_t salt) {
  std::vector<int32_t> p(n);
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<int32_t>((i * 131 + static_cast<size_t>(salt) * 7919) % 8192);
  return p;
}

/// Runs `prompts` on an engine of `ranks` ranks of `blocks` KV blocks each; returns each
/// prompt's output and the ranks its entries ran on.
struct dp_run {
  std::vector<std::vector<int32_t>> out;
  std::vector<std::set<int32_t>> ranks_used;
  engine::engine_stats stats;
};

dp_run run_ranks(int ranks, int32_t blocks, const std::vector<std::vector<int32_t>>& prompts,
                 const std::vector<engine::sampling_params>& sps, size_t offload_bytes = 0) {
  const auto cfg = engine_cfg(blocks, offload_bytes);
  std::vector<std::unique_ptr<gpu::backend>> backends;
  for (int r = 0; r < ranks; ++r)
    backends.push_back(gpu::make_backend(test::tiny_moe(), cfg.backend));
  engine::llm_engine eng(backends[0]->config(), backends[0]->kv_shape(), cfg, ranks);
  REQUIRE(eng.ranks() == ranks);
  CHECK(eng.stats().kv_blocks_total == ranks * backends[0]->kv_shape().num_blocks);

  std::map<int64_t, size_t> index;
  for (size_t i = 0; i < prompts.size(); ++i) index[eng.add_request(prompts[i], sps[i])] = i;
  dp_run run;
  run.out.resize(prompts.size());
  run.ranks_used.resize(prompts.size());
  std::vector<gpu::step_output> outputs(static_cast<size_t>(ranks));
  gpu::step_output merged;
  while (eng.has_work()) {
    const auto p = eng.begin_step();
    REQUIRE(p.entry_rank.size() == p.batch.size());
    for (size_t i = 0; i < p.work.size(); ++i)
      run.ranks_used[index[p.work[i].seq->id()]].insert(p.entry_rank[i]);
    const auto parts = engine::split_by_rank(p.batch, p.entry_rank, ranks);
    for (size_t r = 0; r < parts.size(); ++r) {
      outputs[r] = {};
      backends[r]->transfer_kv(p.transfer(static_cast<int32_t>(r)));  // this rank's copies
      if (!parts[r].batch.empty()) backends[r]->forward(parts[r].batch, outputs[r]);
    }
    engine::merge_rank_outputs(parts, outputs, merged);
    for (const auto& e : eng.end_step(p, merged)) run.out[index[e.id]].push_back(e.token);
  }
  run.stats = eng.stats();
  return run;
}

dp_run run_ranks(int ranks, int32_t blocks, const std::vector<std::vector<int32_t>>& prompts,
                 const engine::sampling_params& sp, size_t offload_bytes = 0) {
  return run_ranks(ranks, blocks, prompts, std::vector(prompts.size(), sp), offload_bytes);
}

}  // namespace

TEST_CASE("two ranks of data-parallel attention give one rank's tokens",
          "[engine][data_parallel]") {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 5; ++i) prompts.push_back(prompt(static_cast<size_t>(4 + 3 * i), i));
  const auto one = run_ranks(1, 128, prompts, greedy(10));
  const auto two = run_ranks(2, 64, prompts, greedy(10));
  CHECK(two.out == one.out);
  std::set<int32_t> all;
  for (const auto& used : two.ranks_used) {
    CHECK(used.size() == 1);  // never preempted here: a sequence keeps its rank
    all.insert(used.begin(), used.end());
  }
  CHECK(all == std::set<int32_t>{0, 1});
  CHECK(two.stats.kv_blocks_total == 128);
  CHECK(two.stats.kv_blocks_free == 128);
  CHECK(two.stats.preemptions == 0);
}

TEST_CASE("two ranks: preemption inside a rank keeps the output token-identical",
          "[engine][data_parallel]") {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(prompt(static_cast<size_t>(5 + 3 * i), i));
  const auto roomy = run_ranks(1, 512, prompts, greedy(16));
  const auto tight = run_ranks(2, 10, prompts, greedy(16));  // 40 slots per rank
  CHECK(tight.stats.preemptions > 0);
  CHECK(tight.out == roomy.out);
  CHECK(tight.stats.kv_blocks_free == tight.stats.kv_blocks_total);
}

TEST_CASE("two ranks: KV offload inside a rank keeps the output token-identical, no recompute",
          "[engine][data_parallel][offload]") {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(prompt(static_cast<size_t>(5 + 3 * i), i));
  const auto roomy = run_ranks(1, 512, prompts, greedy(16));
  const auto tight = run_ranks(2, 10, prompts, greedy(16), size_t{16} << 20);
  CHECK(tight.stats.swap_outs > 0);
  CHECK(tight.stats.preemptions == 0);
  CHECK(tight.out == roomy.out);
  CHECK(tight.stats.prompt_tokens_computed == roomy.stats.prompt_tokens_computed);
  for (const auto& used : tight.ranks_used) CHECK(used.size() == 1);  // resumed on its rank
  CHECK(tight.stats.kv_blocks_free == tight.stats.kv_blocks_total);
}

TEST_CASE("two ranks: the choices of one prompt follow its first to the rank holding it",
          "[engine][data_parallel][prefill_group]") {
  // Four choices of one 22-token prompt, sampled, each with its own seed; a fifth request
  // fills the other rank first so that the free-block rule alone would split them.
  const auto shared = prompt(22, 5);
  std::vector<std::vector<int32_t>> prompts{prompt(30, 9)};
  std::vector<engine::sampling_params> sps{greedy(6)};
  for (uint64_t i = 0; i < 4; ++i) {
    auto sp = greedy(6);
    sp.temperature = 1.0f;
    sp.seed = 100 + i;
    sp.prefill_group = 77;
    prompts.push_back(shared);
    sps.push_back(sp);
  }
  const auto two = run_ranks(2, 64, prompts, sps);
  const int32_t lead = *two.ranks_used[1].begin();
  for (size_t i = 1; i < 5; ++i) CHECK(two.ranks_used[i] == std::set<int32_t>{lead});
  // Alone, each choice gives the same tokens (its seed decides them).
  for (size_t i = 1; i < 5; ++i) {
    auto alone = sps[i];
    alone.prefill_group = 0;
    CHECK(run_ranks(1, 128, {shared}, alone).out[0] == two.out[i]);
  }
  // The 30-token request and the first choice computed their prompts; the other three
  // found 20 of their 22 tokens (5 full blocks of 4) in the prefix cache.
  CHECK(two.stats.prefix_hit_tokens == 3 * 20);
  CHECK(two.stats.prompt_tokens_computed == 30 + 22 + 3 * 2);
}
