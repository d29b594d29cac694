// `conclave bench serve` without a server: percentiles, folding streams into latencies,
// the request-slot plan, URLs, prompts, request bodies, chunk inspection and reports.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <set>

#include "bench/serve_bench.h"
#include "model/tokenizer/tokenizer.h"

using namespace conclave::bench;
namespace json = boost::json;

TEST_CASE("sample_stats: percentiles interpolate between the closest ranks", "[bench]") {
  sample_stats s;
  for (double x : {5.0, 1.0, 4.0, 2.0, 3.0}) s.add(x);
  CHECK(s.count() == 5);
  CHECK(s.percentile(0) == 1.0);
  CHECK(s.percentile(25) == 2.0);
  CHECK(s.percentile(50) == 3.0);
  CHECK(s.percentile(90) == Approx(4.6));
  CHECK(s.percentile(100) == 5.0);
  CHECK(s.mean() == 3.0);
  CHECK(s.min() == 1.0);
  CHECK(s.max() == 5.0);

  sample_stats even;
  for (double x : {40.0, 10.0, 30.0, 20.0}) even.add(x);
  CHECK(even.percentile(50) == 25.0);
  CHECK(even.percentile(99) == Approx(39.7));
  even.add(0.0);  // adding after a query re-sorts
  CHECK(even.percentile(0) == 0.0);
  CHECK(even.percentile(50) == 20.0);

  sample_stats one;
  one.add(7.5);
  CHECK(one.percentile(0) == 7.5);
  CHECK(one.percentile(99) == 7.5);
}

TEST_CASE("sample_stats: no samples and bad percentiles throw", "[bench]") {
  sample_stats s;
  CHECK(s.empty());
  CHECK_THROWS_AS(s.percentile(50), std::logic_error);
  CHECK_THROWS_AS(s.mean(), std::logic_error);
  s.add(1);
  CHECK_THROWS_AS(s.percentile(-1), std::invalid_argument);
  CHECK_THROWS_AS(s.percentile(100.5), std::invalid_argument);
}

TEST_CASE("serve_bench_result: TTFT, TPOT, gaps and e2e from chunk arrival times", "[bench]") {
  serve_bench_result r;
  r.add_stream({{0.1, 0.15, 0.3}, 0.35, 10, 3});
  REQUIRE(r.completed == 1);
  CHECK(r.ttft.percentile(50) == Approx(0.1));
  CHECK(r.tpot.percentile(50) == Approx(0.1));  // (0.3 - 0.1) / 2
  REQUIRE(r.gap.count() == 2);
  CHECK(r.gap.min() == Approx(0.05));
  CHECK(r.gap.max() == Approx(0.15));
  CHECK(r.e2e.percentile(50) == Approx(0.35));

  // One chunk: a TTFT but no TPOT or gap. None: TTFT is the end of the stream.
  r.add_stream({{0.2}, 0.25, 10, 1});
  r.add_stream({{}, 0.4, 12, 1});
  CHECK(r.completed == 3);
  CHECK(r.ttft.count() == 3);
  CHECK(r.ttft.max() == Approx(0.4));
  CHECK(r.tpot.count() == 1);
  CHECK(r.gap.count() == 2);
  CHECK(r.prompt_tokens == 32);
  CHECK(r.output_tokens == 5);
  CHECK(r.content_chunks == 4);

  r.add_error("HTTP 429");
  r.add_error("HTTP 429");
  r.add_error("timeout");
  CHECK(r.error_count() == 3);
  CHECK(r.errors.at("HTTP 429") == 2);
  r.wall_s = 2;
  CHECK(r.requests_per_s() == 1.5);
  CHECK(r.output_tokens_per_s() == 2.5);
}

TEST_CASE("load_plan: stops at the count or the deadline", "[bench]") {
  const auto now = load_plan::clock_type::now();
  load_plan counted(3, 0, now);
  CHECK(counted.next());
  CHECK(counted.next());
  CHECK(counted.next());
  CHECK_FALSE(counted.next());
  CHECK(counted.issued() == 3);

  load_plan expired(0, 1.0, now - std::chrono::seconds(2));
  CHECK_FALSE(expired.next());
  CHECK(expired.issued() == 0);

  load_plan timed(0, 3600, now);
  for (int i = 0; i < 1000; ++i) REQUIRE(timed.next());
  load_plan both(2, 3600, now);
  CHECK(both.next());
  CHECK(both.next());
  CHECK_FALSE(both.next());
}

