// The server over real loopback sockets: every route, status code and limit, streaming
// equal to non-streaming, cancellation freeing KV blocks, keep-alive, 429, auth.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

const std::string chat_body =
    R"({"model":"tiny","messages":[{"role":"user","content":"Hello there"}],"max_tokens":8,"seed":11)";

json::object error_of(const http_reply& r) {
  const json::value v = json::parse(r.body);
  REQUIRE(v.is_object());
  REQUIRE(v.as_object().contains("error"));
  const json::object& e = v.at("error").as_object();
  CHECK(e.contains("message"));
  CHECK(e.contains("type"));
  CHECK(e.contains("param"));
  CHECK(e.contains("code"));
  return e;
}

std::string content_of_stream(const std::string& body) {
  std::string text;
  for (const auto& ev : sse_events(body)) {
    if (ev == "[DONE]") break;
    const json::value v = json::parse(ev);
    const auto& choices = v.at("choices").as_array();
    if (choices.empty()) continue;
    const auto& delta = choices[0].at("delta").as_object();
    if (delta.contains("content")) text += std::string(delta.at("content").as_string());
  }
  return text;
}

}  // namespace

TEST_CASE("health, readiness, models and metrics", "[server]") {
  test_server s;
  http_client c(s.port());
  CHECK(c.call(http::verb::get, "/health").status == 200);
  const auto ready = c.call(http::verb::get, "/ready");
  CHECK(ready.status == 200);
  const auto models = c.call(http::verb::get, "/v1/models");  // same connection: keep-alive
  REQUIRE(models.status == 200);
  CHECK(json::parse(models.body).at("data").at(0).at("id").as_string() == "tiny");
  const auto metrics = c.call(http::verb::get, "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find("conclave_http_requests_total") != std::string::npos);
  CHECK(metrics.body.find("conclave_kv_blocks") != std::string::npos);
}

TEST_CASE("chat completions: streamed deltas equal the non-streamed text for one seed",
          "[server]") {
  test_server s;
  const auto full = post_json(s.port(), "/v1/chat/completions", chat_body + "}");
  REQUIRE(full.status == 200);
  const json::value v = json::parse(full.body);
  CHECK(v.at("object").as_string() == "chat.completion");
  const auto& choice = v.at("choices").at(0);
  CHECK(choice.at("finish_reason").as_string() == "length");
  const std::string text(choice.at("message").at("content").as_string());
  CHECK(v.at("usage").at("completion_tokens").as_int64() == 8);
  CHECK(v.at("usage").at("prompt_tokens").as_int64() > 5);

  const auto streamed =
      post_json(s.port(), "/v1/chat/completions",
                chat_body + R"(,"stream":true,"stream_options":{"include_usage":true}})");
  REQUIRE(streamed.status == 200);
  CHECK(streamed.headers.at("Content-Type") == "text/event-stream");
  const auto events = sse_events(streamed.body);
  REQUIRE(events.size() >= 4);
  CHECK(events.back() == "[DONE]");
  const json::value first = json::parse(events.front());
  CHECK(first.at("choices").at(0).at("delta").at("role").as_string() == "assistant");
  const json::value usage = json::parse(events[events.size() - 2]);
  CHECK(usage.at("choices").as_array().empty());
  CHECK(usage.at("usage").at("completion_tokens").as_int64() == 8);
  CHECK(content_of_stream(streamed.body) == text);
}

TEST_CASE("completions with token ids, echo and stop strings", "[server]") {
  test_server s;
  const auto r =
      post_json(s.port(), "/v1/completions",
                R"({"model":"tiny","prompt":[9707,11,1879],"max_tokens":5,"temperature":0})");
  REQUIRE(r.status == 200);
  const json::value v = json::parse(r.body);
  CHECK(v.at("object").as_string() == "text_completion");
  CHECK(v.at("usage").at("prompt_tokens").as_int64() == 3);
  const std::string text(v.at("choices").at(0).at("text").as_string());
  const auto echoed = post_json(
      s.port(), "/v1/completions",
      R"({"model":"tiny","prompt":"Hello, world","max_tokens":5,"temperature":0,"echo":true})");
  REQUIRE(echoed.status == 200);
  const std::string etext(json::parse(echoed.body).at("choices").at(0).at("text").as_string());
  CHECK(etext.rfind("Hello, world", 0) == 0);
  CHECK(etext.substr(12) == text);  // "Hello, world" is [9707, 11, 1879]
  // A stop string (here the third streamed piece, so it is whole UTF-8) cuts the text
  // before its first occurrence; finish_reason is "stop".
  const auto streamed = post_json(
      s.port(), "/v1/completions",
      R"({"model":"tiny","prompt":"Hello, world","max_tokens":5,"temperature":0,"stream":true})");
  std::vector<std::string> pieces;
  for (const auto& ev : sse_events(streamed.body)) {
    if (ev == "[DONE]") break;
    const std::string piece(json::parse(ev).at("choices").at(0).at("text").as_string());
    if (!piece.empty()) pieces.push_back(piece);
  }
  REQUIRE(pieces.size() >= 3);
  const std::string stop = pieces[2];
  json::object body{{"model", "tiny"},
                    {"prompt", "Hello, world"},
                    {"max_tokens", 5},
                    {"temperature", 0},
                    {"stop", stop}};
  const auto stopped = post_json(s.port(), "/v1/completions", json::serialize(body));
  REQUIRE(stopped.status == 200);
  const json::value stopped_json = json::parse(stopped.body);
  const auto& c = stopped_json.at("choices").at(0);
  CHECK(c.at("finish_reason").as_string() == "stop");
  CHECK(std::string(c.at("text").as_string()) == text.substr(0, text.find(stop)));
}

TEST_CASE("invalid requests get OpenAI-shaped errors with the right status and param", "[server]") {
  test_server s;
  const auto chat = [&](const std::string& body) {
    return post_json(s.port(), "/v1/chat/completions", body);
  };
  auto r = chat("{not json");
  CHECK(r.status == 400);
  CHECK(error_of(r).at("param").is_null());
  r = chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"temperature":3})");
  CHECK(r.status == 400);
  CHECK(error_of(r).at("param").as_string() == "temperature");
  r = chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"top_p":1.5})");
  CHECK(error_of(r).at("param").as_string() == "top_p");
  r = chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":0})");
  CHECK(error_of(r).at("param").as_string() == "max_tokens");
  r = chat(R"({"model":"tiny","messages":[{"role":"wizard","content":"x"}]})");
  CHECK(r.status == 400);
  CHECK(error_of(r).at("param").as_string() == "messages[0].role");
  r = chat(
      R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"bad name!"}}]})");
  CHECK(error_of(r).at("param").as_string() == "tools[0].function.name");
  r = chat(R"({"model":"gpt-9","messages":[{"role":"user","content":"x"}]})");
  CHECK(r.status == 404);
  CHECK(error_of(r).at("code").as_string() == "model_not_found");
  r = chat(R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":5000})");
  CHECK(r.status == 400);
  CHECK(error_of(r).at("code").as_string() == "context_length_exceeded");
  CHECK(std::string(error_of(r).at("message").as_string())
            .find("maximum context length is 4096 tokens") != std::string::npos);
  r = chat("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}");
  CHECK(r.status == 400);
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep += '[';
  r = chat(deep);
  CHECK(r.status == 400);
  http_client c(s.port());
  CHECK(c.call(http::verb::get, "/v1/chat/completions").status == 405);
  CHECK(c.call(http::verb::get, "/nope").status == 404);
  CHECK(c.call(http::verb::get, "/health").status == 200);  // the connection survived all of it
}

