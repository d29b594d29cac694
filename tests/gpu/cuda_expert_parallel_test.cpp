// Expert parallelism on CUDA ranks (docs/cluster.md §5, §6). gloo_shared_device: two cuda
// ranks on device 0, threads of this process over Gloo on loopback, host-staged, give one
// cuda rank's greedy tokens; last logits within 1e-5 relative with fp32 weights and
// within the bf16 tolerance of docs/FIDELITY.md (2e-2) with bf16 weights; also after a
// placement change between steps (experts moved, two copied on every rank) and with an
// idle rank. device_exchange: the same over a communicator of device buffers (the
// exchange NCCL runs), two ranks sharing device 0, and bit for bit the host-staged
// results. nccl_one_rank: a one-rank NCCL communicator on device buffers. nccl_ranks:
// replicas of 2 and 4 ranks on as many GPUs over NCCL against one GPU, on every MoE
// fixture (skipped with fewer than 2 GPUs). Every case skips without a GPU (and without
// Gloo or NCCL where it needs them).
#include <catch2/catch.hpp>
#include <numeric>
#include <set>

#include "gpu/backend.h"
#include "gpu/collectives.h"
#include "gpu/cuda/cuda_backend.h"
#include "gpu/devices.h"
#include "model/checkpoint.h"
#include "model/gen_model.h"
#include "tests/fixture.h"
#include "tests/gpu/cuda_test_util.h"
#include "tests/gpu/ep_rig.h"

namespace {

using namespace conclave;
using namespace conclave::test::ep;

config::backend_config cuda_options(const std::string& weight_dtype, bool fast) {
  config::backend_config b;
  b.kind = "cuda";
  b.num_kv_blocks = 160;  // two ranks share the device: no share-of-the-card sizing
  b.block_size = 8;
  b.weight_dtype = weight_dtype;
  b.cuda_fast_paths = fast;
  b.cuda_graphs = fast;  // an expert-parallel rank must bypass them
  return b;
}

/// Rank 0 of a replica of two whose collectives are never called (construction and
/// placement changes run none).
class two_ranks final : public gpu::communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string_view kind() const override { return "test"; }
  void all_to_all_v(const void*, std::span<const int64_t>, void*, std::span<const int64_t>,
                    size_t) override {
    fail();
  }
  void all_gather(const void*, void*, size_t) override { fail(); }
  void all_reduce_sum(float*, size_t) override { fail(); }
  void all_reduce_sum(int64_t*, size_t) override { fail(); }
  void barrier() override { fail(); }
  void abort() override {}

 private:
  [[noreturn]] static void fail() { throw gpu::collective_error("two_ranks: no collectives"); }
};

/// Ranks of one replica on device 0 over the in-process communicator of device buffers.
rank_maker local_device_ranks(int ranks) {
  auto group = gpu::make_local_device_group(ranks, std::chrono::seconds(60));
  return {[group](int r) -> std::shared_ptr<gpu::communicator> {
            return gpu::make_local_device_communicator(group, r, 0);
          },
          {}};
}

/// The weight modes two ranks on one device are checked in: fp32 weights (the exactness
/// mode) with and without the fast paths, and bf16 on the fast paths within
/// docs/FIDELITY.md's last-logit tolerance.
struct ep_mode {
  const char* dtype;
  bool fast;
  double rel;
};
constexpr ep_mode kEpModes[] = {{"f32", true, 1e-5}, {"f32", false, 1e-5}, {"bf16", true, 2e-2}};

/// Every step's last logits bit for bit, and the same tokens.
void check_identical(const std::vector<seq_state>& a, const std::vector<seq_state>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("sequence " << i);
    CHECK(a[i].tokens == b[i].tokens);
    CHECK(a[i].last_logits == b[i].last_logits);
  }
}

}  // namespace

