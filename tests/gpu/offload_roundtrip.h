// A backend's KV offload round trip (backend::transfer_kv), shared by the CPU test
// (tests/gpu/batch_test.cpp) and the CUDA one (tests/gpu/cuda_model_test.cpp): a prompt's
// blocks copied to the host pool and back into other device blocks decode exactly as the
// originals; out-of-range ids are refused. And the same through the engine
// (check_offload_engine: kv_fp8_test.cpp, cuda_model_test.cpp).
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "config/engine_config.h"
#include "engine/llm_engine.h"
#include "gpu/backend.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"

namespace conclave::test {

inline void check_offload_roundtrip(const std::string& kind,
                                    const std::string& kv_cache_dtype = "auto") {
  const model::checkpoint ckpt(data_dir() / "tiny_moe");
  config::backend_config b;
  b.kind = kind;
  b.kv_cache_dtype = kv_cache_dtype;
  b.block_size = 4;
  b.num_kv_blocks = 32;
  b.kv_offload_bytes = size_t{16} << 20;
  auto be = gpu::make_backend(ckpt, b);
  REQUIRE(be->kv_shape().num_host_blocks > 7);
  const std::vector<int32_t> prompt = {11, 802, 3, 4095, 77, 1200, 9, 5000, 31, 64};
  const std::vector<int32_t> table = {0, 1, 2}, moved = {20, 21, 22};
  gpu::step_output out;
  gpu::step_sequence pre{prompt, 0, table, false};
  be->forward({&pre, 1}, out);
  // Out to host blocks 5, 6, 7, then back into device blocks 20, 21, 22.
  gpu::kv_transfer t;
  for (int i = 0; i < 3; ++i) t.to_host.push_back({table[static_cast<size_t>(i)], 5 + i});
  for (int i = 0; i < 3; ++i) t.to_device.push_back({moved[static_cast<size_t>(i)], 5 + i});
  be->transfer_kv(t);
  const std::vector<int32_t> next = {123};
  gpu::step_sequence a{next, 10, table, false}, c{next, 10, moved, false};
  gpu::step_output oa, oc;
  be->forward({&a, 1}, oa);
  be->forward({&c, 1}, oc);
  REQUIRE(oa.logits.size() == oc.logits.size());
  CHECK(oa.logits == oc.logits);
  // Blocks never written decode differently: the check can fail.
  const std::vector<int32_t> empty = {24, 25, 26};
  gpu::step_sequence d{next, 10, empty, false};
  gpu::step_output od;
  be->forward({&d, 1}, od);
  CHECK(od.logits != oa.logits);
  gpu::kv_transfer bad;
  bad.to_host.push_back({0, be->kv_shape().num_host_blocks});
  CHECK_THROWS_AS(be->transfer_kv(bad), std::invalid_argument);
  bad.to_host = {{32, 0}};
  CHECK_THROWS_AS(be->transfer_kv(bad), std::invalid_argument);
}

/// #15's offload bar through the engine: five greedy streams of tiny_moe in a pool of 16
/// blocks of 4 tokens with a host pool of 64 blocks give the tokens of a 256-block pool,
/// with sequences swapped out and back and none recomputed. `base` picks the backend
/// (kind, dtypes, CUDA graphs); the pool sizes are set here.
/// `near_tie` 0: the tokens must be identical (the CPU backend computes a row the same in
/// any batch). Above 0 (the CUDA backend, whose kernels and splits follow the batch: the
/// short pool runs other batches, prompts in other chunks): each stream equals the roomy
/// run's up to its first difference, where the roomy run's own log-probabilities of the two
/// tokens must be within `near_tie` (a near tie that the batch's rounding flipped; after it
/// the contexts differ), and at most two of the five streams differ.
inline void check_offload_engine(const config::backend_config& base, float near_tie = 0.0f) {
  const model::checkpoint ckpt(data_dir() / "tiny_moe");
  engine::sampling_params greedy;
  greedy.temperature = 0.0f;
  greedy.max_tokens = 10;
  greedy.ignore_eos = true;
  if (near_tie > 0.0f) greedy.logprobs = 4;  // the roomy run's alternatives at a difference
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 5; ++i) {
    std::vector<int32_t> p(static_cast<size_t>(9 + 5 * i));
    for (size_t j = 0; j < p.size(); ++j)
      p[j] = static_cast<int32_t>((j * 131 + 17 * i + 3) % 4096);
    prompts.push_back(std::move(p));
  }
  const auto run = [&](int32_t blocks, size_t offload_blocks) {
    config::engine_config cfg;
    cfg.backend = base;
    cfg.backend.block_size = 4;
    cfg.backend.num_kv_blocks = blocks;
    cfg.scheduler.max_num_batched_tokens = 32;
    if (offload_blocks > 0) {
      auto probe = gpu::make_backend(ckpt, cfg.backend);
      cfg.backend.kv_offload_bytes = offload_blocks * probe->kv_shape().bytes_per_block;
    }
    engine::llm_engine eng(gpu::make_backend(ckpt, cfg.backend), cfg);
    std::map<int64_t, size_t> index;
    for (size_t i = 0; i < prompts.size(); ++i) index[eng.add_request(prompts[i], greedy)] = i;
    std::vector<std::vector<int32_t>> out(prompts.size());
    std::vector<std::vector<engine::token_logprobs>> lp(prompts.size());
    while (eng.has_work()) {
      for (const auto& e : eng.step()) {
        out[index[e.id]].push_back(e.token);
        lp[index[e.id]].push_back(e.logprobs.value_or(engine::token_logprobs{}));
      }
    }
    return std::make_tuple(out, lp, eng.stats());
  };
  const auto [roomy, roomy_lp, roomy_stats] = run(256, 0);
  const auto [tight, tight_lp_unused, tight_stats] = run(16, 64);
  if (near_tie <= 0.0f) {
    CHECK(tight == roomy);  // the cache travels to the host and back unchanged
  } else {
    REQUIRE(tight.size() == roomy.size());
    int differ = 0;
    for (size_t i = 0; i < roomy.size(); ++i) {
      REQUIRE(tight[i].size() == roomy[i].size());
      size_t d = 0;
      while (d < roomy[i].size() && tight[i][d] == roomy[i][d]) ++d;
      if (d == roomy[i].size()) continue;
      ++differ;
      // The roomy run's log-probability of the token the short pool's run chose there.
      float other = -INFINITY;
      for (const auto& [tok, l] : roomy_lp[i][d].top)
        if (tok == tight[i][d]) other = l;
      INFO("stream " << i << " differs first at token " << d << ": " << roomy[i][d] << " ("
                     << roomy_lp[i][d].logprob << ") against " << tight[i][d] << " (" << other
                     << ") in the roomy run");
      CHECK(roomy_lp[i][d].logprob - other <= near_tie);
      WARN("offload near tie: stream " << i << ", token " << d << ", "
                                       << roomy_lp[i][d].logprob - other << " nats");
    }
    CHECK(differ <= 2);
  }
  CHECK(tight_stats.swap_outs > 0);
  CHECK(tight_stats.preemptions == 0);  // every preempted sequence went to the host
  CHECK(roomy_stats.swap_outs == 0);
}

}  // namespace conclave::test