TEST_CASE("body and header limits give 413 and 431", "[server]") {
  test_server s([](config::server_config& c) {
    c.max_body_bytes = 4096;
    c.max_header_bytes = 2048;
  });
  const auto big = post_json(s.port(), "/v1/completions", std::string(5000, ' '));
  CHECK(big.status == 413);
  CHECK(error_of(big).contains("message"));
  http_client c(s.port());
  const auto headers = c.call(http::verb::get, "/health", {}, {{"X-Big", std::string(4096, 'a')}});
  CHECK(headers.status == 431);
  CHECK(http_client(s.port()).call(http::verb::get, "/health").status == 200);
}

TEST_CASE("API keys: missing or wrong -> 401, right -> 200", "[server]") {
  test_server s([](config::server_config& c) { c.api_keys = {"secret-key-1", "secret-key-2"}; });
  const std::string body = R"({"model":"tiny","prompt":"hi","max_tokens":1})";
  CHECK(post_json(s.port(), "/v1/completions", body).status == 401);
  CHECK(post_json(s.port(), "/v1/completions", body, {{"Authorization", "Bearer secret-key-3"}})
            .status == 401);
  CHECK(post_json(s.port(), "/v1/completions", body, {{"Authorization", "Bearer secret-key"}})
            .status == 401);
  CHECK(post_json(s.port(), "/v1/completions", body, {{"Authorization", "Bearer secret-key-2"}})
            .status == 200);
  CHECK(http_client(s.port()).call(http::verb::get, "/health").status ==
        200);  // health needs no key
}