TEST_CASE("gloo_shared_device: 2 cuda ranks on one device give 1 cuda rank's tokens",
          "[cuda][ep]") {
  CONCLAVE_REQUIRE_GPU();
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  for (const char* name : {"tiny_moe", "moe_mixed_f16"}) {
    const model::checkpoint ckpt(test::data_dir() / name);
    const auto seqs = prompts(test::data_dir() / name);
    for (const ep_mode& m : kEpModes) {
      const auto opts = cuda_options(m.dtype, m.fast);
      const auto ref = one_rank(ckpt, seqs, opts);
      {
        INFO(name << " " << m.dtype << " fast paths " << m.fast << " over 2 ranks");
        check_same(ref, many_ranks(ckpt, seqs, 2, opts), m.rel);
      }
      {
        INFO(name << " " << m.dtype << " fast paths " << m.fast
                  << " over 2 ranks, rebalanced after step 1");
        check_same(ref, many_ranks(ckpt, seqs, 2, opts, 1), m.rel);
      }
    }
  }
}

TEST_CASE("gloo_shared_device: an idle cuda rank joins every MoE layer", "[cuda][ep]") {
  CONCLAVE_REQUIRE_GPU();
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  auto seqs = prompts(test::data_dir() / "tiny_moe");
  seqs.resize(1);  // one sequence, two ranks: rank 1 is idle every step
  const auto opts = cuda_options("f32", true);
  const auto ref = one_rank(ckpt, seqs, opts);
  check_same(ref, many_ranks(ckpt, seqs, 2, opts), 1e-5);
}

TEST_CASE("gloo_shared_device: a cuda rank holds only its experts and reloads on a new placement",
          "[cuda][ep]") {
  CONCLAVE_REQUIRE_GPU();
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  const auto& c = ckpt.config();
  const auto opts = cuda_options("f32", true);
  auto whole = gpu::make_backend(ckpt, opts);
  CHECK(whole->placement_version() == 0);
  CHECK(whole->take_expert_load().empty());
  CHECK_THROWS_AS(whole->apply_placement(ckpt, nullptr), std::logic_error);
  const size_t whole_bytes = dynamic_cast<gpu::cuda::cuda_backend_api&>(*whole).weight_bytes();

  // Rank 0 of 2 (no collective runs here): half of every MoE layer's experts.
  gpu::rank_context ctx;
  ctx.comm = std::make_shared<two_ranks>();
  ctx.placement = std::make_shared<const gpu::expert_map>(gpu::expert_map::contiguous(c, 2));
  auto rank0 = gpu::make_backend(ckpt, opts, ctx);
  auto& api = dynamic_cast<gpu::cuda::cuda_backend_api&>(*rank0);
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < c.num_layers; ++l) moe_layers += c.is_moe_layer(l);
  const size_t expert_bytes = 3 * static_cast<size_t>(c.hidden_size * c.moe_intermediate_size) *
                              sizeof(float);  // f32 weights
  const size_t half_experts = static_cast<size_t>(moe_layers * c.num_experts / 2);
  CHECK(api.weight_bytes() == whole_bytes - half_experts * expert_bytes);

  // Every expert on rank 0 (version 3): the lost half comes back from the checkpoint.
  auto all_here = gpu::expert_map::contiguous(c, 2);
  for (auto& layer : all_here.holders)
    for (auto& holders : layer) holders = {0};
  all_here.version = 3;
  rank0->apply_placement(ckpt, std::make_shared<const gpu::expert_map>(all_here));
  CHECK(rank0->placement_version() == 3);
  CHECK(api.weight_bytes() == whole_bytes);
  // A placement for another replica size is refused and changes nothing.
  CHECK_THROWS_AS(rank0->apply_placement(ckpt, std::make_shared<const gpu::expert_map>(
                                                   gpu::expert_map::contiguous(c, 4))),
                  std::invalid_argument);
  CHECK(rank0->placement_version() == 3);
  const auto load = rank0->take_expert_load();
  REQUIRE(load.size() == static_cast<size_t>(c.num_layers));
  for (const auto& layer : load)
    CHECK(std::accumulate(layer.begin(), layer.end(), int64_t{0}) == 0);
  CHECK(rank0->take_ep_stats().layers == 0);
}

