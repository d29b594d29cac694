// The plain parts of expert-parallel replicas: what a node is asked to load for each rank
// and the KV shape the ranks share (actors/cluster_bringup), the step each rank gets and
// what the answers add up to (actors/rank_step_plan).
#include <catch2/catch.hpp>

#include "actors/cluster_bringup.h"
#include "actors/rank_step_plan.h"

using namespace conclave;
using namespace conclave::actors;

TEST_CASE("make_rank_spec carries the coordinator's backend settings and fences the epoch",
          "[actors][cluster]") {
  cluster_replica_options cl;
  cl.backend.block_size = 32;
  cl.backend.num_kv_blocks = 77;
  cl.backend.kv_cache_bytes = 1u << 30;
  cl.backend.kv_offload_bytes = 5;
  cl.backend.kv_host_prefix_bytes = 6;
  cl.backend.threads = 3;
  cl.backend.weight_dtype = "f32";
  cl.backend.kv_cache_dtype = "fp8";
  cl.data_iface = "eth1";
  cl.collective_timeout_s = 12.5;
  gpu::expert_map placement;
  placement.version = 4;
  const auto spec = make_rank_spec(cl, 2, 9, 1, 4, 3, placement);
  CHECK((spec.replica == 2 && spec.epoch == 9 && spec.rank == 1 && spec.size == 4));
  CHECK(spec.slot == 3);
  CHECK((spec.block_size == 32 && spec.num_kv_blocks == 77 && spec.kv_cache_bytes == 1u << 30));
  CHECK((spec.kv_offload_bytes == 5 && spec.kv_host_prefix_bytes == 6 && spec.threads == 3));
  CHECK((spec.weight_dtype == "f32" && spec.kv_cache_dtype == "fp8"));
  CHECK(spec.placement.version == 4);
  CHECK(spec.prefix == "r2/e9");  // another bring-up of the replica meets under another key
  CHECK((spec.iface == "eth1" && spec.collective_timeout_s == 12.5));
  CHECK(spec.collectives == "gloo");
  CHECK(make_rank_spec(cl, 2, 9, 1, 4, 3, placement, "nccl").collectives == "nccl");
}