TEST_CASE("admin keys: admin routes refuse a user key (403), user routes take both",
          "[server][auth]") {
  test_server s([](config::server_config& c) {
    c.api_keys = {"user-key-1"};
    c.admin_keys = {"admin-key-1"};
    c.replicas.fault_injection = true;
  });
  const std::string body = R"({"model":"tiny","prompt":"hi","max_tokens":1})";
  const auto user =
      std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer user-key-1"}};
  const auto admin =
      std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer admin-key-1"}};
  CHECK(post_json(s.port(), "/v1/completions", body, user).status == 200);
  CHECK(post_json(s.port(), "/v1/completions", body, admin).status == 200);
  http_client c(s.port());
  for (const char* route : {"/admin/cluster", "/admin/alerts", "/admin/telemetry", "/admin/models",
                            "/dashboard/feed"}) {
    INFO(route);
    const auto refused = c.call(http::verb::get, route, {}, user);
    CHECK(refused.status == 403);
    CHECK(refused.body.find("admin_key_required") != std::string::npos);
    CHECK(c.call(http::verb::get, route, {}, {}).status == 401);
    if (std::string(route) != "/dashboard/feed")
      CHECK(c.call(http::verb::get, route, {}, admin).status == 200);
  }
  CHECK(post_json(s.port(), "/admin/fault", R"({"replica":0,"fault":"fail_step"})", user).status ==
        403);
  CHECK(post_json(s.port(), "/admin/fault", R"({"replica":0,"fault":"fail_step"})", admin).status ==
        200);
}

TEST_CASE("a full waiting queue answers 429 with Retry-After", "[server]") {
  test_server s([](config::server_config& c) {
    c.max_waiting = 1;
    c.engine.scheduler.max_num_seqs = 1;
  });
  const std::string long_req =
      R"({"model":"tiny","prompt":"a","max_tokens":3000,"ignore_eos":true,"stream":true})";
  http_client running(s.port());
  REQUIRE(running.send_and_read_header("/v1/completions", long_req) == 200);
  running.read_some();  // it is producing tokens: no longer waiting
  http_client queued(s.port());
  REQUIRE(queued.send_and_read_header("/v1/completions", long_req) ==
          200);  // admitted to the queue
  const auto rejected =
      post_json(s.port(), "/v1/completions", R"({"model":"tiny","prompt":"a","max_tokens":2})");
  CHECK(rejected.status == 429);
  CHECK(rejected.headers.count("Retry-After") == 1);
  CHECK(rejected.headers.at("Retry-After") == "1");
  CHECK(error_of(rejected).at("type").as_string() == "rate_limit_error");
  running.close();
  queued.close();
}

