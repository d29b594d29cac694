// The memory planner (gpu/memory_plan.h) against numbers worked out by hand: the tiny
// preset's weights per dtype in bf16, fp8 and awq, its KV bytes per token, the experts of
// an uneven division over ranks, and Qwen3-Coder-480B's refusal and suggestions.
#include <spdlog/fmt/fmt.h>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>

#include "gpu/memory_plan.h"
#include "model/gen_model.h"

namespace {

using namespace conclave;

gpu::plan_inputs tiny(const char* quant = "none") {
  gpu::plan_inputs in;
  in.model = model::find_preset("tiny").config;
  in.model_name = "tiny";
  in.model.quant = gpu::default_quant(quant);
  return in;
}

// tiny: vocab 2048, hidden 64, 3 MoE layers, 4 heads and 2 KV heads of 16, 8 experts of
// width 32, untied lm_head, no biases.
constexpr int64_t kLayers = 3;
constexpr int64_t kAttn = (64 + 32 + 32) * 64 + 64 * 64;  // q, k, v [.., 64] and o [64, 64]
constexpr int64_t kExpert = 3 * 32 * 64;                  // gate, up [32, 64], down [64, 32]
constexpr int64_t kRouter = 8 * 64;
constexpr int64_t kEmbedAndHead = 2 * 2048 * 64;
constexpr size_t kNormBytes = 4 * (kLayers * (64 + 64 + 16 + 16) + 64);  // fp32
// Rows of the quantized projections in a layer: attention 64 + 32 + 32 + 64; experts
// 8 x (32 + 32) with 64 inputs and 8 x 64 (down) with 32 inputs.
constexpr int64_t kAttnRows = 192, kUpRows = 8 * 64, kDownRows = 8 * 64;

}  // namespace

TEST_CASE("memory plan: tiny's weights in bf16 by hand", "[memory_plan]") {
  const auto w = gpu::plan_weights(tiny());
  CHECK(w.quant_data == 0);
  CHECK(w.quant_scales == 0);
  CHECK(w.plain ==
        static_cast<size_t>(kLayers * (kAttn + kRouter + 8 * kExpert) + kEmbedAndHead) * 2);
  CHECK(w.norms == kNormBytes);
  CHECK(w.params == kLayers * (kAttn + kRouter + 8 * kExpert) + kEmbedAndHead +
                        static_cast<int64_t>(kNormBytes / 4));
  auto f32 = tiny();
  f32.weight_elem_bytes = 4;
  CHECK(gpu::plan_weights(f32).plain == 2 * w.plain);
}

TEST_CASE("memory plan: tiny's weights in fp8 by hand", "[memory_plan]") {
  const auto w = gpu::plan_weights(tiny("fp8"));
  // One byte per quantized weight; one fp32 scale per row and 128 inputs (every input
  // count here is <= 128: one group per row).
  CHECK(w.quant_data == static_cast<size_t>(kLayers * (kAttn + 8 * kExpert)));
  CHECK(w.quant_scales == static_cast<size_t>(kLayers * (kAttnRows + kUpRows + kDownRows)) * 4);
  // The router, embeddings and lm_head stay in bf16.
  CHECK(w.plain == static_cast<size_t>(kLayers * kRouter + kEmbedAndHead) * 2);
  CHECK(w.norms == kNormBytes);
}

TEST_CASE("memory plan: tiny's weights in awq by hand", "[memory_plan]") {
  auto in = tiny("awq");
  in.model.quant.group_size = 32;
  const auto w = gpu::plan_weights(in);
  CHECK(w.quant_data == static_cast<size_t>(kLayers * (kAttn + 8 * kExpert)) / 2);
  // Groups of 32: two per row with 64 inputs, one per down row (32 inputs); an fp16
  // scale and a uint8 zero each.
  const size_t groups = static_cast<size_t>(kLayers * ((kAttnRows + kUpRows) * 2 + kDownRows));
  CHECK(w.quant_scales == groups * (2 + 1));
  CHECK(w.plain == static_cast<size_t>(kLayers * kRouter + kEmbedAndHead) * 2);
}