TEST_CASE(
    "replica_collectives: NCCL where every rank has a GPU of its own, else Gloo or a "
    "one-line refusal",
    "[actors][cluster]") {
  // No UUIDs (nodes that could not read them): host and ordinal decide.
  const std::vector<rank_place> spread{{"a", 0, ""}, {"a", 1, ""}, {"b", 0, ""}, {"b", 1, ""}};
  const std::vector<rank_place> shared{{"a", 0, ""}, {"a", 1, ""}, {"a", 0, ""}};
  const std::vector<rank_place> with_cpu{{"a", 0, ""}, {"a", -1, ""}};
  CHECK(replica_collectives("auto", spread, true) == "nccl");
  CHECK(replica_collectives("nccl", spread, true) == "nccl");
  CHECK(replica_collectives("gloo", spread, true) == "gloo");
  CHECK(replica_collectives("auto", spread, false) == "gloo");  // NCCL not built
  CHECK(replica_collectives("auto", shared, true) == "gloo");
  CHECK(replica_collectives("auto", with_cpu, true) == "gloo");
  CHECK(replica_collectives("nccl", {{"a", 0, ""}}, true) == "gloo");  // one rank: no collective
  const auto refusal = [](const std::string& setting, const std::vector<rank_place>& ranks,
                          bool built) {
    try {
      replica_collectives(setting, ranks, built);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(refusal("nccl", shared, true) ==
        "collectives = nccl needs every rank on a GPU of its own, but ranks 0 and 2 share a "
        "gpu 0");
  CHECK(refusal("nccl", with_cpu, true) ==
        "collectives = nccl needs every rank on a GPU of its own, but rank 1 (a) is a cpu rank");
  CHECK(refusal("nccl", spread, false).find("built without NCCL") != std::string::npos);
  // With UUIDs the card decides, not the ordinal: two nodes of one host that each see one
  // card as gpu 0 (CUDA_VISIBLE_DEVICES=0 and =1) hold two GPUs; nodes that number one
  // card differently share it.
  const std::vector<rank_place> visible{{"a", 0, "GPU-0a"}, {"a", 0, "GPU-1b"}};
  const std::vector<rank_place> renumbered{{"a", 1, "GPU-1b"}, {"a", 0, "GPU-1b"}};
  const std::vector<rank_place> one_unknown{{"a", 0, "GPU-0a"}, {"a", 0, ""}};
  CHECK(replica_collectives("auto", visible, true) == "nccl");
  CHECK(replica_collectives("auto", renumbered, true) == "gloo");
  CHECK(refusal("nccl", renumbered, true) ==
        "collectives = nccl needs every rank on a GPU of its own, but ranks 0 and 1 share a "
        "gpu 0 (GPU-1b)");
  CHECK(replica_collectives("auto", one_unknown, true) == "gloo");  // host and ordinal
  CHECK(refusal("mpi", spread, true).find("auto, gloo or nccl") != std::string::npos);
}

TEST_CASE("common_kv_shape: the fewest device and host blocks of any rank", "[actors][cluster]") {
  std::vector<rank_ready> ready(3);
  for (size_t i = 0; i < ready.size(); ++i) {
    ready[i].rank = static_cast<int32_t>(i);
    ready[i].block_size = 16;
    ready[i].bytes_per_block = 4096;
  }
  ready[0].num_blocks = 900, ready[1].num_blocks = 700, ready[2].num_blocks = 800;
  ready[0].num_host_blocks = 50, ready[1].num_host_blocks = 60, ready[2].num_host_blocks = 0;
  const auto kv = common_kv_shape(ready);
  CHECK((kv.block_size == 16 && kv.bytes_per_block == 4096));
  CHECK(kv.num_blocks == 700);
  CHECK(kv.num_host_blocks == 0);  // one rank without a host pool: none
}

TEST_CASE("make_rank_step: a rank's sequences and block moves, an idle rank's step empty",
          "[actors][cluster]") {
  std::vector<int32_t> tokens = {5, 6, 7}, table = {3, 9};
  engine::rank_batch part;
  part.entries = {1};
  part.batch.push_back(gpu::step_sequence{tokens, 4, table, true});
  gpu::kv_transfer moves;
  moves.to_host.push_back({2, 20});
  moves.to_device.push_back({4, 40});
  moves.to_device.push_back({5, 50});
  auto msg = make_rank_step(part, moves, 7, 12, 3, true);
  CHECK((msg.epoch == 7 && msg.step == 12 && msg.placement_version == 3 && msg.want_load));
  REQUIRE(msg.seqs.size() == 1);
  CHECK(msg.seqs[0].tokens == tokens);
  CHECK(
      (msg.seqs[0].num_cached == 4 && msg.seqs[0].block_table == table && msg.seqs[0].all_logits));
  CHECK(msg.to_host == std::vector<int32_t>{2, 20});
  CHECK(msg.to_device == std::vector<int32_t>{4, 40, 5, 50});
  const auto idle = make_rank_step(engine::rank_batch{}, gpu::kv_transfer{}, 7, 12, 3, false);
  CHECK((idle.seqs.empty() && idle.to_host.empty() && idle.to_device.empty() && !idle.want_load));
}

TEST_CASE("add_expert_load sums ranks' per-expert counts, rank_output keeps the rows",
          "[actors][cluster]") {
  std::vector<std::vector<int64_t>> total, a = {{1, 2}, {3, 4}}, b = {{10, 20}, {30, 40}};
  add_expert_load(total, a);
  add_expert_load(total, b);
  CHECK(total == std::vector<std::vector<int64_t>>{{11, 22}, {33, 44}});
  rank_step_done done;
  done.vocab = 4;
  done.logits = {1, 2, 3, 4, 5, 6, 7, 8};
  done.row_begin = {0, 1};
  done.sampled = {-1};
  const auto out = rank_output(done);
  CHECK((out.vocab == 4 && out.logits.size() == 8 && out.row_begin == std::vector<size_t>{0, 1}));
  CHECK(out.sampled == std::vector<int32_t>{-1});
}

TEST_CASE("a sequence's sampling spec travels to its rank and back unchanged",
          "[actors][cluster]") {
  std::vector<int32_t> tokens = {5}, table = {3};
  const std::vector<gpu::penalty_entry> pen = {{7, 2, 0.5f}, {11, 0, 1.25f}};
  gpu::device_sampling spec;
  spec.temperature = 0.7f;
  spec.top_k = 20;
  spec.top_p = 0.8f;
  spec.min_p = 0.05f;
  spec.repetition_penalty = 1.1f;
  spec.u = 0.123456789;
  spec.vocab_limit = 1000;
  spec.penalties = pen;
  engine::rank_batch part;
  part.entries = {0, 1};
  part.batch.push_back(gpu::step_sequence{tokens, 4, table, false, &spec});
  part.batch.push_back(gpu::step_sequence{tokens, 4, table, false});
  const auto msg = make_rank_step(part, gpu::kv_transfer{}, 1, 2, 3, false);
  REQUIRE(msg.seqs.size() == 2);
  CHECK(msg.seqs[0].sample);
  CHECK(!msg.seqs[1].sample);
  std::vector<gpu::penalty_entry> storage;
  const auto back = from_wire(msg.seqs[0], storage);
  CHECK((back.temperature == spec.temperature && back.top_k == 20 && back.top_p == spec.top_p));
  CHECK((back.min_p == spec.min_p && back.repetition_penalty == spec.repetition_penalty));
  CHECK((back.u == spec.u && back.vocab_limit == 1000));
  REQUIRE(back.penalties.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(back.penalties[i].token == pen[i].token);
    CHECK(back.penalties[i].repeated == pen[i].repeated);
    CHECK(back.penalties[i].subtract == pen[i].subtract);
  }
  auto broken = msg.seqs[0];
  broken.penalty_subtract.pop_back();
  CHECK_THROWS_AS(from_wire(broken, storage), std::invalid_argument);
}
