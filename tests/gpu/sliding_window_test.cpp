// Sliding-window attention through the CPU backend and the engine: the tiny_moe fixture
// with use_sliding_window switched on in its config.json (same weights). The window must
// change the logits of prompts longer than it, leave shorter ones alone, and give the
// same logits whether a prompt runs in one prefill, in chunks, or token by token.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

#include "engine/llm_engine.h"
#include "engine/sampler.h"
#include "gpu/backend.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"
#include "tests/tiny_moe.h"

namespace {

using namespace conclave;

constexpr int32_t kWindow = 7;  // not a multiple of the block size (4)

/// tiny_moe with `"use_sliding_window": true, "sliding_window": 7` (every layer windowed,
/// as transformers' Qwen3-MoE does), in a temporary folder.
const model::checkpoint& windowed() {
  static const test::temp_dir dir;
  static const model::checkpoint ckpt = [] {
    for (const auto& e : std::filesystem::directory_iterator(test::data_dir() / "tiny_moe"))
      std::filesystem::copy(e.path(), dir.path() / e.path().filename());
    std::ifstream in(dir.path() / "config.json");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    const auto swap = [&](const std::string& from, const std::string& to) {
      const auto at = text.find(from);
      REQUIRE(at != std::string::npos);
      text.replace(at, from.size(), to);
    };
    swap("\"sliding_window\": null", "\"sliding_window\": " + std::to_string(kWindow));
    swap("\"use_sliding_window\": false", "\"use_sliding_window\": true");
    std::ofstream(dir.path() / "config.json", std::ios::trunc) << text;
    return model::checkpoint(dir.path());
  }();
  return ckpt;
}

config::backend_config small_cache() {
  config::backend_config b;
  b.num_kv_blocks = 64;
  b.block_size = 4;
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

std::vector<int32_t> prompt(size_t n) {
  std::vector<int32_t> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>((i * 7919 + 13) % 8192);
  return p;
}

/// Logits of the last token of `tokens` in one prefill on a fresh cache.
std::vector<float> one_prefill(const model::checkpoint& ckpt, const std::vector<int32_t>& tokens) {
  auto be = gpu::make_backend(ckpt, small_cache());
  std::vector<int32_t> table(tokens.size() / 4 + 1);
  std::iota(table.rbegin(), table.rend(), 3);  // reversed ids: layout must not matter
  gpu::step_sequence s{tokens, 0, table, false};
  gpu::step_output out;
  be->forward({&s, 1}, out);
  auto last = out.last(0);
  return {last.begin(), last.end()};
}

}  // namespace

TEST_CASE("sliding window: the config is read as every layer windowed", "[window]") {
  const auto& c = windowed().config();
  CHECK(c.sliding_window == kWindow);
  CHECK(c.all_layers_sliding());
  CHECK(test::tiny_moe().config().sliding_window == 0);
}

TEST_CASE("sliding window: logits change past the window and only there", "[window]") {
  // Up to kWindow tokens every key is inside the window: the same logits bit for bit.
  for (size_t n : {size_t{1}, size_t{5}, size_t{kWindow}}) {
    INFO(n << " tokens");
    CHECK(max_rel_diff(one_prefill(windowed(), prompt(n)),
                       one_prefill(test::tiny_moe(), prompt(n))) == 0.0);
  }
  // Longer prompts: the window drops keys, the logits move.
  for (size_t n : {size_t{kWindow + 1}, size_t{30}}) {
    INFO(n << " tokens");
    CHECK(max_rel_diff(one_prefill(windowed(), prompt(n)),
                       one_prefill(test::tiny_moe(), prompt(n))) > 1e-3);
  }
}

TEST_CASE("sliding window: chunked prefill and decode equal one prefill", "[window]") {
  const std::vector<int32_t> tokens = prompt(30);
  auto be = gpu::make_backend(windowed(), small_cache());
  const std::vector<int32_t> table = {40, 12, 33, 5, 60, 21, 8, 17, 2, 50};  // 40 positions
  gpu::step_output out;
  const std::span<const int32_t> p(tokens);
  const size_t cuts[] = {0, 5, 6, 17, 23};  // chunks of 5, 1, 11 and 6 tokens, then decode
  for (size_t i = 0; i + 1 < std::size(cuts); ++i) {
    gpu::step_sequence s{p.subspan(cuts[i], cuts[i + 1] - cuts[i]), static_cast<int32_t>(cuts[i]),
                         table, false};
    be->forward({&s, 1}, out);
    const std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + long(cuts[i + 1]));
    INFO("chunk ending at " << cuts[i + 1]);
    CHECK(max_rel_diff(out.last(0), one_prefill(windowed(), prefix)) < 1e-5);
  }
  for (size_t pos = 23; pos < tokens.size(); ++pos) {
    gpu::step_sequence d{p.subspan(pos, 1), static_cast<int32_t>(pos), table, false};
    be->forward({&d, 1}, out);
    const std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + long(pos + 1));
    INFO("decode at position " << pos);
    CHECK(max_rel_diff(out.last(0), one_prefill(windowed(), prefix)) < 1e-5);
  }
}

