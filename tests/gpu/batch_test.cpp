// Forward-pass invariants on the CPU backend: prefill-then-decode equals full
// recompute, chunked prefill equals one-shot prefill, and a sequence batched with
// others (prefill and decode mixed in one step) gives what it gives alone.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <numeric>

#include "engine/llm_engine.h"
#include "engine/sampler.h"
#include "gpu/backend.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"
#include "tests/gpu/offload_roundtrip.h"
#include "tests/tiny_moe.h"

namespace {

using namespace conclave;

config::backend_config small_cache() {
  config::backend_config b;
  b.num_kv_blocks = 64;
  b.block_size = 4;  // small blocks: sequences span many, scattered blocks
  return b;
}

double max_rel_diff(std::span<const float> a, std::span<const float> b) {
  double mx = 0, err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    mx = std::max(mx, std::abs(double(b[i])));
    err = std::max(err, std::abs(double(a[i]) - double(b[i])));
  }
  return err / mx;
}

/// Logits of the last token of `tokens`, computed in one prefill on a fresh cache.
std::vector<float> full_recompute(const std::vector<int32_t>& tokens) {
  auto be = gpu::make_backend(test::tiny_moe(), small_cache());
  std::vector<int32_t> table(tokens.size() / 4 + 1);
  std::iota(table.rbegin(), table.rend(), 3);  // reversed ids: layout must not matter
  gpu::step_sequence s{tokens, 0, table, false};
  gpu::step_output out;
  be->forward({&s, 1}, out);
  auto last = out.last(0);
  return {last.begin(), last.end()};
}

}  // namespace

TEST_CASE("prefill then decode equals full recompute", "[forward]") {
  auto be = gpu::make_backend(test::tiny_moe(), small_cache());
  std::vector<int32_t> tokens = {11, 4000, 7, 8191, 0, 123, 555, 42, 9, 17};
  const std::vector<int32_t> table = {40, 12, 33, 5, 60, 21, 8};  // 28 positions
  gpu::step_output out;
  gpu::step_sequence s{tokens, 0, table, false};
  be->forward({&s, 1}, out);
  for (int step = 0; step < 12; ++step) {
    const auto last = out.last(0);
    const std::vector<float> ref = full_recompute(tokens);
    INFO("decode step " << step << ", " << tokens.size() << " tokens");
    CHECK(max_rel_diff(last, ref) < 1e-5);
    const int32_t next = engine::argmax(last);
    CHECK(next == engine::argmax(ref));
    const std::vector<int32_t> one = {next};
    const int32_t cached = static_cast<int32_t>(tokens.size());
    tokens.push_back(next);
    gpu::step_sequence d{one, cached, table, false};
    be->forward({&d, 1}, out);
  }
}

TEST_CASE("chunked prefill equals one-shot prefill", "[forward]") {
  std::vector<int32_t> prompt(23);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919) % 8192);
  const auto ref = full_recompute(prompt);
  auto be = gpu::make_backend(test::tiny_moe(), small_cache());
  const std::vector<int32_t> table = {1, 2, 3, 4, 5, 6};
  gpu::step_output out;
  const std::span<const int32_t> p(prompt);
  const size_t cuts[] = {0, 5, 6, 17, 23};  // chunks of 5, 1, 11 and 6 tokens
  for (size_t i = 0; i + 1 < std::size(cuts); ++i) {
    gpu::step_sequence s{p.subspan(cuts[i], cuts[i + 1] - cuts[i]), static_cast<int32_t>(cuts[i]),
                         table, false};
    be->forward({&s, 1}, out);
  }
  CHECK(max_rel_diff(out.last(0), ref) < 1e-5);
}

