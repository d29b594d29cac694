// The rig of the expert-parallel exactness tests (tests/gpu/expert_parallel_test.cpp on
// CPU ranks, cuda_expert_parallel_test.cpp on CUDA ranks): sequences spread over ranks
// that are threads of this process, greedy steps on every rank, the reference on one
// rank, and the comparison of tokens and logits.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <numeric>

#include "gpu/backend.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"

namespace conclave::test::ep {

using namespace std::chrono_literals;

inline double max_rel_diff(std::span<const float> a, std::span<const float> b) {
  double mx = 0, err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    mx = std::max(mx, std::abs(double(b[i])));
    err = std::max(err, std::abs(double(a[i]) - double(b[i])));
  }
  return mx > 0 ? err / mx : err;
}

inline int32_t argmax(std::span<const float> row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

/// One sequence's state across steps on some rank.
struct seq_state {
  std::vector<int32_t> tokens;  ///< prompt, then the greedy continuation
  int32_t cached = 0;
  int32_t rank = 0;
  std::vector<int32_t> table;                   ///< its blocks on its rank
  std::vector<std::vector<float>> last_logits;  ///< per step
};

/// Gives each sequence consecutive blocks on its rank.
inline void assign_blocks(std::vector<seq_state>& seqs, int32_t per_seq) {
  std::map<int32_t, int32_t> next;
  for (auto& s : seqs) {
    s.table.resize(static_cast<size_t>(per_seq));
    std::iota(s.table.begin(), s.table.end(), next[s.rank]);
    next[s.rank] += per_seq;
  }
}

/// Runs `steps` greedy steps (a prefill, then decodes) of `seqs` on `backends` (one per
/// rank, each seeing only its own sequences); `between(step)` runs on every rank's thread
/// after each step (placement changes). Fills each sequence's tokens and logits.
inline void run_steps(std::vector<std::unique_ptr<gpu::backend>>& backends,
                      std::vector<seq_state>& seqs, int steps,
                      const std::function<void(size_t rank, int step)>& between = {}) {
  const size_t ranks = backends.size();
  std::vector<std::future<void>> done;
  std::mutex mu;
  for (size_t r = 0; r < ranks; ++r) {
    done.push_back(std::async(std::launch::async, [&, r] {
      for (int step = 0; step < steps; ++step) {
        std::vector<size_t> mine;
        std::vector<gpu::step_sequence> batch;
        {
          std::lock_guard lock(mu);
          for (size_t i = 0; i < seqs.size(); ++i) {
            if (static_cast<size_t>(seqs[i].rank) != r) continue;
            mine.push_back(i);
            auto& s = seqs[i];
            batch.push_back(
                {std::span<const int32_t>(s.tokens).subspan(static_cast<size_t>(s.cached)),
                 s.cached, s.table, false});
          }
        }
        gpu::step_output out;
        backends[r]->forward(batch, out);
        std::lock_guard lock(mu);
        for (size_t j = 0; j < mine.size(); ++j) {
          auto& s = seqs[mine[j]];
          const auto row = out.last(j);
          s.last_logits.emplace_back(row.begin(), row.end());
          s.cached = static_cast<int32_t>(s.tokens.size());
          s.tokens.push_back(argmax(row));
        }
        if (between) between(r, step);
      }
    }));
  }
  for (auto& f : done) f.get();
}

inline std::vector<seq_state> prompts(const std::filesystem::path& dir) {
  std::vector<seq_state> seqs;
  for (const auto& c : test::load_reference(dir))
    seqs.push_back(seq_state{c.input_ids, 0, 0, {}, {}});
  // A fourth sequence made of the first prompt's tail: more sequences than some ranks.
  seqs.push_back(seq_state{
      std::vector<int32_t>(seqs[0].tokens.begin() + 1, seqs[0].tokens.end()), 0, 0, {}, {}});
  return seqs;
}

inline constexpr int kSteps = 5;

/// Reference: all sequences on one rank, one batch per step.
inline std::vector<seq_state> one_rank(const model::checkpoint& ckpt, std::vector<seq_state> seqs,
                                       const config::backend_config& opts) {
  std::vector<std::unique_ptr<gpu::backend>> one;
  one.push_back(gpu::make_backend(ckpt, opts));
  for (auto& s : seqs) s.rank = 0;
  assign_blocks(seqs, 40);
  run_steps(one, seqs, kSteps);
  return seqs;
}

/// A placement unlike the contiguous one: experts dealt round-robin from the last rank,
/// and the first `copies` experts of every layer on every rank.
inline gpu::expert_map shuffled(const model::model_config& c, int32_t ranks, int32_t copies,
                                uint64_t version) {
  auto m = gpu::expert_map::contiguous(c, ranks);
  for (auto& layer : m.holders) {
    for (size_t e = 0; e < layer.size(); ++e) {
      if (static_cast<int32_t>(e) < copies) {
        layer[e].resize(static_cast<size_t>(ranks));
        std::iota(layer[e].begin(), layer[e].end(), 0);
      } else {
        layer[e] = {ranks - 1 - static_cast<int32_t>(e % static_cast<size_t>(ranks))};
      }
    }
  }
  m.version = version;
  return m;
}

/// How a replica's ranks are made: rank r's communicator (called on r's own thread, every
/// rank at once) and its backend options (its device).
struct rank_maker {
  std::function<std::shared_ptr<gpu::communicator>(int rank)> comm;
  std::function<config::backend_config(int rank)> options;
};

/// The same sequences over `ranks` ranks (Gloo on loopback unless `make` says otherwise);
/// `rebalance_after` >= 0 switches every rank to shuffled() after that step.
inline std::vector<seq_state> many_ranks(const model::checkpoint& ckpt, std::vector<seq_state> seqs,
                                         int ranks, const config::backend_config& opts,
                                         int rebalance_after = -1, rank_maker make = {}) {
  const auto& c = ckpt.config();
  auto initial = std::make_shared<const gpu::expert_map>(gpu::expert_map::contiguous(c, ranks));
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i].rank = static_cast<int32_t>(i) % ranks;
  assign_blocks(seqs, 40);
  if (!make.comm) {
    auto rv = gpu::make_local_rendezvous();
    make.comm = [rv, ranks](int r) -> std::shared_ptr<gpu::communicator> {
      return gpu::make_gloo_communicator(r, ranks, *rv, "ep", "", 20s);
    };
  }
  if (!make.options) make.options = [&opts](int) { return opts; };
  std::vector<std::unique_ptr<gpu::backend>> backends(static_cast<size_t>(ranks));
  std::vector<std::future<void>> made;
  for (int r = 0; r < ranks; ++r) {
    made.push_back(std::async(std::launch::async, [&, r] {
      gpu::rank_context ctx;
      ctx.comm = make.comm(r);
      ctx.placement = initial;
      backends[static_cast<size_t>(r)] = gpu::make_backend(ckpt, make.options(r), ctx);
    }));
  }
  for (auto& m : made) m.get();
  auto next = std::make_shared<const gpu::expert_map>(shuffled(c, ranks, 2, 2));
  run_steps(backends, seqs, kSteps, [&](size_t r, int step) {
    if (step == rebalance_after) backends[r]->apply_placement(ckpt, next);
  });
  if (rebalance_after >= 0) {
    for (auto& b : backends) CHECK(b->placement_version() == 2);
  }
  // Every (token, expert) pair was counted once, on the rank that routed it.
  int64_t routed = 0;
  for (auto& b : backends)
    for (const auto& layer : b->take_expert_load())
      routed += std::accumulate(layer.begin(), layer.end(), int64_t{0});
  int64_t tokens_run = 0;
  for (const auto& s : seqs) tokens_run += static_cast<int64_t>(s.tokens.size()) - 1;
  int64_t moe_count = 0;
  for (int64_t l = 0; l < c.num_layers; ++l) moe_count += c.is_moe_layer(l);
  CHECK(routed == tokens_run * moe_count * c.num_experts_per_tok);
  return seqs;
}

/// The same greedy tokens, and every step's last logits within `rel` of the reference
/// relative to the row's largest magnitude.
inline void check_same(const std::vector<seq_state>& ref, const std::vector<seq_state>& got,
                       double rel = 1e-5) {
  REQUIRE(ref.size() == got.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    INFO("sequence " << i << " on rank " << got[i].rank);
    CHECK(got[i].tokens == ref[i].tokens);
    REQUIRE(got[i].last_logits.size() == ref[i].last_logits.size());
    for (size_t s = 0; s < ref[i].last_logits.size(); ++s) {
      INFO("step " << s);
      CHECK(max_rel_diff(got[i].last_logits[s], ref[i].last_logits[s]) < rel);
    }
  }
}

}  // namespace conclave::test::ep