TEST_CASE("sliding window: greedy output is the same with any prefill budget", "[window][engine]") {
  engine::sampling_params greedy;
  greedy.temperature = 0.0f;
  greedy.max_tokens = 12;
  greedy.ignore_eos = true;
  const auto run = [&](const model::checkpoint& ckpt, int32_t budget) {
    config::engine_config cfg;
    cfg.backend = small_cache();
    cfg.backend.num_kv_blocks = 128;
    cfg.scheduler.max_num_batched_tokens = budget;
    engine::llm_engine eng(gpu::make_backend(ckpt, cfg.backend), cfg);
    std::map<int64_t, size_t> index;
    const std::vector<size_t> lengths = {3, 20, 37};
    for (size_t i = 0; i < lengths.size(); ++i)
      index[eng.add_request(prompt(lengths[i]), greedy)] = i;
    std::vector<std::vector<int32_t>> out(lengths.size());
    while (eng.has_work())
      for (const auto& e : eng.step()) out[index[e.id]].push_back(e.token);
    return out;
  };
  const auto big = run(windowed(), 128);
  CHECK(run(windowed(), 5) == big);  // chunked prefill next to decodes
  // The 37-token prompt's continuation depends on the window (the 3-token one may not).
  CHECK(run(test::tiny_moe(), 128)[2] != big[2]);
}

TEST_CASE("sliding window: blocks behind the window are released, outputs unchanged",
          "[window][engine]") {
  engine::sampling_params greedy;
  greedy.temperature = 0.0f;
  greedy.max_tokens = 12;
  greedy.ignore_eos = true;
  config::engine_config cfg;
  cfg.backend = small_cache();  // 64 blocks of 4
  engine::llm_engine eng(gpu::make_backend(windowed(), cfg.backend), cfg);
  const std::vector<int32_t> p = prompt(37);
  eng.add_request(p, greedy);
  std::vector<int32_t> out;
  size_t steps = 0;
  while (eng.has_work()) {
    for (const auto& e : eng.step()) out.push_back(e.token);
    const auto s = eng.stats();
    // After the prompt: the window (7 keys) plus the block being written, at most 4 blocks
    // (the whole sequence would need 13).
    if (eng.has_work()) CHECK(s.kv_blocks_total - s.kv_blocks_free <= 4);
    ++steps;
  }
  CHECK(eng.stats().blocks_released_behind_window >= 10);
  // The same tokens as greedy over fresh full caches, one prefill per prefix.
  std::vector<int32_t> seq = p, want;
  for (int i = 0; i < greedy.max_tokens; ++i) {
    const auto logits = one_prefill(windowed(), seq);
    const auto t =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    want.push_back(t);
    seq.push_back(t);
  }
  CHECK(out == want);
  CHECK(steps >= 12);
}

TEST_CASE("sliding window: a released block table entry passes validation only behind it",
          "[window]") {
  auto be = gpu::make_backend(windowed(), small_cache());
  const std::vector<int32_t> tok = {5};
  // Position 20, window 7: keys 14..20 are read; blocks 0..2 (keys < 12) may be released,
  // block 3 (keys 12..15) may not.
  std::vector<int32_t> table = {gpu::kNoBlock, gpu::kNoBlock, gpu::kNoBlock, 9, 10, 11};
  gpu::step_output out;
  gpu::step_sequence ok{tok, 20, table, false};
  CHECK_NOTHROW(be->forward({&ok, 1}, out));
  table[3] = gpu::kNoBlock;
  gpu::step_sequence bad{tok, 20, table, false};
  CHECK_THROWS_AS(be->forward({&bad, 1}, out), std::invalid_argument);
  // Without a window no entry may be released.
  auto plain = gpu::make_backend(test::tiny_moe(), small_cache());
  table = {gpu::kNoBlock, 8, 9, 10, 11, 12};
  gpu::step_sequence none{tok, 20, table, false};
  CHECK_THROWS_AS(plain->forward({&none, 1}, out), std::invalid_argument);
}
