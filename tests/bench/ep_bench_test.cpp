// `conclave bench ep` run tiny: the rows have the right shape (which replica sizes and
// batches, bytes moved only when experts are spread, every rank joining every MoE layer),
// and the printed JSON lines match them. Timings are never asserted.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "bench/ep_bench.h"
#include "gpu/collectives.h"
#include "tests/fixture.h"
#include "tests/skip.h"

using namespace conclave;
namespace json = boost::json;

namespace {

std::string read_all(std::FILE* f) {
  std::rewind(f);
  std::string s;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
  return s;
}

}  // namespace

TEST_CASE("bench ep on tiny_moe: one row per replica size and batch, bytes only when spread",
          "[bench]") {
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  bench::ep_bench_options o;
  o.model_dir = (test::data_dir() / "tiny_moe").string();
  o.ranks = {1, 2};
  o.batches = {1, 2};
  o.steps = 2;
  o.prompt_len = 4;
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  const auto rows = bench::run_ep_bench(o, out);
  const std::string text = read_all(out);
  std::fclose(out);

  REQUIRE(rows.size() == 4);
  const int32_t moe_layers = 4;  // tiny_moe: every one of its 4 layers routes
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    INFO("row " << i << ": R = " << r.ranks << ", batch " << r.batch);
    CHECK(r.ranks == (i < 2 ? 1 : 2));
    CHECK(r.batch == (i % 2 == 0 ? 1 : 2));
    CHECK(r.steps == 2);
    if (r.ranks == 1) {
      CHECK_FALSE(r.expert_parallel);
      CHECK(r.bytes_per_step == 0);
      CHECK(r.moe_layer_calls == 0);
    } else {
      CHECK(r.expert_parallel);
      CHECK(r.bytes_per_step > 0);
      // Both ranks join every MoE layer of every step, the idle one (batch 1) too.
      CHECK(r.moe_layer_calls == uint64_t{2} * moe_layers * 2);
      CHECK(r.imbalance >= 1.0);
    }
    // The speed-up is against the one-rank row of the same batch (itself for R = 1).
    const auto& one = rows[i % 2];
    CHECK(r.speedup == Approx(r.tokens_per_s / one.tokens_per_s));
  }

  CHECK(text.find("conclave bench ep") != std::string::npos);
  CHECK(text.find("machine:") != std::string::npos);
  size_t json_lines = 0;
  for (size_t pos = 0; (pos = text.find("\n{", pos)) != std::string::npos; ++pos) {
    const size_t end = text.find('\n', pos + 1);
    const json::object line = json::parse(text.substr(pos + 1, end - pos - 1)).as_object();
    const auto& r = rows[json_lines++];
    CHECK(line.at("bench").as_string() == "ep");
    CHECK(line.at("collectives").as_string() == "gloo");
    CHECK(line.at("speedup").to_number<double>() == Approx(r.speedup).margin(1e-3));
    CHECK(line.at("ranks").as_int64() == r.ranks);
    CHECK(line.at("batch").as_int64() == r.batch);
    CHECK(line.at("expert_parallel").as_bool() == r.expert_parallel);
    CHECK((line.at("bytes_per_step").to_number<double>() > 0) == (r.ranks == 2));
  }
  CHECK(json_lines == rows.size());
}

TEST_CASE("bench ep refuses empty or non-positive sizes", "[bench]") {
  bench::ep_bench_options o;
  o.model_dir = (test::data_dir() / "tiny_moe").string();
  o.ranks = {};
  CHECK_THROWS_AS(bench::run_ep_bench(o, stdout), std::invalid_argument);
  o.ranks = {2};
  o.batches = {0};
  CHECK_THROWS_AS(bench::run_ep_bench(o, stdout), std::invalid_argument);
  o.batches = {1};
  o.steps = 0;
  CHECK_THROWS_AS(bench::run_ep_bench(o, stdout), std::invalid_argument);
}

TEST_CASE(
    "bench ep refuses device collectives and random weights without cuda, and unknown "
    "collectives",
    "[bench]") {
  bench::ep_bench_options o;
  o.model_dir = (test::data_dir() / "tiny_moe").string();
  o.backend = "cpu";
  for (const char* c : {"nccl", "local"}) {
    o.collectives = c;
    try {
      bench::run_ep_bench(o, stdout);
      FAIL("accepted --collectives " << c << " on cpu ranks");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("needs --backend cuda") != std::string::npos);
    }
  }
  o.collectives = "mpi";
  CHECK_THROWS_AS(bench::run_ep_bench(o, stdout), std::invalid_argument);
  o.collectives = "gloo";
  o.random_weights = true;
  CHECK_THROWS_AS(bench::run_ep_bench(o, stdout), std::invalid_argument);
  o.backend = "cuda";
  o.quant = "gptq";
  CHECK_THROWS_AS(bench::run_ep_bench(o, stdout), std::invalid_argument);
}

TEST_CASE("bench ep --prefill-lens: time to first token per replica size, read in chunks",
          "[bench]") {
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  bench::ep_bench_options o;
  o.model_dir = (test::data_dir() / "tiny_moe").string();
  o.ranks = {1, 2};
  o.batches = {1};
  o.steps = 1;
  o.prompt_len = 2;
  o.prefill_lens = {5, 12};
  o.prefill_chunk = 4;
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  std::vector<bench::ep_prefill_row> prefill;
  bench::run_ep_bench(o, out, &prefill);
  const std::string text = read_all(out);
  std::fclose(out);
  REQUIRE(prefill.size() == 4);
  for (size_t i = 0; i < prefill.size(); ++i) {
    const auto& p = prefill[i];
    INFO("row " << i);
    CHECK(p.ranks == (i < 2 ? 1 : 2));
    CHECK(p.tokens == (i % 2 == 0 ? 5 : 12));
    CHECK(p.steps == (p.tokens + 3) / 4);  // 4 tokens a step
    CHECK(p.ttft_ms > 0);
    CHECK(p.speedup == Approx(p.tokens_per_s / prefill[i % 2].tokens_per_s));
  }
  CHECK(text.find("time to first token") != std::string::npos);
  size_t lines = 0;
  for (size_t pos = 0; (pos = text.find("{\"bench\":\"ep_prefill\"", pos)) != std::string::npos;
       ++pos) {
    const size_t end = text.find('\n', pos);
    const json::object line = json::parse(text.substr(pos, end - pos)).as_object();
    CHECK(line.at("tokens").as_int64() == prefill[lines].tokens);
    CHECK(line.at("chunk").as_int64() == 4);
    ++lines;
  }
  CHECK(lines == prefill.size());
  o.prefill_chunk = 0;
  CHECK_THROWS_AS(bench::run_ep_bench(o, stdout), std::invalid_argument);
}