TEST_CASE("a client that disconnects mid-stream frees its KV blocks", "[server]") {
  test_server s;
  {
    http_client c(s.port());
    REQUIRE(
        c.send_and_read_header(
            "/v1/completions",
            R"({"model":"tiny","prompt":"count","max_tokens":3000,"ignore_eos":true,"stream":true})") ==
        200);
    c.read_some();
    CHECK(s.metric("conclave_kv_blocks{state=\"used\"}") > 0);
    c.close();
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.metric("conclave_kv_blocks{state=\"used\"}") != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(s.metric("conclave_kv_blocks{state=\"used\"}") == 0);
  CHECK(s.service().active_requests() == 0);
}

TEST_CASE("two requests on one keep-alive connection both succeed", "[server]") {
  test_server s;
  http_client c(s.port());
  const std::string body = R"({"model":"tiny","prompt":"x","max_tokens":3})";
  CHECK(c.call(http::verb::post, "/v1/completions", body).status == 200);
  CHECK(c.call(http::verb::post, "/v1/completions", body + " ").status == 200);
  const auto streamed = c.call(http::verb::post, "/v1/completions",
                               R"({"model":"tiny","prompt":"x","max_tokens":3,"stream":true})");
  CHECK(streamed.status == 200);
  CHECK(c.call(http::verb::post, "/v1/completions", body).status == 200);
}

TEST_CASE("draining: new requests get 503, running ones finish", "[server]") {
  test_server s([](config::server_config& c) { c.drain_timeout_s = 10; });
  http_client running(s.port());
  REQUIRE(
      running.send_and_read_header(
          "/v1/completions",
          R"({"model":"tiny","prompt":"a","max_tokens":200,"ignore_eos":true,"stream":true})") ==
      200);
  std::thread drainer([&] { s.server().drain_and_stop(std::chrono::seconds(10)); });
  while (!s.service().draining()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto late =
      post_json(s.port(), "/v1/completions", R"({"model":"tiny","prompt":"a","max_tokens":2})");
  CHECK(late.status == 503);
  std::string rest;
  try {
    while (rest.find("[DONE]") == std::string::npos) rest += running.read_some();
  } catch (const boost::system::system_error&) {
  }
  CHECK(rest.find("[DONE]") != std::string::npos);  // the running request finished
  drainer.join();
  CHECK(s.service().active_requests() == 0);
}

TEST_CASE(
    "drain timeout exceeded: the long request ends with an error event, then the server stops",
    "[server]") {
  test_server s;
  http_client running(s.port());
  REQUIRE(
      running.send_and_read_header(
          "/v1/completions",
          R"({"model":"tiny","prompt":"a","max_tokens":4000,"ignore_eos":true,"stream":true})") ==
      200);
  std::string rest = running.read_some();  // the stream is running
  const auto t0 = std::chrono::steady_clock::now();
  std::thread drainer([&] { s.server().drain_and_stop(std::chrono::milliseconds(300)); });
  try {
    while (rest.find("[DONE]") == std::string::npos) rest += running.read_some();
  } catch (const boost::system::system_error&) {
  }
  drainer.join();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO("drain_and_stop(300 ms) returned after " << took << " s");
  CHECK(took < 10.0);  // bounded: it does not wait for the 4,000 tokens
  // The stream ended properly: an error event (the server is shutting down), then [DONE].
  const auto err = rest.find(R"("error")");
  REQUIRE(err != std::string::npos);
  CHECK(rest.find("shutting down", err) != std::string::npos);
  CHECK(rest.find("[DONE]", err) != std::string::npos);
  CHECK(s.service().active_requests() == 0);
}

TEST_CASE("without max_tokens a request may use the rest of the context", "[server]") {
  test_server s([](config::server_config& c) { c.engine.max_model_len = 48; });
  const auto r = post_json(s.port(), "/v1/completions",
                           R"({"model":"tiny","prompt":"Hello","ignore_eos":true})");
  REQUIRE(r.status == 200);
  const json::value v = json::parse(r.body);
  CHECK(v.at("choices").at(0).at("finish_reason").as_string() == "length");
  CHECK(v.at("usage").at("total_tokens").as_int64() == 48);
  const auto over = post_json(s.port(), "/v1/completions",
                              R"({"model":"tiny","prompt":"Hello","max_tokens":48})");
  CHECK(over.status == 400);
}

TEST_CASE(
    "prefill_stall_pairs and decode_slowdown in the server: a long prompt next to decoding "
    "ones, the same completions, and /metrics counts the bounded chunks and paced steps",
    "[server][scheduler]") {
  // Three short prompts decode 200 tokens each; once they run, a 240-token prompt comes,
  // read 64 tokens a step (at most) next to them.
  struct result {
    std::vector<std::string> texts;
    double bounded, paced;
  };
  const auto run = [](int64_t pairs, double slowdown) {
    test_server s([&](config::server_config& c) {
      c.engine.scheduler.max_num_batched_tokens = 64;
      c.engine.scheduler.prefill_stall_pairs = pairs;
      c.engine.scheduler.decode_slowdown = slowdown;
    });
    std::vector<std::string> texts(4);
    const auto complete = [&](int i, int n, int max_tokens) {
      std::string ids;
      for (int t = 0; t < n; ++t)
        ids += (t ? "," : "") + std::to_string(100 + (t * 37 + i * 11) % 3000);
      const std::string body = R"({"model":"tiny","prompt":[)" + ids + R"(],"max_tokens":)" +
                               std::to_string(max_tokens) +
                               R"(,"temperature":0,"ignore_eos":true})";
      const auto r = post_json(s.port(), "/v1/completions", body);
      if (r.status == 200)
        texts[static_cast<size_t>(i)] =
            std::string(json::parse(r.body).at("choices").at(0).at("text").as_string());
    };
    std::vector<std::thread> threads;
    for (int i = 1; i < 4; ++i) threads.emplace_back([&, i] { complete(i, 6, 200); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (s.metric("conclave_sequences{state=\"running\"}") < 3 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    complete(0, 240, 12);
    for (auto& t : threads) t.join();
    return result{texts, s.metric("conclave_prefill_stall_bounded_chunks_total"),
                  s.metric("conclave_prefill_paced_steps_total")};
  };
  const auto plain = run(0, 0);
  for (const auto& t : plain.texts) CHECK_FALSE(t.empty());
  CHECK(plain.bounded == 0);
  CHECK(plain.paced == 0);
  const auto bounded = run(500, 0);
  CHECK(bounded.texts == plain.texts);
  CHECK(bounded.bounded > 0);
  // Paced: how many steps wait depends on the steps' wall times (engine_tests "[pacer]"
  // counts them under a fake clock); here the completions and the counter's presence.
  const auto paced = run(0, 1.05);
  CHECK(paced.texts == plain.texts);
  CHECK(paced.paced >= 0);
}

TEST_CASE(
    "KV offload in the server: a tight cache gives the same completions, offloaded "
    "not recomputed, and /metrics counts it",
    "[server][offload]") {
  // Six concurrent greedy completions that cannot all hold their KV blocks at once.
  const auto run = [](bool tight, bool offload) {
    test_server s([&](config::server_config& c) {
      c.engine.backend.block_size = 4;
      c.engine.backend.num_kv_blocks = tight ? 24 : 512;
      if (offload) c.engine.backend.kv_offload_bytes = size_t{32} << 20;
    });
    std::vector<std::string> texts(6);
    std::vector<std::thread> threads;
    for (int i = 0; i < 6; ++i) {
      threads.emplace_back([&, i] {
        const std::string body = R"({"model":"tiny","prompt":[)" + std::to_string(100 + i) +
                                 R"(,11,1879,315,279,1879,315,)" + std::to_string(2000 + 7 * i) +
                                 R"(],"max_tokens":30,"temperature":0,"ignore_eos":true})";
        const auto r = post_json(s.port(), "/v1/completions", body);
        if (r.status == 200)
          texts[static_cast<size_t>(i)] =
              std::string(json::parse(r.body).at("choices").at(0).at("text").as_string());
      });
    }
    for (auto& t : threads) t.join();
    return std::make_tuple(texts, s.metric("conclave_kv_offload_swaps_total"),
                           s.metric("conclave_preemptions_total"),
                           s.metric("conclave_kv_offload_blocks_total{direction=\"to_device\"}"));
  };
  const auto [expected, no_swaps, no_preemptions, no_blocks] = run(false, false);
  for (const auto& t : expected) CHECK_FALSE(t.empty());
  CHECK(no_swaps == 0);
  const auto [got, swaps, preemptions, blocks_in] = run(true, true);
  CHECK(got == expected);
  CHECK(swaps > 0);
  CHECK(preemptions == 0);
  CHECK(blocks_in > 0);
}
