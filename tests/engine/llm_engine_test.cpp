// llm_engine end to end on the CPU backend: request validation, stop rules, prefix
// caching and preemption that leave greedy output unchanged, aborts that free blocks.
#include <catch2/catch.hpp>
#include <map>

#include "engine/llm_engine.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"
#include "tests/tiny_moe.h"

using namespace conclave;

namespace {

config::engine_config engine_cfg(int32_t blocks, int32_t block_size = 4, int32_t budget = 64,
                                 bool prefix = true) {
  config::engine_config cfg;
  cfg.backend.num_kv_blocks = blocks;
  cfg.backend.block_size = block_size;
  cfg.scheduler.max_num_batched_tokens = budget;
  cfg.scheduler.enable_prefix_caching = prefix;
  return cfg;
}

engine::llm_engine make_engine(int32_t blocks, int32_t block_size = 4, int32_t budget = 64,
                               bool prefix = true) {
  const auto cfg = engine_cfg(blocks, block_size, budget, prefix);
  return engine::llm_engine(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
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

/// Runs all prompts together; returns each one's output in order.
std::vector<std::vector<int32_t>> run_all(engine::llm_engine& eng,
                                          const std::vector<std::vector<int32_t>>& prompts,
                                          const engine::sampling_params& sp) {
  std::map<int64_t, size_t> index;
  for (size_t i = 0; i < prompts.size(); ++i) index[eng.add_request(prompts[i], sp)] = i;
  std::vector<std::vector<int32_t>> out(prompts.size());
  while (eng.has_work()) {
    for (const auto& e : eng.step()) out[index[e.id]].push_back(e.token);
  }
  return out;
}

/// Three 8-token prompts and one of 300 tokens.
std::vector<std::vector<int32_t>> short_and_long_prompts() {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 3; ++i) prompts.push_back(prompt(8, i));
  prompts.push_back(prompt(300, 9));
  return prompts;
}

}  // namespace

TEST_CASE("add_request refuses invalid requests with the field named", "[engine]") {
  auto eng = make_engine(64);
  CHECK_THROWS_WITH(eng.add_request({}, greedy(4)), Catch::Contains("at least one token"));
  CHECK_THROWS_WITH(eng.add_request({1, 8192}, greedy(4)),
                    Catch::Contains("token 8192 at index 1 is outside"));
  auto bad = greedy(4);
  bad.temperature = -1;
  CHECK_THROWS_WITH(eng.add_request({1}, bad), Catch::Contains("temperature"));
  CHECK_THROWS_WITH(eng.add_request({1, 2}, greedy(8191)),
                    Catch::Contains("exceeds the context length 8192"));
  CHECK_FALSE(eng.has_work());
}

TEST_CASE("stop token ids and max_tokens end a sequence with the right reason", "[engine]") {
  auto eng = make_engine(64);
  const auto p = prompt(9, 1);
  const auto free_run = eng.generate(p, greedy(8));
  REQUIRE(free_run.size() == 8);
  auto sp = greedy(8);
  sp.stop_token_ids = {free_run[3]};
  const int64_t id = eng.add_request(p, sp);
  std::vector<engine::step_event> events;
  while (eng.has_work()) {
    for (const auto& e : eng.step()) events.push_back(e);
  }
  const size_t first_stop = static_cast<size_t>(
      std::find(free_run.begin(), free_run.end(), free_run[3]) - free_run.begin());
  REQUIRE(events.size() == first_stop + 1);
  CHECK(events.back().id == id);
  CHECK(events.back().finished);
  CHECK(events.back().reason == engine::finish_reason::stop);
  CHECK(eng.stats().kv_blocks_free == eng.stats().kv_blocks_total);
}

TEST_CASE("prefix caching reuses blocks and leaves output unchanged", "[engine]") {
  auto cached = make_engine(128, 4);
  auto uncached = make_engine(128, 4, 64, false);
  const auto shared = prompt(21, 3);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 3; ++i) {
    auto p = shared;
    p.push_back(100 + i);
    prompts.push_back(p);
  }
  const auto first = cached.generate(prompts[0], greedy(6));
  const uint64_t computed_before = cached.stats().prompt_tokens_computed;
  const auto second = cached.generate(prompts[1], greedy(6));
  // 20 of the 22 prompt tokens sit in 5 full cached blocks; only the rest is computed.
  CHECK(cached.stats().prompt_tokens_computed - computed_before == 2);
  CHECK(first == uncached.generate(prompts[0], greedy(6)));
  CHECK(second == uncached.generate(prompts[1], greedy(6)));
}