TEST_CASE("gpu_uuid names each visible card once, as nvidia-smi does", "[cuda][ep]") {
  CONCLAVE_REQUIRE_GPU();
  std::set<std::string> seen;
  for (int d = 0; d < gpu::cuda::device_count(); ++d) {
    const std::string id = gpu::gpu_uuid(d);
    INFO("device " << d << ": " << id);
    REQUIRE(id.size() == 40);  // GPU- and 8-4-4-4-12 hex digits
    CHECK(id.rfind("GPU-", 0) == 0);
    for (size_t i : {12, 17, 22, 27}) CHECK(id[i] == '-');
    CHECK(seen.insert(id).second);
  }
  CHECK(gpu::gpu_uuid(gpu::cuda::device_count()).empty());
  CHECK(gpu::gpu_uuid(-1).empty());
}

TEST_CASE("nccl_one_rank: a one-rank NCCL communicator moves device buffers", "[cuda][nccl]") {
  CONCLAVE_REQUIRE_GPU();
  if (!gpu::have_nccl()) CONCLAVE_SKIP("built without NCCL");
  using test::cuda::device_buffer;
  const auto id = gpu::nccl_unique_id();
  auto comm = gpu::make_nccl_communicator(0, 1, id, 0, nullptr);
  REQUIRE(comm->size() == 1);
  CHECK(comm->rank() == 0);
  CHECK(comm->kind() == "nccl");

  // all_to_all_v to itself, and with nothing to send.
  const std::vector<int32_t> values{7, -3, 11, 42, 5};
  auto send = device_buffer::from(values);
  device_buffer recv(values.size() * sizeof(int32_t));
  recv.fill(0xff);
  const std::vector<int64_t> counts{static_cast<int64_t>(values.size())};
  comm->all_to_all_v(send.get(), counts, recv.get(), counts, sizeof(int32_t));
  CHECK(recv.to_vector<int32_t>(values.size()) == values);
  const std::vector<int64_t> none{0};
  comm->all_to_all_v(send.get(), none, recv.get(), none, sizeof(int32_t));
  CHECK(recv.to_vector<int32_t>(values.size()) == values);

  // all_gather of one rank: its own bytes.
  const std::vector<int64_t> mine{3, 1, 4};
  auto g_send = device_buffer::from(mine);
  device_buffer g_recv(mine.size() * sizeof(int64_t));
  g_recv.fill(0xff);
  comm->all_gather(g_send.get(), g_recv.get(), mine.size() * sizeof(int64_t));
  CHECK(g_recv.to_vector<int64_t>(mine.size()) == mine);

  // all_reduce_sum over one rank leaves the values as they are, in place.
  const std::vector<float> f{1.5f, -2.25f, 1e30f};
  auto fd = device_buffer::from(f);
  comm->all_reduce_sum(fd.as<float>(), f.size());
  CHECK(fd.to_vector<float>(f.size()) == f);
  const std::vector<int64_t> i{int64_t{1} << 40, -7, 0};
  auto id_buf = device_buffer::from(i);
  comm->all_reduce_sum(id_buf.as<int64_t>(), i.size());
  CHECK(id_buf.to_vector<int64_t>(i.size()) == i);

  comm->barrier();
  comm->abort();
  CHECK_THROWS_AS(comm->barrier(), gpu::collective_error);
}

TEST_CASE(
    "device_exchange: 2 cuda ranks over device buffers give 1 rank's tokens, bit for bit "
    "the host-staged ones",
    "[cuda][ep]") {
  CONCLAVE_REQUIRE_GPU();
  for (const char* name : {"tiny_moe", "moe_mixed_f16", "moe_fp8"}) {
    const model::checkpoint ckpt(test::data_dir() / name);
    const auto seqs = prompts(test::data_dir() / name);
    for (const ep_mode& m : kEpModes) {
      const auto opts = cuda_options(m.dtype, m.fast);
      const auto ref = one_rank(ckpt, seqs, opts);
      INFO(name << " " << m.dtype << " fast paths " << m.fast << " over 2 ranks");
      const auto device = many_ranks(ckpt, seqs, 2, opts, -1, local_device_ranks(2));
      check_same(ref, device, m.rel);
      {
        INFO("rebalanced after step 1");
        check_same(ref, many_ranks(ckpt, seqs, 2, opts, 1, local_device_ranks(2)), m.rel);
      }
      if (gpu::have_gloo()) {
        INFO("against the host-staged exchange");
        check_identical(device, many_ranks(ckpt, seqs, 2, opts));
      }
    }
  }
  {
    // One sequence: rank 1 is idle every step and still joins every MoE layer.
    const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
    auto seqs = prompts(test::data_dir() / "tiny_moe");
    seqs.resize(1);
    const auto opts = cuda_options("f32", true);
    check_same(one_rank(ckpt, seqs, opts),
               many_ranks(ckpt, seqs, 2, opts, -1, local_device_ranks(2)), 1e-5);
  }
}

