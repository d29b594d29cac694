// `conclave top`: the SSE parser it reads the dashboard feed with, the text a frame renders
// to, and the real binary against an in-process server.
#include <spdlog/fmt/fmt.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "bench/top_view.h"
#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

TEST_CASE("top: the SSE parser takes events split anywhere, CRLF, comments and multi-line data",
          "[top]") {
  const std::string stream =
      ": hello\r\nevent: history\r\ndata: {\"frames\":[]}\r\n\r\nevent: frame\ndata: a\ndata: "
      "b\n\ndata: plain\n\n";
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    std::vector<std::pair<std::string, std::string>> got;
    bench::sse_parser p(
        [&](const std::string& e, const std::string& d) { got.emplace_back(e, d); });
    p.feed(std::string_view(stream).substr(0, cut));
    p.feed(std::string_view(stream).substr(cut));
    REQUIRE(got.size() == 3);
    CHECK(got[0] == std::pair<std::string, std::string>{"history", "{\"frames\":[]}"});
    CHECK(got[1] == std::pair<std::string, std::string>{"frame", "a\nb"});
    CHECK(got[2] == std::pair<std::string, std::string>{"message", "plain"});
  }
}

TEST_CASE("top: a frame renders its replicas, GPUs, alerts and events, missing fields are '-'",
          "[top]") {
  const auto frame = json::parse(R"({
    "time_ms": 10000, "uptime_s": 42, "window_s": 10,
    "server": {"version": "0.1.0", "draining": false},
    "requests": {"per_s": 2.5, "errors_per_s": 0, "active": 3, "queued": 1},
    "tokens": {"completion_per_s": 120.4, "prompt_per_s": 300},
    "latency": {"ttft": {"p50": 0.05, "p90": null, "p99": 0.2}, "tpot": {}},
    "kv": {"fraction": 0.5, "used_blocks": 10, "total_blocks": 20},
    "replicas": [{"model": "tiny", "id": 0, "state": "restarting", "healthy": false,
                  "running": 0, "waiting": 2, "kv_used": 0, "kv_total": 20, "restarts": 1}],
    "gpus": [{"index": 0, "name": "NVIDIA H100", "utilization": 0.9,
              "memory_used_bytes": 1073741824, "memory_total_bytes": 2147483648,
              "temperature_c": 50, "power_w": 300, "ecc_uncorrected": 0}],
    "alerts": [{"name": "ReplicaDown", "severity": "critical", "state": "firing",
                "summary": "1 replica(s) restarting or dead"}],
    "events": [{"time_ms": 7000, "kind": "replica", "text": "tiny replica 0: up -> restarting"}]
  })")
                         .as_object();
  const std::string text = bench::render_top(frame, 160);
  CHECK(text.find("conclave 0.1.0  up 42 s") != std::string::npos);
  CHECK(text.find("tokens 120.4/s out") != std::string::npos);
  CHECK(text.find("TTFT ms p50 50 p90 - p99 200") != std::string::npos);
  CHECK(text.find("KV [##########..........] 50.0 %") != std::string::npos);
  CHECK(text.find("restarting") != std::string::npos);
  CHECK(text.find("NVIDIA H100") != std::string::npos);
  CHECK(text.find("1.0/2.0") != std::string::npos);
  CHECK(text.find("firing   critical ReplicaDown") != std::string::npos);
  CHECK(text.find("3 s ago  replica") != std::string::npos);
  // Width is respected; an empty frame renders without throwing.
  for (std::istringstream in(bench::render_top(frame, 40)); !in.eof();) {
    std::string line;
    std::getline(in, line);
    CHECK(line.size() <= 40);
  }
  CHECK_FALSE(bench::render_top(json::object{}, 80).empty());
}

TEST_CASE("top: the binary prints live frames of a running server, then stops", "[top]") {
  test_server s([](config::server_config& c) { c.observability.sample_interval_s = 0.1; });
  REQUIRE(post_json(s.port(), "/v1/completions",
                    R"({"model":"tiny","prompt":"hi","max_tokens":3,"temperature":0})")
              .status == 200);
  temp_dir dir;
  const auto out = dir.path() / "out.txt";
  const std::string cmd = fmt::format("'{}' top --url http://127.0.0.1:{} --frames 3 > '{}'",
                                      CONCLAVE_BINARY, s.port(), out.string());
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream f(out);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  size_t frames = 0;
  for (size_t at = 0; (at = text.find("conclave 0.1.0", at)) != std::string::npos; ++at) ++frames;
  CHECK(frames == 3);
  CHECK(text.find("tiny") != std::string::npos);
  CHECK(text.find(" up ") != std::string::npos);
  // A server that is not there: exit 1 with one line.
  const std::string bad = fmt::format("'{}' top --url http://127.0.0.1:1 --frames 1 2> '{}'",
                                      CONCLAVE_BINARY, (dir.path() / "err.txt").string());
  CHECK(WEXITSTATUS(std::system(bad.c_str())) == 1);
}
