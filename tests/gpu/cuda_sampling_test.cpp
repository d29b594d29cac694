// Device sampling against its CPU twin (engine::sample_spec, which is the request's own
// sampler): the same token for the same draw in every mode — greedy, temperature, top-k,
// top-p, min-p, penalties, a vocabulary limit — on fresh random rows of several sizes,
// peaked and flat, with exact ties; then the engine on the CUDA backend gives the same
// seeded tokens sampling on the device as on the host. Skips without a GPU.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "engine/llm_engine.h"
#include "engine/sampler.h"
#include "gpu/cuda/cuda_backend.h"
#include "gpu/cuda/sampling_rows.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"
#include "tests/gpu/cuda_test_util.h"

namespace {

using namespace conclave;
using gpu::cuda::sample_penalty;
using gpu::cuda::sample_row;

/// A random spec: each mode on in some rows, off in others.
gpu::device_sampling random_spec(std::mt19937_64& rng, int32_t vocab) {
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  gpu::device_sampling d;
  const int mode = static_cast<int>(rng() % 8);
  d.temperature = mode == 0 ? 0.0f : static_cast<float>(0.2 + 1.6 * u01(rng));
  if (mode == 2 || mode == 5 || mode == 7) {
    const int32_t choices[] = {1, 2, 7, 40, 333, vocab - 1, vocab, vocab + 5};
    d.top_k = choices[rng() % 8];
  }
  if (mode == 3 || mode == 5 || mode == 7) d.top_p = static_cast<float>(0.05 + 0.94 * u01(rng));
  if (mode == 4 || mode == 7) d.min_p = static_cast<float>(0.3 * u01(rng));
  if (rng() % 3 == 0) d.repetition_penalty = static_cast<float>(0.7 + u01(rng));
  d.u = u01(rng);
  d.vocab_limit = rng() % 4 == 0 ? vocab - static_cast<int32_t>(rng() % 50) - 1 : 0;
  return d;
}

/// Penalty entries for distinct random tokens below `n`.
std::vector<gpu::penalty_entry> random_penalties(std::mt19937_64& rng, int32_t n, bool repeat) {
  std::vector<gpu::penalty_entry> e;
  std::vector<int32_t> ids(static_cast<size_t>(std::min(n, 400)));
  for (auto& t : ids) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(n));
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::shuffle(ids.begin(), ids.end(), rng);
  ids.resize(std::min<size_t>(ids.size(), rng() % 300));
  for (int32_t t : ids) {
    e.push_back({t, repeat ? 1 : 0, rng() % 2 == 0 ? 0.0f : 0.25f * static_cast<float>(rng() % 9)});
  }
  return e;
}

/// Rows of logits: normal at a scale (small = flat, large = peaked), or quantised to a few
/// levels so many ids tie exactly.
std::vector<float> random_logits(std::mt19937_64& rng, size_t rows, size_t vocab, int kind) {
  std::vector<float> l = test::cuda::randn(rows * vocab, rng, kind == 0 ? 0.3f : 4.0f);
  if (kind == 2) {
    for (auto& x : l) x = std::round(x * 2.0f) / 2.0f;
  }
  return l;
}

/// Samples `specs` (row j reads logits row row_of[j]) on the device and on the CPU twin.
void check_rows(const std::vector<float>& logits, size_t vocab,
                const std::vector<gpu::device_sampling>& specs,
                const std::vector<int32_t>& row_of) {
  gpu::cuda::device_sampler sampler(vocab);
  std::vector<sample_row> rows;
  std::vector<sample_penalty> pen;
  for (size_t j = 0; j < specs.size(); ++j)
    gpu::cuda::append_sample_row(specs[j], row_of[j], static_cast<int32_t>(vocab), rows, pen);
  auto dev = test::cuda::device_buffer::from(logits);
  sampler.sample(dev.as<float>(), rows.data(), rows.size(), pen.data(), pen.size(), nullptr);
  gpu::cuda::synchronize();
  size_t same = 0;
  for (size_t j = 0; j < specs.size(); ++j) {
    const std::span<const float> row(logits.data() + static_cast<size_t>(row_of[j]) * vocab, vocab);
    const int32_t want = engine::sample_spec(row, specs[j]);
    const int32_t got = sampler.tokens()[j];
    const auto& d = specs[j];
    INFO("row " << j << " of " << specs.size() << ", vocab " << vocab << ": T " << d.temperature
                << " top_k " << d.top_k << " top_p " << d.top_p << " min_p " << d.min_p << " rep "
                << d.repetition_penalty << " penalties " << d.penalties.size() << " limit "
                << d.vocab_limit << " u " << d.u);
    CHECK(got == want);
    same += got == want ? 1 : 0;
  }
  CHECK(same == specs.size());
}

}  // namespace