TEST_CASE("device_exchange: the local device communicator's collectives", "[cuda][ep]") {
  CONCLAVE_REQUIRE_GPU();
  using test::cuda::device_buffer;
  constexpr int kRanks = 3;
  auto group = gpu::make_local_device_group(kRanks, std::chrono::seconds(30));
  std::vector<std::future<void>> done;
  std::vector<std::vector<int32_t>> got(kRanks);
  std::vector<std::vector<int64_t>> gathered(kRanks);
  std::vector<std::vector<float>> summed(kRanks);
  for (int r = 0; r < kRanks; ++r) {
    done.push_back(std::async(std::launch::async, [&, r] {
      auto comm = gpu::make_local_device_communicator(group, r, 0);
      CHECK(comm->device_buffers());
      // Rank r sends d + 1 values (r * 10 + d, repeated) to rank d.
      std::vector<int32_t> send;
      std::vector<int64_t> send_counts, recv_counts;
      for (int d = 0; d < kRanks; ++d) {
        send_counts.push_back(d + 1);
        for (int i = 0; i <= d; ++i) send.push_back(r * 10 + d);
        recv_counts.push_back(r + 1);
      }
      auto s = device_buffer::from(send);
      device_buffer v(static_cast<size_t>(kRanks * (r + 1)) * sizeof(int32_t));
      comm->all_to_all_v(s.get(), send_counts, v.get(), recv_counts, sizeof(int32_t));
      got[static_cast<size_t>(r)] = v.to_vector<int32_t>(static_cast<size_t>(kRanks * (r + 1)));
      const std::vector<int64_t> mine{r, -r};
      auto g = device_buffer::from(mine);
      device_buffer all(kRanks * 2 * sizeof(int64_t));
      comm->all_gather(g.get(), all.get(), 2 * sizeof(int64_t));
      gathered[static_cast<size_t>(r)] = all.to_vector<int64_t>(kRanks * 2);
      auto f = device_buffer::from(std::vector<float>{1.0f, static_cast<float>(r)});
      comm->all_reduce_sum(f.as<float>(), 2);
      summed[static_cast<size_t>(r)] = f.to_vector<float>(2);
      comm->barrier();
      // A count that does not match the sender's fails on the receiver (rank 0 expects 2
      // from each, 1 comes), and no rank hangs.
      const std::vector<int64_t> expect(kRanks, r == 0 ? 2 : 1);
      const std::vector<int64_t> ones(kRanks, 1);
      device_buffer big(kRanks * 2 * sizeof(int32_t));
      if (r == 0) {
        CHECK_THROWS_AS(comm->all_to_all_v(s.get(), ones, big.get(), expect, sizeof(int32_t)),
                        gpu::collective_error);
      } else {
        CHECK_NOTHROW(comm->all_to_all_v(s.get(), ones, big.get(), expect, sizeof(int32_t)));
      }
      comm->barrier();
      if (r == 1) comm->abort();
    }));
  }
  for (auto& d : done) d.get();
  for (int r = 0; r < kRanks; ++r) {
    std::vector<int32_t> want;
    for (int src = 0; src < kRanks; ++src)
      for (int i = 0; i <= r; ++i) want.push_back(src * 10 + r);
    CHECK(got[static_cast<size_t>(r)] == want);
    CHECK(gathered[static_cast<size_t>(r)] == std::vector<int64_t>{0, 0, 1, -1, 2, -2});
    CHECK(summed[static_cast<size_t>(r)] == std::vector<float>{3.0f, 3.0f});
  }
  auto after = gpu::make_local_device_communicator(group, 0, 0);
  CHECK_THROWS_AS(after->barrier(), gpu::collective_error);

  // A peer that never comes: the waiting rank times out and the group aborts, so the late
  // rank's next collective fails at once instead of meeting a half-finished barrier.
  auto pair = gpu::make_local_device_group(2, std::chrono::milliseconds(200));
  auto waiting = gpu::make_local_device_communicator(pair, 0, 0);
  auto late = gpu::make_local_device_communicator(pair, 1, 0);
  CHECK_THROWS_WITH(waiting->barrier(), Catch::Contains("did not arrive"));
  CHECK_THROWS_WITH(late->barrier(), Catch::Contains("aborted"));
}