TEST_CASE("KV exhaustion preempts and the output stays token-identical", "[engine]") {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(prompt(static_cast<size_t>(5 + 3 * i), i));
  auto roomy = make_engine(512, 4);
  const auto expected = run_all(roomy, prompts, greedy(16));
  CHECK(roomy.stats().preemptions == 0);
  auto tight = make_engine(14, 4);  // 56 slots for 6 sequences of up to 36 tokens
  const auto got = run_all(tight, prompts, greedy(16));
  CHECK(tight.stats().preemptions > 0);
  CHECK(got == expected);
  CHECK(tight.stats().kv_blocks_free == tight.stats().kv_blocks_total);
}

TEST_CASE("a prompt read in stall-bounded chunks next to decodes gives the same tokens",
          "[engine][scheduler]") {
  // Three short prompts decode while a 300-token one is read: in 61-token chunks with no
  // bound, in 16-token ones (the floor) under a tight prefill_stall_pairs.
  const auto prompts = short_and_long_prompts();
  auto free_run = make_engine(512, 4);
  const auto expected = run_all(free_run, prompts, greedy(12));
  const uint64_t free_steps = free_run.stats().steps;
  config::engine_config cfg = engine_cfg(512);
  cfg.scheduler.prefill_stall_pairs = 300;
  engine::llm_engine bounded(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
  size_t steps = 0;
  std::map<int64_t, size_t> index;
  for (size_t i = 0; i < prompts.size(); ++i)
    index[bounded.add_request(prompts[i], greedy(12))] = i;
  std::vector<std::vector<int32_t>> got(prompts.size());
  while (bounded.has_work()) {
    ++steps;
    for (const auto& e : bounded.step()) got[index[e.id]].push_back(e.token);
  }
  CHECK(got == expected);
  // While the short ones decode (11 steps) the long prompt reads 16 tokens a step, not 61.
  INFO("steps " << steps << " against " << free_steps);
  CHECK(steps >= free_steps + 5);
}

TEST_CASE("under decode_slowdown a prompt read between decode-only steps gives the same tokens",
          "[engine][scheduler][pacer]") {
  // The same mix as above, paced: a step "lasts" 1 s plus 0.1 s a prompt token (a clock
  // read off the engine's own counters), so each 61-token chunk owes the decoders
  // several decode-only steps at a slowdown of 1.5.
  const auto prompts = short_and_long_prompts();
  auto free_run = make_engine(512, 4);
  const auto expected = run_all(free_run, prompts, greedy(40));
  config::engine_config cfg = engine_cfg(512);
  cfg.scheduler.prefill_stall_pairs = 0;
  cfg.scheduler.decode_slowdown = 1.5;
  engine::llm_engine paced(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
  paced.set_decode_pacing(1.5, [&paced] {
    const auto s = paced.stats();
    return static_cast<double>(s.steps) + 0.1 * static_cast<double>(s.prompt_tokens_computed);
  });
  const auto got = run_all(paced, prompts, greedy(40));
  CHECK(got == expected);
  CHECK(paced.stats().paced_steps > 5);
  CHECK_THROWS_AS(paced.set_decode_pacing(1.0), std::invalid_argument);
}

TEST_CASE("under prefill_stall_pairs a request arriving during a long prompt starts at once",
          "[engine][scheduler]") {
  // A 400-token prompt is read 64 tokens a step; a short request comes after its first
  // step. The step of the short one's first token, with and without the bound.
  const auto first_token_step = [](int64_t pairs) {
    config::engine_config cfg = engine_cfg(512);
    cfg.scheduler.prefill_stall_pairs = pairs;
    engine::llm_engine eng(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
    eng.add_request(prompt(400, 1), greedy(2));
    eng.step();
    const int64_t late = eng.add_request(prompt(6, 2), greedy(2));
    for (int step = 2; eng.has_work(); ++step)
      for (const auto& e : eng.step())
        if (e.id == late) return step;
    return -1;
  };
  const int without = first_token_step(0), with = first_token_step(2000);
  INFO("first token at step " << with << " with the bound, " << without << " without");
  CHECK(without >= 7);  // after the long prompt's 400 tokens: 7 steps of 64
  CHECK(with == 2);     // admitted in the step after it arrived, next to the long prompt
}

TEST_CASE("abort frees a running sequence's blocks and others continue", "[engine]") {
  auto eng = make_engine(64, 4);
  const int64_t a = eng.add_request(prompt(10, 1), greedy(50));
  const int64_t b = eng.add_request(prompt(10, 2), greedy(5));
  eng.step();
  eng.step();
  CHECK(eng.abort(a));
  CHECK_FALSE(eng.abort(a));
  size_t b_tokens = 0;
  while (eng.has_work()) {
    for (const auto& e : eng.step()) {
      CHECK(e.id == b);
      ++b_tokens;
    }
  }
  CHECK(b_tokens == 3);  // 5 in total, 2 produced before the abort
  CHECK(eng.stats().kv_blocks_free == eng.stats().kv_blocks_total);
}

TEST_CASE("seeded sampling is reproducible inside a batch", "[engine]") {
  engine::sampling_params sp;
  sp.temperature = 1.3f;
  sp.top_k = 50;
  sp.max_tokens = 12;
  sp.ignore_eos = true;
  sp.seed = 99;
  auto e1 = make_engine(128);
  const auto alone = e1.generate(prompt(7, 4), sp);
  auto e2 = make_engine(128);
  const auto together = run_all(e2, {prompt(9, 5), prompt(7, 4), prompt(3, 6)}, sp);
  CHECK(together[1] == alone);
  CHECK(together[0] != together[2]);
}

TEST_CASE("a resumed request continues exactly where another engine stopped", "[engine][resume]") {
  const auto p = prompt(11, 3);
  for (const float temperature : {0.0f, 0.9f}) {
    engine::sampling_params sp = greedy(9);
    sp.temperature = temperature;
    sp.seed = 42;
    sp.repetition_penalty = 1.3f;  // penalties see the resumed tokens as output
    sp.frequency_penalty = 0.5f;
    auto whole = make_engine(64);
    const auto full = whole.generate(p, sp);
    REQUIRE(full.size() == 9);
    for (const size_t done : {size_t{1}, size_t{4}, size_t{8}}) {
      auto other = make_engine(64);
      const std::vector<int32_t> before(full.begin(), full.begin() + static_cast<long>(done));
      const int64_t id = other.add_request(p, sp, before);
      std::vector<int32_t> rest;
      while (other.has_work()) {
        for (const auto& e : other.step()) {
          if (e.id == id) rest.push_back(e.token);
        }
      }
      INFO("temperature " << temperature << ", resumed after " << done);
      CHECK(rest == std::vector<int32_t>(full.begin() + static_cast<long>(done), full.end()));
    }
  }
  auto eng = make_engine(64);
  CHECK_THROWS_AS(eng.add_request(p, greedy(2), std::vector<int32_t>{1, 2}), std::invalid_argument);
  CHECK_THROWS_AS(eng.add_request(p, greedy(4), std::vector<int32_t>{-1}), std::invalid_argument);
}

TEST_CASE(
    "KV offload: a pool too small for the running sequences gives the same output "
    "with swaps and no recompute",
    "[engine][offload]") {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(prompt(static_cast<size_t>(5 + 3 * i), i));
  auto roomy = make_engine(512, 4);
  const auto expected = run_all(roomy, prompts, greedy(16));
  const auto computed = roomy.stats().prompt_tokens_computed;

  config::engine_config cfg;
  cfg.backend.num_kv_blocks = 14;  // 56 slots for 6 sequences of up to 36 tokens
  cfg.backend.block_size = 4;
  cfg.scheduler.max_num_batched_tokens = 64;
  auto probe = gpu::make_backend(test::tiny_moe(), cfg.backend);
  cfg.backend.kv_offload_bytes = 64 * probe->kv_shape().bytes_per_block;
  engine::llm_engine offload(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
  REQUIRE(offload.backend().kv_shape().num_host_blocks == 64);
  const auto got = run_all(offload, prompts, greedy(16));
  const auto s = offload.stats();
  CHECK(got == expected);
  CHECK(s.swap_outs > 0);
  CHECK(s.swap_ins == s.swap_outs);
  CHECK(s.blocks_swapped_in == s.blocks_swapped_out);
  CHECK(s.preemptions == 0);                    // nothing freed for recomputation
  CHECK(s.prompt_tokens_computed == computed);  // and no token ran twice
  CHECK(s.kv_blocks_free == s.kv_blocks_total);
  CHECK(s.num_swapped == 0);

  // Without the pool the same run recomputes: what the offload saved.
  auto tight = make_engine(14, 4);
  CHECK(run_all(tight, prompts, greedy(16)) == expected);
  CHECK(tight.stats().preemptions > 0);
  CHECK(tight.stats().prompt_tokens_computed > computed);
}

TEST_CASE("KV offload keeps seeded sampling identical", "[engine][offload]") {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 5; ++i) prompts.push_back(prompt(static_cast<size_t>(9 + 4 * i), 40 + i));
  engine::sampling_params sp;
  sp.temperature = 1.3f;
  sp.top_p = 0.9f;
  sp.seed = 77;
  sp.max_tokens = 14;
  sp.ignore_eos = true;
  auto roomy = make_engine(512, 4);
  const auto expected = run_all(roomy, prompts, sp);
  config::engine_config cfg;
  cfg.backend.num_kv_blocks = 12;
  cfg.backend.block_size = 4;
  cfg.backend.kv_offload_bytes = size_t{64} << 20;
  engine::llm_engine offload(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
  CHECK(run_all(offload, prompts, sp) == expected);
  CHECK(offload.stats().swap_outs > 0);
  CHECK(offload.stats().preemptions == 0);
}

TEST_CASE(
    "prefix cache host tier: a prefix evicted from the device comes back from host memory "
    "with the same output and without recomputing it",
    "[engine][offload][prefix]") {
  // A 32-token shared prefix (8 blocks of 4), then other prompts that push it out of a
  // 16-block cache, then the first prompt again.
  std::vector<int32_t> first = prompt(34, 1);
  std::vector<std::vector<int32_t>> fillers;
  for (int i = 0; i < 3; ++i) fillers.push_back(prompt(40, 20 + i));
  const auto run = [&](engine::llm_engine& eng) {
    std::vector<std::vector<int32_t>> outs;
    outs.push_back(run_all(eng, {first}, greedy(6))[0]);
    for (const auto& f : fillers) outs.push_back(run_all(eng, {f}, greedy(6))[0]);
    outs.push_back(run_all(eng, {first}, greedy(6))[0]);
    return outs;
  };
  config::engine_config cfg;
  cfg.backend.num_kv_blocks = 16;
  cfg.backend.block_size = 4;
  cfg.scheduler.max_num_batched_tokens = 64;
  auto plain = engine::llm_engine(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
  const auto expected = run(plain);
  const auto plain_computed = plain.stats().prompt_tokens_computed;
  CHECK(plain.stats().host_prefix_hits == 0);

  auto probe = gpu::make_backend(test::tiny_moe(), cfg.backend);
  cfg.backend.kv_host_prefix_bytes = 32 * probe->kv_shape().bytes_per_block;
  engine::llm_engine tier(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
  REQUIRE(tier.backend().kv_shape().num_host_blocks == 32);
  const auto got = run(tier);
  const auto s = tier.stats();
  CHECK(got == expected);
  CHECK(s.host_prefix_stores > 0);
  CHECK(s.host_prefix_hits >= 8);  // the first prompt's 8 full blocks come back
  CHECK(s.blocks_swapped_in >= s.host_prefix_hits);
  CHECK(s.prompt_tokens_computed + 32 <= plain_computed);  // not recomputed
  CHECK(s.kv_blocks_free == s.kv_blocks_total);
  CHECK(got[0] == got.back());
}
