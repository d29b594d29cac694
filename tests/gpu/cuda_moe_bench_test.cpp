// cuda_backend_api::time_moe_layer (`conclave bench moe`): it runs the kernels a step of
// that many tokens runs, counts the experts the tokens reached, and leaves the backend
// computing what it computed before. CONCLAVE_GROUPED_MAX_TOKENS: larger steps' experts
// through the grouped launches, graphs only for buckets that take them. Skips without a GPU.
#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <stdexcept>

#include "gpu/cuda/cuda_backend.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"
#include "tests/gpu/cuda_test_util.h"

namespace {

using namespace conclave;

/// Logits of a 12-token prefill then three one-token decode steps (graphs where on).
std::vector<float> prefill_and_decode(gpu::backend& be) {
  std::vector<int32_t> prompt(12), table(4);
  std::iota(prompt.begin(), prompt.end(), 3);
  std::iota(table.begin(), table.end(), 0);
  gpu::step_output out;
  gpu::step_sequence p{prompt, 0, table, false};
  be.forward({&p, 1}, out);
  std::vector<float> all(out.logits.begin(), out.logits.end());
  for (int32_t i = 0; i < 3; ++i) {
    std::vector<int32_t> one = {7 + i};
    gpu::step_sequence d{one, 12 + i, table, false};
    be.forward({&d, 1}, out);
    all.insert(all.end(), out.logits.begin(), out.logits.end());
  }
  return all;
}

}  // namespace

TEST_CASE("time_moe_layer runs a step's MoE kernels and leaves the backend's results unchanged",
          "[cuda][model]") {
  CONCLAVE_REQUIRE_GPU();
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  const auto b = test::cuda::fast_bf16_backend(true);
  const auto want = prefill_and_decode(*gpu::cuda::make_cuda_backend(ckpt, b));
  auto be = gpu::cuda::make_cuda_backend(ckpt, b);
  const size_t E = static_cast<size_t>(ckpt.config().num_experts);
  const size_t k = static_cast<size_t>(ckpt.config().num_experts_per_tok);
  for (size_t tokens : {size_t{1}, size_t{5}, size_t{64}, size_t{200}}) {
    INFO(tokens << " tokens");
    const auto t = be->time_moe_layer(tokens, 2);
    INFO("kernels: " << t.path);
    CHECK(t.us > 0);
    CHECK(t.experts_run >= k);
    CHECK(t.experts_run <= std::min(E, tokens * k));
    CHECK(t.graph == (tokens <= 128));  // a decode step of that many tokens is a graph
    CHECK(t.path.find(tokens <= 16 ? "one launch" : "router top-k") != std::string::npos);
    if (tokens == 1) CHECK(t.path.find("SwiGLU") != std::string::npos);
    if (tokens > 128) CHECK(t.path.find("host sync") != std::string::npos);
  }
  CHECK_THROWS_AS(be->time_moe_layer(0, 1), std::invalid_argument);
  CHECK_THROWS_AS(be->time_moe_layer(4, 0), std::invalid_argument);
  test::cuda::check_close(prefill_and_decode(*be), want, 1e-6, 1e-6);
}

namespace {

/// All logits of a 200-token prefill (more than the grouped launches' default 128).
std::vector<float> long_prefill(gpu::backend& be) {
  std::vector<int32_t> prompt(200), table(16);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 37) % 8000);
  std::iota(table.begin(), table.end(), 0);
  gpu::step_sequence p{prompt, 0, table, true};
  gpu::step_output out;
  be.forward({&p, 1}, out);
  return {out.logits.begin(), out.logits.end()};
}

}  // namespace

TEST_CASE(
    "CONCLAVE_GROUPED_MAX_TOKENS moves large steps' experts from cuBLAS to the grouped launches",
    "[cuda][model]") {
  CONCLAVE_REQUIRE_GPU();
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  const auto b = test::cuda::fast_bf16_backend(true);
  auto plain = gpu::cuda::make_cuda_backend(ckpt, b);
  CHECK(plain->time_moe_layer(200, 1).path.find("host sync") != std::string::npos);
  const auto want = long_prefill(*plain);
  {
    // Past the grouped launches' size every expert can go to cuBLAS (a host sync either way).
    scoped_env env("CONCLAVE_LIGHT_EXPERTS", "0");
    auto cublas = gpu::cuda::make_cuda_backend(ckpt, b);
    CHECK(cublas->time_moe_layer(200, 1).path.find("cuBLAS GEMM per expert") != std::string::npos);
    test::cuda::check_close(long_prefill(*cublas), want, 2e-2, 2e-2);
  }
  {
    scoped_env env("CONCLAVE_GROUPED_MAX_TOKENS", "4096");
    auto grouped = gpu::cuda::make_cuda_backend(ckpt, b);
    const auto t = grouped->time_moe_layer(200, 1);
    INFO("kernels: " << t.path);
    CHECK(t.path.find("tensor-core") != std::string::npos);
    CHECK_FALSE(t.graph);  // no decode step of 200 tokens is a graph
    // Other kernels, other summation order: bf16's tolerance, not bit equality.
    test::cuda::check_close(long_prefill(*grouped), want, 2e-2, 2e-2);
  }
  {
    // Below a graph bucket: that bucket's steps run eagerly (a graph holds no host sync).
    scoped_env env("CONCLAVE_GROUPED_MAX_TOKENS", "2");
    auto be = gpu::cuda::make_cuda_backend(ckpt, b);
    std::vector<std::vector<int32_t>> tables(3, std::vector<int32_t>(2));
    for (size_t i = 0; i < 3; ++i) std::iota(tables[i].begin(), tables[i].end(), int32_t(2 * i));
    std::vector<int32_t> prompt = {5, 6, 7};
    gpu::step_output out;
    for (size_t i = 0; i < 3; ++i) {
      gpu::step_sequence s{prompt, 0, tables[i], false};
      be->forward({&s, 1}, out);
    }
    std::vector<int32_t> tok = {9};
    std::vector<gpu::step_sequence> two = {{tok, 3, tables[0], false}, {tok, 3, tables[1], false}};
    be->forward(two, out);
    CHECK(be->last_step_was_graph());
    std::vector<gpu::step_sequence> three = {
        {tok, 4, tables[0], false}, {tok, 4, tables[1], false}, {tok, 3, tables[2], false}};
    be->forward(three, out);
    CHECK_FALSE(be->last_step_was_graph());
  }
  {
    scoped_env env("CONCLAVE_GROUPED_MAX_TOKENS", "lots");
    CHECK_THROWS_WITH(gpu::cuda::make_cuda_backend(ckpt, b),
                      Catch::Contains("CONCLAVE_GROUPED_MAX_TOKENS must be a positive integer"));
  }
}

TEST_CASE(
    "CONCLAVE_ROUTE_PERMUTE_MAX_TOKENS routes larger steps inside the permutation, same logits",
    "[cuda][model]") {
  CONCLAVE_REQUIRE_GPU();
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  const auto b = test::cuda::fast_bf16_backend(false);
  auto plain = gpu::cuda::make_cuda_backend(ckpt, b);
  CHECK(plain->time_moe_layer(64, 1).path.find("router top-k") != std::string::npos);
  const auto want = long_prefill(*plain);
  scoped_env env("CONCLAVE_ROUTE_PERMUTE_MAX_TOKENS", "256");
  auto fused = gpu::cuda::make_cuda_backend(ckpt, b);
  CHECK(fused->time_moe_layer(64, 1).path.find("one launch") != std::string::npos);
  // The one-launch routing and permutation equal the two launches bit for bit.
  CHECK(long_prefill(*fused) == want);
}