TEST_CASE("memory plan: KV bytes per token and the blocks a budget holds", "[memory_plan]") {
  auto in = tiny();
  in.num_kv_blocks = 100;
  const auto p = gpu::plan_memory(in);
  CHECK(p.kv_bytes_per_token == 2 * 3 * 32 * 2);  // K and V, 3 layers, 2 x 16 wide, bf16
  CHECK(p.kv_bytes_per_block == 16 * p.kv_bytes_per_token);
  CHECK(p.kv_blocks == 100);
  CHECK(p.kv_bytes == 101 * p.kv_bytes_per_block);  // the scratch block included
  CHECK(p.kv_tokens == 1600);
  CHECK(p.full_sequences == 0);  // 4096 tokens are 256 blocks
  CHECK_FALSE(p.fits);
  CHECK(p.reason.find("fewer than one 4096-token sequence") != std::string::npos);

  // Filling the budget: utilization x total - used, less weights and fixed buffers.
  auto fill = tiny();
  fill.device_bytes = size_t{1} << 30;
  fill.device_used_bytes = 0;
  fill.gpu_memory_utilization = 0.5;
  const auto q = gpu::plan_memory(fill);
  const size_t left = (size_t{1} << 29) - q.weights.total() - q.fixed_bytes;
  CHECK(q.kv_blocks == static_cast<int32_t>(left / q.kv_bytes_per_block));
  CHECK(q.full_sequences == q.kv_blocks / 256);
  CHECK(q.fits);
  CHECK(q.verdict().find("tiny (bf16) on 1 x 1.0 GiB GPU at utilization 0.50 fits") == 0);
}

TEST_CASE("memory plan: experts divided over ranks, the largest share counts", "[memory_plan]") {
  auto in = tiny();
  in.ranks = 3;  // 8 experts over 3 ranks: 3, 3, 2
  const auto p = gpu::plan_memory(in);
  CHECK(p.experts_per_rank == 3);
  CHECK(p.weights.plain ==
        static_cast<size_t>(kLayers * (kAttn + kRouter + 3 * kExpert) + kEmbedAndHead) * 2);
  in.ranks = 8;
  CHECK(gpu::plan_memory(in).experts_per_rank == 1);

  gpu::plan_inputs big;
  big.model = model::find_preset("qwen3-coder-480b").config;
  big.ranks = 8;
  CHECK(gpu::plan_memory(big, false).experts_per_rank == 20);
  big.ranks = 7;
  CHECK(gpu::plan_memory(big, false).experts_per_rank == 23);  // 160 = 6 x 23 + 22
}

TEST_CASE("memory plan: a refusal by a known shortfall", "[memory_plan]") {
  // Size the device so that the weights, the fixed buffers and one 4096-token sequence
  // miss the budget by exactly 1 MiB.
  auto in = tiny();
  in.device_used_bytes = 0;
  in.gpu_memory_utilization = 0.5;
  in.cuda_graphs = false;  // their estimate alone would exceed this small device's reserve
  const auto probe = gpu::plan_memory(in);
  const size_t need = probe.weights.total() + probe.fixed_bytes + 256 * probe.kv_bytes_per_block;
  in.device_bytes = 2 * (need - gpu::kMiB);
  const auto p = gpu::plan_memory(in);
  CHECK_FALSE(p.fits);
  CHECK(p.shortfall_bytes == gpu::kMiB);
  // More ranks or fp8 save less than the shortfall; a higher utilization does not.
  CHECK_FALSE(p.min_ranks);
  CHECK(p.quant_fits.empty());
  REQUIRE(p.min_utilization);
  // The first hundredth at which utilization x device covers what is needed.
  const double u =
      std::ceil(100.0 * static_cast<double>(need) / static_cast<double>(in.device_bytes)) / 100.0;
  CHECK(u > 0.5);
  CHECK(*p.min_utilization == Approx(u));
  CHECK(p.verdict().find("short by 1.0 MiB per GPU") != std::string::npos);
  CHECK(p.verdict().find(fmt::format("would fit: gpu_memory_utilization {:.2f}", u)) !=
        std::string::npos);
}