TEST_CASE("cuda device_sampler picks the CPU twin's token in every sampling mode",
          "[cuda][ops][sampling]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = test::cuda::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const size_t vocab : {size_t{1}, size_t{37}, size_t{1000}, size_t{4099}, size_t{151936}}) {
    for (int kind = 0; kind < 3; ++kind) {
      const size_t logit_rows = 6;
      const auto logits = random_logits(rng, logit_rows, vocab, kind);
      // Many specs per logits row (draws across the distribution), rows in any order,
      // some logits rows sampled by several specs... each spec's penalties are applied to
      // its own copy, so a row is used by one spec per call: one call per spec batch.
      for (int round = 0; round < 4; ++round) {
        std::vector<gpu::device_sampling> specs;
        std::vector<std::vector<gpu::penalty_entry>> penalties;
        std::vector<int32_t> row_of(logit_rows);
        std::iota(row_of.begin(), row_of.end(), 0);
        std::shuffle(row_of.begin(), row_of.end(), rng);
        row_of.resize(1 + rng() % logit_rows);
        penalties.reserve(row_of.size());
        for (size_t j = 0; j < row_of.size(); ++j) {
          auto d = random_spec(rng, static_cast<int32_t>(vocab));
          if (d.vocab_limit <= 0) d.vocab_limit = 0;
          const int32_t n = d.vocab_limit > 0 ? d.vocab_limit : static_cast<int32_t>(vocab);
          penalties.push_back(rng() % 2 == 0
                                  ? random_penalties(rng, n, d.repetition_penalty != 1.0f)
                                  : std::vector<gpu::penalty_entry>{});
          d.penalties = penalties.back();
          specs.push_back(d);
        }
        INFO("logits kind " << kind << ", round " << round);
        check_rows(logits, vocab, specs, row_of);
      }
    }
  }
}

TEST_CASE("cuda device_sampler: edge draws, many sorted rows, exact ties",
          "[cuda][ops][sampling]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = test::cuda::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const size_t vocab = 5003, rows = 40;  // more sorted rows than one radix sort takes
  const auto logits = random_logits(rng, rows, vocab, 2);
  std::vector<gpu::device_sampling> specs(rows);
  std::vector<int32_t> row_of(rows);
  std::iota(row_of.begin(), row_of.end(), 0);
  for (size_t j = 0; j < rows; ++j) {
    auto& d = specs[j];
    d.temperature = 0.9f;
    d.top_k = j % 3 == 0 ? 0 : static_cast<int32_t>(1 + j * 7);
    d.top_p = j % 3 == 1 ? 1.0f : 0.3f + 0.015f * static_cast<float>(j);
    d.min_p = j % 5 == 0 ? 0.02f : 0.0f;
    // The ends of the unit interval: the first and the last token kept.
    d.u = j % 2 == 0 ? 0.0 : std::nextafter(1.0, 0.0);
  }
  check_rows(logits, vocab, specs, row_of);
  // Top-k whose k-th value is shared by 2,000 ids (gathered and sorted in shared memory)
  // or 6,000 (more than that holds: the radix-select path), with top-p cutting inside the
  // tie group (in id order), past it, or not at all; u across the kept range.
  for (const size_t ties : {size_t{2000}, size_t{6000}}) {
    INFO(ties << " ties at the k-th value");
    const size_t v = 10007;
    std::vector<float> tied(v, -3.0f);
    for (size_t i = 0; i < ties; ++i) tied[(i * 7 + 3) % v] = 1.0f;
    for (size_t i = 0; i < 10; ++i) tied[(i * 131 + 1) % v] = 5.0f + 0.1f * static_cast<float>(i);
    std::vector<float> many;
    std::vector<gpu::device_sampling> tie_specs;
    const float top_ps[] = {1.0f, 0.95f, 0.6f, 0.3f, 0.1f, 0.01f};
    for (size_t j = 0; j < 24; ++j) {
      many.insert(many.end(), tied.begin(), tied.end());
      gpu::device_sampling d;
      d.temperature = 1.0f;
      d.top_k = j % 2 == 0 ? 500 : 1000;
      d.top_p = top_ps[j % 6];
      d.u = static_cast<double>(j) / 24.0;
      tie_specs.push_back(d);
    }
    std::vector<int32_t> tie_rows(24);
    std::iota(tie_rows.begin(), tie_rows.end(), 0);
    check_rows(many, v, tie_specs, tie_rows);
  }
  // Ties at the maximum with a top-p that lands exactly on a tie (100 ids of mass 1, top-p
  // 0.5: the first 50 in id order go): cumulative masses are exact integers on both
  // sides. Through the select (top-k 50; 3,000 ties: its radix-select path) and the sort
  // (no top-k; top-k 2,000).
  for (const size_t ties : {size_t{100}, size_t{3000}}) {
    const size_t v = 8191;
    std::vector<float> row(v);
    std::uniform_real_distribution<float> low(-4.0f, 0.5f);
    for (auto& x : row) x = low(rng);
    for (size_t i = 0; i < ties; ++i) row[(i * 37 + 11) % v] = 2.0f;
    std::vector<float> many;
    std::vector<gpu::device_sampling> specs_max;
    for (size_t j = 0; j < 18; ++j) {
      many.insert(many.end(), row.begin(), row.end());
      gpu::device_sampling d;
      d.temperature = 1.0f;
      d.top_k = j % 3 == 0 ? 50 : j % 3 == 1 ? 0 : 2000;
      d.top_p = 0.5f;
      d.u = static_cast<double>(j / 3) / 6.0 + 0.01;
      specs_max.push_back(d);
    }
    std::vector<int32_t> max_rows(18);
    std::iota(max_rows.begin(), max_rows.end(), 0);
    INFO(ties << " ties at the maximum");
    check_rows(many, v, specs_max, max_rows);
  }
  // A greedy row whose maximum ties: the lowest id wins.
  std::vector<float> flat(vocab, 1.0f);
  flat[17] = 3.0f;
  flat[4000] = 3.0f;
  std::vector<gpu::device_sampling> greedy(1);
  check_rows(flat, vocab, greedy, {0});
}

