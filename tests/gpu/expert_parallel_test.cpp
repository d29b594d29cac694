// Expert parallelism on CPU ranks: the MoE layer spread over ranks (threads of this
// process over Gloo on loopback) gives what one rank gives. Each rank runs attention for
// its own sequences; every MoE layer dispatches rows to the ranks holding their experts
// and combines them back. Checked on every MoE fixture in tests/data: the same greedy
// tokens, logits within 1e-5 relative to the row's largest magnitude, also after the
// placement changes (experts moved and copied) between steps, and with idle ranks.
#include <catch2/catch.hpp>
#include <cmath>
#include <future>
#include <map>
#include <mutex>
#include <numeric>

#include "gpu/backend.h"
#include "gpu/cpu/cpu_weights.h"
#include "gpu/cpu/moe.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"
#include "tests/gpu/ep_rig.h"
#include "tests/skip.h"

namespace {

using namespace conclave;
using namespace conclave::test::ep;
using namespace std::chrono_literals;

config::backend_config options() {
  config::backend_config b;
  b.num_kv_blocks = 160;
  b.block_size = 8;
  b.threads = 1;  // ranks are threads already
  return b;
}

const char* const kMoeFixtures[] = {"tiny_moe", "moe_mixed_f16", "moe_f32_altkeys"};

}  // namespace

TEST_CASE("moe_forward_ep on one rank is bit-equal to moe_forward", "[expert_parallel]") {
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  const auto& c = ckpt.config();
  const auto w = gpu::cpu::load_cpu_weights(ckpt, 1);
  const size_t tokens = 7, hidden = static_cast<size_t>(c.hidden_size);
  std::vector<float> h(tokens * hidden);
  for (size_t i = 0; i < h.size(); ++i) h[i] = std::sin(0.37f * float(i));
  std::vector<float> a(h.size()), b(h.size());
  gpu::cpu::moe_forward(w.layers[0], c, h.data(), a.data(), tokens);
  auto self = gpu::make_self_communicator();
  const bool moe[4] = {true, true, true, true};
  const auto map = gpu::expert_map::contiguous(moe, static_cast<int32_t>(c.num_experts), 1);
  gpu::ep_stats stats;
  gpu::cpu::moe_forward_ep(w.layers[0], c, *self, map, 0, h.data(), b.data(), tokens, nullptr,
                           nullptr, &stats);
  CHECK(a == b);
  CHECK(stats.layers == 1);
}

TEST_CASE("a rank refuses a placement that does not fit its replica", "[expert_parallel]") {
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  gpu::rank_context ctx;
  ctx.comm = std::shared_ptr<gpu::communicator>(gpu::make_self_communicator());
  const bool moe[3] = {true, true, true};  // the model has 4 layers
  ctx.placement = std::make_shared<const gpu::expert_map>(gpu::expert_map::contiguous(moe, 16, 1));
  // One rank is not expert-parallel: the placement is ignored, the backend is today's.
  CHECK_NOTHROW(gpu::make_backend(ckpt, options(), ctx));
  gpu::expert_map bad;
  bad.ranks = 1;
  bad.holders.resize(4);
  bad.holders[0].resize(16);  // no holders for its experts
  CHECK(bad.check(4, 16).find("on no rank") != std::string::npos);
}

TEST_CASE("expert-parallel ranks over Gloo give one rank's tokens and logits",
          "[expert_parallel]") {
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  for (const char* name : kMoeFixtures) {
    const model::checkpoint ckpt(test::data_dir() / name);
    const auto seqs = prompts(test::data_dir() / name);
    const auto ref = one_rank(ckpt, seqs, options());
    for (int ranks : {2, 4}) {
      INFO(name << " over " << ranks << " ranks");
      check_same(ref, many_ranks(ckpt, seqs, ranks, options()));
    }
  }
}

TEST_CASE("a placement change between steps leaves tokens and logits unchanged",
          "[expert_parallel]") {
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  for (const char* name : kMoeFixtures) {
    const model::checkpoint ckpt(test::data_dir() / name);
    const auto seqs = prompts(test::data_dir() / name);
    const auto ref = one_rank(ckpt, seqs, options());
    for (int ranks : {2, 4}) {
      INFO(name << " over " << ranks << " ranks, rebalanced after step 1");
      check_same(ref, many_ranks(ckpt, seqs, ranks, options(), 1));
    }
  }
}

TEST_CASE("idle ranks join every MoE layer with nothing to send", "[expert_parallel]") {
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  auto seqs = prompts(test::data_dir() / "tiny_moe");
  seqs.resize(1);  // one sequence, four ranks: three are idle every step
  const auto ref = one_rank(ckpt, seqs, options());
  check_same(ref, many_ranks(ckpt, seqs, 4, options()));
}