TEST_CASE("memory plan: Qwen3-Coder-480B in fp8 on 8 H200 with a 262K context", "[memory_plan]") {
  gpu::plan_inputs in;
  in.model = model::find_preset("qwen3-coder-480b").config;
  in.model_name = "qwen3-coder-480b";
  in.model.quant = gpu::default_quant("fp8");
  in.ranks = 8;
  in.max_model_len = 262144;
  const auto p = gpu::plan_memory(in);
  // 20 experts per rank of 3 x 6144 x 2560, and every rank's attention, one byte each.
  const int64_t expert = 3 * 6144 * 2560;
  const int64_t attn = (12288 + 1024 + 1024) * 6144 + 6144 * 12288;
  CHECK(p.weights.quant_data == static_cast<size_t>(62 * (20 * expert + attn)));
  // fp32 scales: a row of 6144 inputs has 48, a down row (2560 inputs) 20.
  const int64_t scale_groups = 62 * (20 * (2 * 2560 * 48 + 6144 * 20) + (14336 * 48 + 6144 * 96));
  CHECK(p.weights.quant_scales == static_cast<size_t>(scale_groups) * 4);
  CHECK(p.kv_bytes_per_token == 2 * 62 * 8 * 128 * 2);
  CHECK(p.one_sequence_kv_bytes == size_t{62} << 30);  // 262144 tokens x 248 KiB
  CHECK_FALSE(p.fits);
  CHECK(p.shortfall_bytes > 5 * gpu::kGiB);
  CHECK(p.shortfall_bytes < 6 * gpu::kGiB);
  REQUIRE(p.min_ranks);
  CHECK(*p.min_ranks == 9);
  CHECK(p.quant_fits == std::vector<std::string>{"awq"});
  CHECK(p.verdict().find("would fit: 9 GPUs at fp8, or awq on 8 GPUs, or kv_cache_dtype fp8") !=
        std::string::npos);
  REQUIRE(p.fp8_kv);
  CHECK(p.fp8_kv->fits);
  {
    // An fp8 cache: a byte per element plus an fp32 scale per KV head, rows of 16 bytes:
    // (1024 + 32) x 2 x 62 per token, and the 262K context fits on 8 GPUs.
    auto fp8 = in;
    fp8.kv_fp8 = true;
    const auto q = gpu::plan_memory(fp8);
    CHECK(q.kv_bytes_per_token == 2 * 62 * (1024 + 32));
    CHECK(q.fits);
    CHECK(q.full_sequences >= 1);
    CHECK(q.table().find("KV cache (fp8 e4m3 + fp32 scales)") != std::string::npos);
    // The bf16 plan says what fp8 would hold in the same memory.
    const std::string t = p.table();
    CHECK(t.find("with --kv-cache-dtype fp8") != std::string::npos);
    CHECK(t.find(fmt::format("{} tokens, {} such sequences at once", q.kv_tokens,
                             q.full_sequences)) != std::string::npos);
    CHECK(q.table().find("with --kv-cache-dtype fp8") == std::string::npos);
    // The start-up summary says both.
    const auto lines = p.summary_lines();
    REQUIRE(lines.size() == 4);
    CHECK(lines[2].find("KV cache 56.75 GiB bf16 (239920 tokens, 0 x 262144-token sequences; "
                        "fp8 KV would hold 1)") != std::string::npos);
  }
  // The weights fit; the cache holds less than one sequence: a shorter context would fit.
  CHECK(p.kv_tokens > 0);
  CHECK(p.kv_tokens < 262144);
  CHECK(p.verdict().ends_with(fmt::format(", or max_model_len {}", p.kv_tokens)));
  in.max_model_len = p.kv_tokens;
  CHECK(gpu::plan_memory(in, false).fits);
  in.max_model_len = 262144;
  // In bf16 the same replica is ~900 GB of weights; in awq it fits.
  in.model.quant = gpu::default_quant("none");
  const auto bf16 = gpu::plan_memory(in, false);
  CHECK(bf16.weights.total() > 125 * gpu::kGiB);
  in.model.quant = gpu::default_quant("awq");
  CHECK(gpu::plan_memory(in, false).fits);
}

TEST_CASE("memory plan: impossible inputs are refused", "[memory_plan]") {
  auto in = tiny();
  in.ranks = 0;
  CHECK_THROWS_AS(gpu::plan_memory(in), std::invalid_argument);
  in = tiny();
  in.max_model_len = 4097;
  CHECK_THROWS_WITH(gpu::plan_memory(in), Catch::Contains("beyond the model's"));
  CHECK_THROWS_AS(gpu::default_quant("int8"), std::invalid_argument);
}

TEST_CASE("memory plan: step buffers mirror the CUDA backend's", "[memory_plan]") {
  const auto c = model::find_preset("tiny").config;
  const auto b = gpu::cuda_step_buffers(c, 10, 2);
  CHECK(b.logits == 10 * 2048 * 4);
  CHECK(b.gu == 10 * 2 * 2 * 128 * 4);  // rows x top-2, gate and up of the widest MLP (128)
  CHECK(b.xs == 10 * 2 * 64 * 2);
  CHECK(b.offsets == 9 * 3 * 4);
  CHECK(b.total() > b.logits);
  // Logits only for the rows that want them (a sequence's last token), at most every row.
  CHECK(gpu::cuda_step_buffers(c, 10, 2, 3).logits == 3 * 2048 * 4);
  CHECK(gpu::cuda_step_buffers(c, 10, 2, 30).logits == 10 * 2048 * 4);
}