TEST_CASE(
    "nccl_ranks: replicas of 2 and 4 GPU ranks over NCCL give one GPU's tokens on every "
    "MoE fixture",
    "[cuda][nccl][multi_gpu]") {
  CONCLAVE_REQUIRE_GPU();
  if (!gpu::have_nccl()) CONCLAVE_SKIP("built without NCCL");
  const int gpus = gpu::cuda::device_count();
  if (gpus < 2) CONCLAVE_SKIP("needs 2 or more GPUs (NCCL takes one rank per device)");
  struct mode {
    const char* dtype;
    double rel;
  };
  const mode modes[] = {{"f32", 1e-5}, {"bf16", 2e-2}};
  for (const char* name : {"tiny_moe", "moe_mixed_f16", "moe_f32_altkeys", "moe_fp8", "moe_awq",
                           "moe_swa", "moe_yarn"}) {
    const model::checkpoint ckpt(test::data_dir() / name);
    const auto seqs = prompts(test::data_dir() / name);
    for (const mode& m : modes) {
      const auto opts = cuda_options(m.dtype, true);
      const auto ref = one_rank(ckpt, seqs, opts);
      for (int ranks : {2, 4}) {
        if (ranks > gpus) continue;
        INFO(name << " " << m.dtype << " over " << ranks << " GPUs (NCCL)");
        const auto id = gpu::nccl_unique_id();
        rank_maker nccl{[id, ranks](int r) -> std::shared_ptr<gpu::communicator> {
                          return gpu::make_nccl_communicator(r, ranks, id, r, nullptr);
                        },
                        [opts](int r) {
                          auto o = opts;
                          o.device = r;
                          return o;
                        }};
        check_same(ref, many_ranks(ckpt, seqs, ranks, opts, -1, nccl), m.rel);
      }
    }
  }
}

TEST_CASE(
    "weights_on_device: a folder without weights runs as the same weights written to disk, "
    "on one rank and over two (experts regenerated on a new placement)",
    "[cuda][ep][gen_model]") {
  CONCLAVE_REQUIRE_GPU();
  test::temp_dir tmp;
  model::gen_model_options o;
  o.preset = "tiny";
  o.seed = 11;
  model::write_random_checkpoint(o, tmp.path() / "stored");
  o.weights_on_device = true;
  model::write_random_checkpoint(o, tmp.path() / "device");
  const model::checkpoint stored(tmp.path() / "stored"), device(tmp.path() / "device");
  REQUIRE(device.random_weights());
  // Prompts of the tiny preset's vocabulary.
  std::vector<seq_state> seqs;
  for (int s = 0; s < 3; ++s) {
    std::vector<int32_t> p;
    for (int i = 0; i < 6 + 3 * s; ++i) p.push_back((s * 37 + i * 11) % 200);
    seqs.push_back(seq_state{p, 0, 0, {}, {}});
  }
  // bf16: gen-model stores the bf16 rounding of the values the device generates.
  const auto opts = cuda_options("bf16", true);
  const auto ref = one_rank(stored, seqs, opts);
  check_identical(ref, one_rank(device, seqs, opts));
  check_same(ref, many_ranks(device, seqs, 2, opts, 1, local_device_ranks(2)), 2e-2);
}
