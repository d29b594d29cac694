// cuda_backend_api::time_moe_layer (`conclave bench moe`): it runs the kernels a step of
// that many tokens runs, counts the experts the tokens reached, and leaves the backend
// computing what it computed before. Skips without a GPU.
#include <algorithm>
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
    if (tokens > 128) CHECK(t.path.find("cuBLAS") != std::string::npos);
  }
  CHECK_THROWS_AS(be->time_moe_layer(0, 1), std::invalid_argument);
  CHECK_THROWS_AS(be->time_moe_layer(4, 0), std::invalid_argument);
  test::cuda::check_close(prefill_and_decode(*be), want, 1e-6, 1e-6);
}
