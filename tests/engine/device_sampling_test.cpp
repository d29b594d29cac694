// The engine's device-sampling path without a GPU: a backend that samples the rows it is
// handed a device_sampling spec for (with sample_spec, the CUDA sampler's CPU twin) and
// copies no logits for them must give exactly the tokens of host sampling, for every
// sampling mode, mixed with rows that must stay on the host (logprobs).
#include <catch2/catch.hpp>
#include <map>

#include "engine/llm_engine.h"
#include "engine/sampler.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"
#include "tests/tiny_moe.h"

using namespace conclave;

namespace {

/// Wraps the CPU backend: sequences with a spec are sampled here and lose their rows.
class sampling_backend final : public gpu::backend {
 public:
  explicit sampling_backend(std::unique_ptr<gpu::backend> inner) : inner_(std::move(inner)) {}
  std::string_view name() const override { return "sampling-test"; }
  const model::model_config& config() const override { return inner_->config(); }
  gpu::kv_cache_shape kv_shape() const override { return inner_->kv_shape(); }
  bool samples_on_device() const override { return true; }
  void forward(std::span<const gpu::step_sequence> batch, gpu::step_output& out) override {
    gpu::step_output full;
    inner_->forward(batch, full);
    out.vocab = full.vocab;
    out.logits.clear();
    out.row_begin.assign(1, 0);
    out.sampled.assign(batch.size(), -1);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].sample != nullptr) {
        out.sampled[i] = engine::sample_spec(full.last(i), *batch[i].sample);
        ++device_rows;
      } else {
        for (size_t r = full.row_begin[i]; r < full.row_begin[i + 1]; ++r) {
          const auto row = full.row(r);
          out.logits.insert(out.logits.end(), row.begin(), row.end());
        }
      }
      out.row_begin.push_back(out.logits.size() / out.vocab);
    }
  }
  size_t device_rows = 0;

 private:
  std::unique_ptr<gpu::backend> inner_;
};

struct run_result {
  std::vector<std::vector<int32_t>> tokens;
  size_t device_rows = 0;
};

run_result run(bool on_device, const std::vector<engine::sampling_params>& params,
               int64_t vocab_limit) {
  config::engine_config cfg;
  cfg.backend.num_kv_blocks = 256;
  cfg.backend.block_size = 4;
  cfg.sample_on_device = on_device;
  cfg.sampling_vocab_size = vocab_limit;
  auto be = std::make_unique<sampling_backend>(gpu::make_backend(test::tiny_moe(), cfg.backend));
  auto* raw = be.get();
  engine::llm_engine eng(std::move(be), cfg);
  std::map<int64_t, size_t> index;
  for (size_t i = 0; i < params.size(); ++i) {
    std::vector<int32_t> prompt;
    for (size_t j = 0; j < 5 + i; ++j) prompt.push_back(static_cast<int32_t>((j * 37 + i) % 900));
    index[eng.add_request(prompt, params[i])] = i;
  }
  run_result r;
  r.tokens.resize(params.size());
  while (eng.has_work()) {
    for (const auto& e : eng.step()) r.tokens[index[e.id]].push_back(e.token);
  }
  r.device_rows = raw->device_rows;
  return r;
}

}  // namespace

TEST_CASE("device sampling gives host sampling's tokens in every mode", "[engine][sampling]") {
  std::vector<engine::sampling_params> params;
  for (int i = 0; i < 8; ++i) {
    engine::sampling_params p;
    p.max_tokens = 10;
    p.ignore_eos = true;
    p.seed = 100 + static_cast<uint64_t>(i);
    p.temperature = i == 0 ? 0.0f : 0.7f + 0.2f * static_cast<float>(i);
    if (i == 1 || i == 5) p.top_k = 20;
    if (i == 2 || i == 5) p.top_p = 0.8f;
    if (i == 3) p.min_p = 0.1f;
    if (i == 4 || i == 0) {
      p.repetition_penalty = 1.3f;
      p.presence_penalty = 0.5f;
      p.frequency_penalty = 0.2f;
    }
    if (i == 6) p.logprobs = 2;  // stays on the host
    params.push_back(p);
  }
  for (const int64_t limit : {int64_t{0}, int64_t{700}}) {
    const auto host = run(false, params, limit);
    const auto device = run(true, params, limit);
    INFO("vocab limit " << limit);
    CHECK(host.device_rows == 0);
    CHECK(device.device_rows == 7 * 10);  // every token of every request but the logprobs one
    for (size_t i = 0; i < params.size(); ++i) {
      INFO("request " << i);
      CHECK(device.tokens[i].size() == 10);
      CHECK(device.tokens[i] == host.tokens[i]);
      if (limit > 0) {
        for (int32_t t : device.tokens[i]) CHECK(t < limit);
      }
    }
  }
}