TEST_CASE("a sequence batched with others gives what it gives alone", "[forward]") {
  // Three sequences: A decodes (its prompt was prefilled earlier), B prefills, C prefills
  // a one-token prompt; all in one step. Compare each with its own solo computation.
  const std::vector<int32_t> a_prompt = {5, 6, 7, 8, 9, 10, 11};
  const std::vector<int32_t> b_prompt = {100, 200, 300, 400, 500, 600, 700, 800, 900};
  const std::vector<int32_t> c_prompt = {4242};
  auto be = gpu::make_backend(test::tiny_moe(), small_cache());
  const std::vector<int32_t> ta = {0, 1, 2}, tb = {10, 11, 12}, tc = {20};
  gpu::step_output out;
  gpu::step_sequence a{a_prompt, 0, ta, false};
  be->forward({&a, 1}, out);
  const int32_t a_next = engine::argmax(out.last(0));
  const std::vector<int32_t> a_decode = {a_next};

  std::vector<gpu::step_sequence> batch = {
      {a_decode, 7, ta, false}, {b_prompt, 0, tb, true}, {c_prompt, 0, tc, false}};
  be->forward(batch, out);
  REQUIRE(out.row_begin == std::vector<size_t>{0, 1, 10, 11});

  std::vector<int32_t> a_full = a_prompt;
  a_full.push_back(a_next);
  CHECK(max_rel_diff(out.last(0), full_recompute(a_full)) < 1e-5);
  CHECK(max_rel_diff(out.last(1), full_recompute(b_prompt)) < 1e-5);
  CHECK(max_rel_diff(out.last(2), full_recompute(c_prompt)) < 1e-5);
  // Every prefix of B (all_logits) equals the recompute of that prefix.
  for (size_t n = 1; n <= b_prompt.size(); n += 4) {
    const std::vector<int32_t> prefix(b_prompt.begin(), b_prompt.begin() + static_cast<long>(n));
    CHECK(max_rel_diff(out.row(1 + n - 1), full_recompute(prefix)) < 1e-5);
  }
}

TEST_CASE("greedy tokens are the same alone and inside a busy engine", "[forward][engine]") {
  config::engine_config cfg;
  cfg.backend = small_cache();
  cfg.backend.num_kv_blocks = 256;
  cfg.scheduler.max_num_batched_tokens = 16;  // forces chunked prefill next to decodes
  engine::sampling_params greedy;
  greedy.temperature = 0.0f;
  greedy.max_tokens = 10;
  greedy.ignore_eos = true;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 5; ++i) {
    std::vector<int32_t> p(static_cast<size_t>(3 + 9 * i));
    for (size_t j = 0; j < p.size(); ++j)
      p[j] = static_cast<int32_t>((j * 31 + static_cast<size_t>(i) * 977) % 8192);
    prompts.push_back(p);
  }
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : prompts) {
    engine::llm_engine eng(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
    alone.push_back(eng.generate(p, greedy));
  }
  engine::llm_engine eng(gpu::make_backend(test::tiny_moe(), cfg.backend), cfg);
  std::map<int64_t, size_t> index;
  for (size_t i = 0; i < prompts.size(); ++i) index[eng.add_request(prompts[i], greedy)] = i;
  std::vector<std::vector<int32_t>> together(prompts.size());
  size_t max_batch = 0;
  while (eng.has_work()) {
    const auto events = eng.step();
    max_batch = std::max(max_batch, eng.stats().num_running);
    for (const auto& e : events) together[index[e.id]].push_back(e.token);
  }
  CHECK(max_batch > 1);
  CHECK(together == alone);
  CHECK(eng.stats().kv_blocks_free == eng.stats().kv_blocks_total);
}

TEST_CASE("a malformed batch is refused before the cache is touched", "[forward]") {
  auto be = gpu::make_backend(test::tiny_moe(), small_cache());
  gpu::step_output out;
  const std::vector<int32_t> toks = {1, 2, 3, 4, 5};
  const std::vector<int32_t> short_table = {0};
  gpu::step_sequence s{toks, 0, short_table, false};
  CHECK_THROWS_WITH(be->forward({&s, 1}, out), Catch::Contains("block table has 1 blocks"));
  const std::vector<int32_t> bad_tok = {8192};
  const std::vector<int32_t> table = {0, 1};
  gpu::step_sequence t{bad_tok, 0, table, false};
  CHECK_THROWS_WITH(be->forward({&t, 1}, out), Catch::Contains("outside the vocabulary"));
  const std::vector<int32_t> bad_block = {0, 64};
  gpu::step_sequence u{toks, 0, bad_block, false};
  CHECK_THROWS_WITH(be->forward({&u, 1}, out), Catch::Contains("block id 64"));
  gpu::step_sequence v{toks, 8190, table, false};
  CHECK_THROWS_WITH(be->forward({&v, 1}, out), Catch::Contains("max_position_embeddings"));
}

TEST_CASE(
    "cpu KV offload: blocks copied to the host and back into other blocks decode "
    "identically",
    "[offload]") {
  test::check_offload_roundtrip("cpu");
  test::check_offload_roundtrip("cpu", "fp8");
}