TEST_CASE("parse_server_url", "[bench]") {
  auto u = parse_server_url("http://127.0.0.1:8080");
  CHECK(u.host == "127.0.0.1");
  CHECK(u.port == "8080");
  CHECK(u.prefix.empty());
  CHECK(u.text() == "http://127.0.0.1:8080");
  u = parse_server_url("http://example.com/v1/");
  CHECK(u.host == "example.com");
  CHECK(u.port == "80");
  CHECK(u.prefix.empty());
  CHECK(u.host_header() == "example.com");
  u = parse_server_url("http://h:9/api/v1");
  CHECK(u.prefix == "/api");
  u = parse_server_url("http://[::1]:8081");
  CHECK(u.host == "::1");
  CHECK(u.port == "8081");
  CHECK_THROWS_AS(parse_server_url("https://h:1"), std::invalid_argument);
  CHECK_THROWS_AS(parse_server_url("127.0.0.1:8080"), std::invalid_argument);
  CHECK_THROWS_AS(parse_server_url("http://h:99999"), std::invalid_argument);
  CHECK_THROWS_AS(parse_server_url("http://h:x"), std::invalid_argument);
  CHECK_THROWS_AS(parse_server_url("http://:80"), std::invalid_argument);
}

TEST_CASE("bench prompts have the asked length in Qwen3 tokens and differ per request", "[bench]") {
  const auto tok = conclave::tokenizer::tokenizer::from_file(
      std::filesystem::path(CONCLAVE_QWEN3_TOKENIZER_DIR) / "tokenizer.json");
  std::set<std::string> seen;
  for (int64_t i : {0, 7, 42, 12345}) {
    for (int32_t n : {16, 100}) {
      const std::string p = bench_prompt(i, n);
      CHECK(tok.encode(p).size() == static_cast<size_t>(n));
      CHECK(p == bench_prompt(i, n));
      seen.insert(p);
    }
  }
  CHECK(seen.size() == 8);
}

TEST_CASE("bench request body", "[bench]") {
  serve_bench_options o;
  o.max_tokens = 1;
  o.prompt_tokens = 8;
  const json::value v = json::parse(bench_request_body(o, "m", 3, true));
  CHECK(v.at("model").as_string() == "m");
  CHECK(v.at("prompt").as_string() == bench_prompt(3, 8));
  CHECK(v.at("max_tokens").as_int64() == 1);
  CHECK(v.at("ignore_eos").as_bool());
  CHECK(v.at("temperature").to_number<double>() == 0);
  CHECK(v.at("stream").as_bool());
  CHECK(v.at("stream_options").at("include_usage").as_bool());
  CHECK_FALSE(
      json::parse(bench_request_body(o, "m", 3, false)).as_object().contains("stream_options"));
}

TEST_CASE("inspect_chunk: content of completion and chat chunks, usage", "[bench]") {
  auto info = inspect_chunk(json::parse(R"({"choices":[{"index":0,"text":"hi"}]})"));
  CHECK(info.content);
  CHECK_FALSE(info.usage);
  CHECK_FALSE(
      inspect_chunk(json::parse(R"({"choices":[{"text":"","finish_reason":"length"}]})")).content);
  CHECK(inspect_chunk(json::parse(R"({"choices":[{"delta":{"content":"x"}}]})")).content);
  CHECK_FALSE(
      inspect_chunk(json::parse(R"({"choices":[{"delta":{"role":"assistant","content":""}}]})"))
          .content);
  info = inspect_chunk(
      json::parse(R"({"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":9}})"));
  CHECK_FALSE(info.content);
  CHECK(info.usage);
  CHECK(info.prompt_tokens == 4);
  CHECK(info.completion_tokens == 9);
  CHECK_FALSE(inspect_chunk(json::parse(R"({"choices":[{"text":"a"}],"usage":null})")).usage);
  CHECK_FALSE(inspect_chunk(json::parse("[1,2]")).content);
}

TEST_CASE("reports: text and JSON carry the same numbers", "[bench]") {
  serve_bench_options o;
  o.url = "http://127.0.0.1:9";
  o.protocol = "ws";
  o.clients = 100;
  o.requests = 2;
  serve_bench_result r;
  r.add_stream({{0.010, 0.020}, 0.030, 5, 2});
  r.add_stream({{0.012}, 0.012, 5, 1});
  r.add_error("HTTP 503");
  r.wall_s = 0.5;
  const json::value v = json::parse(serve_bench_json(o, "m", "the machine", r));
  CHECK(v.at("machine").as_string() == "the machine");
  CHECK(v.at("settings").at("connections").as_int64() == 64);
  CHECK(v.at("completed").as_int64() == 2);
  CHECK(v.at("errors").at("HTTP 503").as_int64() == 1);
  CHECK(v.at("requests_per_s").as_double() == 4.0);
  CHECK(v.at("output_tokens").as_int64() == 3);
  CHECK(v.at("ttft_ms").at("p50").as_double() == Approx(11.0));
  CHECK(v.at("tpot_ms").at("samples").as_int64() == 1);
  CHECK(v.at("e2e_ms").at("max").as_double() == Approx(30.0));

  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  print_serve_bench(o, "m", "the machine", r, f);
  std::rewind(f);
  std::string text(4096, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), f));
  std::fclose(f);
  CHECK(text.find("machine:        the machine") != std::string::npos);
  CHECK(text.find("WebSocket /v1/ws, 64 connections") != std::string::npos);
  CHECK(text.find("requests/s:     4.00") != std::string::npos);
  CHECK(text.find("1 x HTTP 503") != std::string::npos);
  CHECK(text.find("TTFT            p50     11.00 ms") != std::string::npos);
}
