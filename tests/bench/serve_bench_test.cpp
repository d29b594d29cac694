// `conclave bench serve` against a real in-process server: SSE and WebSocket loads
// complete every request with the exact token counts, --max-tokens 1 works, and
// refused requests are counted by kind.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "bench/serve_bench.h"
#include "bench/soak_bench.h"
#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::bench;
namespace json = boost::json;

namespace {

serve_bench_options options_for(const test::test_server& s, const std::string& protocol,
                                int32_t clients, int64_t requests, int32_t max_tokens) {
  serve_bench_options o;
  o.url = "http://127.0.0.1:" + std::to_string(s.port());
  o.protocol = protocol;
  o.clients = clients;
  o.requests = requests;
  o.max_tokens = max_tokens;
  o.prompt_tokens = 12;
  return o;
}

void check_all_completed(const serve_bench_result& r, int64_t requests, int32_t max_tokens,
                         int32_t prompt_tokens) {
  INFO("errors: " << r.error_count()
                  << (r.errors.empty() ? "" : " first: " + r.errors.begin()->first));
  CHECK(r.error_count() == 0);
  CHECK(r.completed == requests);
  CHECK(r.output_tokens == requests * max_tokens);
  CHECK(r.prompt_tokens == requests * prompt_tokens);
  CHECK(r.e2e.count() == static_cast<size_t>(requests));
  CHECK(r.ttft.count() == static_cast<size_t>(requests));
  CHECK(r.content_chunks >= 1);
  CHECK(r.wall_s > 0);
  CHECK(r.e2e.max() <= r.wall_s);
  CHECK(r.ttft.max() <= r.e2e.max());
}

}  // namespace

TEST_CASE("bench serve: SSE and WebSocket loads complete every request", "[bench][server]") {
  test::test_server s;
  CHECK(fetch_first_model(parse_server_url("http://127.0.0.1:" + std::to_string(s.port())), "") ==
        "tiny");

  SECTION("SSE, more requests than clients") {
    const auto r = run_serve_load(options_for(s, "sse", 3, 7, 5), "tiny");
    check_all_completed(r, 7, 5, 12);
  }
  SECTION("WebSocket, one connection per stream") {
    const auto r = run_serve_load(options_for(s, "ws", 4, 9, 5), "tiny");
    check_all_completed(r, 9, 5, 12);
  }
  SECTION("WebSocket, 70 streams multiplexed over 64 connections") {
    CHECK(ws_connections(70) == 64);
    const auto r = run_serve_load(options_for(s, "ws", 70, 80, 2), "tiny");
    check_all_completed(r, 80, 2, 12);
  }
  SECTION("--max-tokens 1 (per-request overhead): no TPOT, no gaps") {
    for (const std::string protocol : {"sse", "ws"}) {
      const auto r = run_serve_load(options_for(s, protocol, 4, 10, 1), "tiny");
      check_all_completed(r, 10, 1, 12);
      CHECK(r.tpot.empty());
      CHECK(r.gap.empty());
      // The server reports its engine time over WebSocket: e2e minus it is the overhead.
      if (protocol == "ws") {
        REQUIRE(r.overhead.count() == 10);
        CHECK(r.overhead.min() >= 0.0);
        CHECK(r.overhead.max() <= r.e2e.max());
      } else {
        CHECK(r.overhead.empty());
      }
    }
  }
  SECTION("--duration without a request count") {
    auto o = options_for(s, "ws", 2, 0, 3);
    o.duration_s = 0.3;
    const auto r = run_serve_load(o, "tiny");
    CHECK(r.completed >= 1);
    check_all_completed(r, r.completed, 3, 12);
  }
}

TEST_CASE("bench serve: refused requests are counted by kind", "[bench][server]") {
  test::test_server s([](config::server_config& c) { c.api_keys = {"secret"}; });
  const auto url = parse_server_url("http://127.0.0.1:" + std::to_string(s.port()));
  try {
    fetch_first_model(url, "wrong");
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("HTTP 401") != std::string::npos);
  }
  CHECK(fetch_first_model(url, "secret") == "tiny");

  auto sse = options_for(s, "sse", 2, 4, 2);
  auto r = run_serve_load(sse, "tiny");
  CHECK(r.completed == 0);
  CHECK(r.errors ==
        std::map<std::string, int64_t>{{"HTTP 401: authentication_error (invalid_api_key)", 4}});

  auto ws = options_for(s, "ws", 2, 4, 2);
  r = run_serve_load(ws, "tiny");
  CHECK(r.completed == 0);
  CHECK(r.errors == std::map<std::string, int64_t>{{"connect: WebSocket upgrade declined", 4}});

  ws.api_key = "secret";
  r = run_serve_load(ws, "no-such-model");
  CHECK(r.completed == 0);
  CHECK(r.errors == std::map<std::string, int64_t>{
                        {"error frame: invalid_request_error (model_not_found)", 4}});

  sse.api_key = "secret";
  sse.requests = 3;
  check_all_completed(run_serve_load(sse, "tiny"), 3, 2, 12);
}

TEST_CASE("bench serve: the command resolves the model, prints and writes JSON",
          "[bench][server]") {
  test::test_server s;
  test::temp_dir dir;
  auto o = options_for(s, "ws", 3, 6, 4);
  o.json_file = (dir.path() / "r.json").string();
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  CHECK(run_serve_bench(o, out) == 0);
  std::rewind(out);
  std::string text(8192, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), out));
  std::fclose(out);
  CHECK(text.find("model \"tiny\"") != std::string::npos);
  CHECK(text.find("completed:      6 requests") != std::string::npos);
  CHECK(text.find("errors:         none") != std::string::npos);
  std::ifstream f(o.json_file);
  std::stringstream ss;
  ss << f.rdbuf();
  const json::value v = json::parse(ss.str());
  CHECK(v.at("model").as_string() == "tiny");
  CHECK(v.at("completed").as_int64() == 6);
  CHECK(v.at("output_tokens").as_int64() == 24);
  CHECK(v.at("error_count").as_int64() == 0);
  CHECK(v.at("ttft_ms").at("samples").as_int64() == 6);
}

TEST_CASE("bench soak: mixed requests, then the server is at rest", "[bench][server]") {
  test::test_server s;
  soak_bench_options o;
  o.url = "http://127.0.0.1:" + std::to_string(s.port());
  o.requests = 80;
  o.clients = 4;
  o.max_tokens = 6;
  test::temp_dir dir;
  o.json_file = (dir.path() / "soak.json").string();
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  CHECK(run_soak_bench(o, out) == 0);
  std::rewind(out);
  std::string text(8192, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), out));
  std::fclose(out);
  INFO(text);
  CHECK(text.find("0 sequences running or waiting, 0 KV blocks in use") != std::string::npos);
  std::ifstream f(o.json_file);
  std::stringstream ss;
  ss << f.rdbuf();
  const json::value v = json::parse(ss.str());
  CHECK(v.at("wrong").as_int64() == 0);
  int64_t sent = 0;
  for (const char* k : {"stream", "cancel", "abandon", "plain", "refused"}) {
    CHECK(v.at(std::string(k) + "_ok").as_int64() == v.at(std::string(k) + "_sent").as_int64());
    sent += v.at(std::string(k) + "_sent").as_int64();
  }
  CHECK(sent == 80);
  CHECK(v.at("rss_end_mib").as_double() > 0);  // the server reports its memory
}
