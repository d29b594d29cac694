// /v1/ws over a real socket: concurrent requests on one connection, cancel, errors,
// unknown frame types ignored, close code 1012 on drain.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

class beast_ws_client {
 public:
  explicit beast_ws_client(uint16_t port) : ws_(io_) {
    beast::get_lowest_layer(ws_).connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    ws_.handshake("127.0.0.1", "/v1/ws");
  }
  void send(const std::string& text) { ws_.write(asio::buffer(text)); }
  json::object next() {
    beast::flat_buffer b;
    ws_.read(b);
    return json::parse(beast::buffers_to_string(b.data())).as_object();
  }
  websocket::stream<beast::tcp_stream>& stream() { return ws_; }

 private:
  asio::io_context io_;
  websocket::stream<beast::tcp_stream> ws_;
};

std::string request(const std::string& id, int max_tokens) {
  return R"({"type":"request","id":")" + id +
         R"(","endpoint":"completions","body":{"model":"tiny","prompt":"hi","max_tokens":)" +
         std::to_string(max_tokens) + R"(,"ignore_eos":true,"temperature":0}})";
}

}  // namespace

TEST_CASE("websocket: concurrent requests, each chunked then done", "[server][websocket]") {
  test_server s;
  beast_ws_client c(s.port());
  c.send(request("a", 6));
  c.send(request("b", 4));
  c.send(R"({"type":"future-extension","id":"zzz"})");  // ignored
  std::map<std::string, std::string> text;
  std::set<std::string> done;
  while (done.size() < 2) {
    const auto f = c.next();
    const std::string type(f.at("type").as_string());
    const std::string id(f.at("id").as_string());
    if (type == "chunk") {
      CHECK(f.at("data").at("object").as_string() == "text_completion");
      text[id] += std::string(f.at("data").at("choices").at(0).at("text").as_string());
    } else {
      REQUIRE(type == "done");
      CHECK(f.at("finish_reason").as_string() == "length");
      CHECK(f.at("usage").at("completion_tokens").as_int64() == (id == "a" ? 6 : 4));
      done.insert(id);
    }
  }
  // The same prompt greedily over HTTP gives the same text.
  const auto http = post_json(
      s.port(), "/v1/completions",
      R"({"model":"tiny","prompt":"hi","max_tokens":4,"ignore_eos":true,"temperature":0})");
  CHECK(std::string(json::parse(http.body).at("choices").at(0).at("text").as_string()) ==
        text["b"]);
}

TEST_CASE("websocket: cancel, errors as frames", "[server][websocket]") {
  test_server s;
  beast_ws_client c(s.port());
  c.send(request("long", 3000));
  c.send(R"({"type":"cancel","id":"long"})");
  for (;;) {
    const auto f = c.next();
    if (f.at("type").as_string() == "done") {
      CHECK(f.at("id").as_string() == "long");
      CHECK(f.at("finish_reason").as_string() == "cancelled");
      break;
    }
  }
  c.send(
      R"({"type":"request","id":"bad","endpoint":"completions","body":{"model":"tiny","prompt":"hi","temperature":-1}})");
  auto f = c.next();
  CHECK(f.at("type").as_string() == "error");
  CHECK(f.at("id").as_string() == "bad");
  CHECK(f.at("error").at("param").as_string() == "temperature");
  c.send("not json");
  f = c.next();
  CHECK(f.at("type").as_string() == "error");
  CHECK(f.at("id").is_null());
  c.send(R"({"type":"request","id":"e","endpoint":"embeddings","body":{}})");
  CHECK(c.next().at("error").at("param").as_string() == "endpoint");
  // Still usable after all of that.
  c.send(request("ok", 2));
  for (;;) {
    const auto g = c.next();
    if (g.at("type").as_string() == "done") break;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.metric("conclave_kv_blocks{state=\"used\"}") != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(s.metric("conclave_kv_blocks{state=\"used\"}") == 0);
}

TEST_CASE("websocket clients get close code 1012 when the server drains", "[server][websocket]") {
  test_server s;
  beast_ws_client c(s.port());
  std::thread drainer([&] { s.server().drain_and_stop(std::chrono::seconds(5)); });
  beast::flat_buffer b;
  beast::error_code ec;
  c.stream().read(b, ec);
  CHECK(ec == websocket::error::closed);
  CHECK(c.stream().reason().code == websocket::close_code::service_restart);
  drainer.join();
}
