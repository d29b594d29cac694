// Programmatic dependent launch (gpu/cuda/pdl.h): with it on (Hopper, sm_90a code) and off,
// the decode chain computes the same logits bit for bit: every converted kernel waits for
// the one before it before touching step data. Skips without a GPU; on a card or build
// without sm_90 code both runs are plain launches and the case still checks the override.
#include <numeric>

#include "gpu/cuda/cuda_backend.h"
#include "gpu/cuda/pdl.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"
#include "tests/gpu/cuda_test_util.h"

namespace {

using namespace conclave;

/// Restores the process-wide setting when the case ends.
struct pdl_setting {
  bool before = gpu::cuda::programmatic_launch_on();
  ~pdl_setting() { gpu::cuda::set_programmatic_launch(before); }
};

/// Three sequences: prefills of 9, 17 and 1 tokens, then decode steps of one, two and
/// three sequences (CUDA graphs of buckets 1, 2 and 4) and a prefill chunk after them.
std::vector<float> run_steps(const model::checkpoint& ckpt, bool graphs) {
  auto be = gpu::cuda::make_cuda_backend(ckpt, test::cuda::fast_bf16_backend(graphs));
  std::vector<std::vector<int32_t>> tables(3, std::vector<int32_t>(8));
  for (size_t i = 0; i < 3; ++i) std::iota(tables[i].begin(), tables[i].end(), int32_t(i * 8));
  std::vector<int32_t> cached(3);
  std::vector<float> all;
  gpu::step_output out;
  auto keep = [&] { all.insert(all.end(), out.logits.begin(), out.logits.end()); };
  const size_t lens[] = {9, 17, 1};
  for (size_t i = 0; i < 3; ++i) {
    std::vector<int32_t> prompt(lens[i]);
    std::iota(prompt.begin(), prompt.end(), int32_t(11 * i + 2));
    gpu::step_sequence s{prompt, 0, tables[i], true};
    be->forward({&s, 1}, out);
    keep();
    cached[i] = static_cast<int32_t>(lens[i]);
  }
  for (size_t n : {1, 2, 3, 3, 1}) {
    std::vector<std::vector<int32_t>> tok(n);
    std::vector<gpu::step_sequence> batch;
    for (size_t i = 0; i < n; ++i) {
      tok[i] = {static_cast<int32_t>(100 + 7 * i + static_cast<size_t>(cached[i]))};
      batch.push_back({tok[i], cached[i], tables[i], false});
      ++cached[i];
    }
    be->forward(batch, out);
    keep();
  }
  std::vector<int32_t> chunk(20, 5);
  gpu::step_sequence s{chunk, cached[0], tables[0], true};
  be->forward({&s, 1}, out);
  keep();
  return all;
}

}  // namespace

TEST_CASE("cuda programmatic launches leave every logit of a decode run unchanged",
          "[cuda][model]") {
  CONCLAVE_REQUIRE_GPU();
  pdl_setting restore;
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  for (bool graphs : {false, true}) {
    INFO("cuda graphs " << graphs);
    gpu::cuda::set_programmatic_launch(false);
    CHECK_FALSE(gpu::cuda::programmatic_launch_on());
    const auto plain = run_steps(ckpt, graphs);
    gpu::cuda::set_programmatic_launch(true);
    INFO("programmatic launches on: " << gpu::cuda::programmatic_launch_on());
    const auto pdl = run_steps(ckpt, graphs);
    REQUIRE(pdl.size() == plain.size());
    size_t differ = 0;
    for (size_t i = 0; i < pdl.size(); ++i) differ += pdl[i] != plain[i] ? 1 : 0;
    CHECK(differ == 0);
  }
}