TEST_CASE("cuda device_sampler refuses rows outside its limits", "[cuda][ops][sampling]") {
  CONCLAVE_REQUIRE_GPU();
  gpu::cuda::device_sampler sampler(100);
  auto dev = test::cuda::device_buffer::from(std::vector<float>(100, 0.0f));
  sample_row r;
  r.n = 101;
  CHECK_THROWS_AS(sampler.sample(dev.as<float>(), &r, 1, nullptr, 0, nullptr),
                  std::invalid_argument);
  r.n = 100;
  r.pen_count = 1;
  CHECK_THROWS_AS(sampler.sample(dev.as<float>(), &r, 1, nullptr, 0, nullptr),
                  std::invalid_argument);
  r.pen_count = 1;
  const sample_penalty bad{100, 1, 0.0f};
  CHECK_THROWS_AS(sampler.sample(dev.as<float>(), &r, 1, &bad, 1, nullptr), std::invalid_argument);
  r.pen_count = 0;
  r.u = 1.0;
  CHECK_THROWS_AS(sampler.sample(dev.as<float>(), &r, 1, nullptr, 0, nullptr),
                  std::invalid_argument);
}

TEST_CASE("cuda engine: device sampling gives host sampling's seeded tokens",
          "[cuda][model][sampling]") {
  CONCLAVE_REQUIRE_GPU();
  const model::checkpoint ckpt(test::data_dir() / "moe_mixed_f16");
  std::vector<engine::sampling_params> params;
  for (int i = 0; i < 7; ++i) {
    engine::sampling_params p;
    p.max_tokens = 12;
    p.ignore_eos = true;
    p.seed = 7 + static_cast<uint64_t>(i);
    p.temperature = i == 0 ? 0.0f : 0.6f + 0.25f * static_cast<float>(i);
    if (i == 1 || i == 5) p.top_k = 9;
    if (i == 2 || i == 5) p.top_p = 0.85f;
    if (i == 3) p.min_p = 0.08f;
    if (i == 0 || i == 4) {
      p.repetition_penalty = 1.4f;
      p.presence_penalty = 0.3f;
      p.frequency_penalty = 0.6f;
    }
    if (i == 6) p.logprobs = 3;  // sampled on the host next to the others
    params.push_back(p);
  }
  for (const bool graphs : {false, true}) {
    std::map<bool, std::vector<std::vector<int32_t>>> tokens;
    size_t device_rows = 0;
    for (const bool on_device : {false, true}) {
      config::engine_config cfg;
      cfg.backend.kind = "cuda";
      cfg.backend.num_kv_blocks = 256;
      cfg.backend.weight_dtype = "f32";
      cfg.backend.cuda_graphs = graphs;
      cfg.sample_on_device = on_device;
      cfg.sampling_vocab_size = ckpt.config().vocab_size - 3;
      auto be = gpu::cuda::make_cuda_backend(ckpt, cfg.backend);
      auto* cuda = be.get();
      engine::llm_engine eng(std::move(be), cfg);
      std::map<int64_t, size_t> index;
      for (size_t i = 0; i < params.size(); ++i) {
        std::vector<int32_t> prompt;
        for (size_t j = 0; j < 4 + 3 * i; ++j) prompt.push_back(static_cast<int32_t>(j * 11 + i));
        index[eng.add_request(prompt, params[i])] = i;
      }
      auto& out = tokens[on_device];
      out.resize(params.size());
      while (eng.has_work()) {
        for (const auto& e : eng.step()) out[index[e.id]].push_back(e.token);
        if (on_device) device_rows += cuda->last_timing().rows_sampled;
      }
    }
    INFO("cuda graphs " << graphs);
    CHECK(device_rows == 6 * 12);  // all but the logprobs request, every token
    for (size_t i = 0; i < params.size(); ++i) {
      INFO("request " << i);
      CHECK(tokens[true][i].size() == 12);
      CHECK(tokens[true][i] == tokens[false][i]);
    }
  }
}
