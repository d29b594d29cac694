// Test clients and the served-model fixture.
#include "tests/net/test_client.h"

#include <boost/json/parse.hpp>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "actors/actor_service.h"
#include "model/gen_model.h"

namespace conclave::test {

http_client::http_client(uint16_t port) : stream_(io_) {
  stream_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
}

http_reply http_client::call(http::verb verb, const std::string& target, const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers) {
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::write(stream_, req);
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  http::read(stream_, buffer_, parser);
  auto res = parser.release();
  http_reply r;
  r.status = static_cast<int>(res.result_int());
  for (const auto& f : res) r.headers[std::string(f.name_string())] = std::string(f.value());
  r.body = res.body();
  return r;
}

int http_client::send_and_read_header(const std::string& target, const std::string& body,
                                      http::verb verb) {
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream_, req);
  parser_.emplace();
  http::read_header(stream_, buffer_, *parser_);
  return static_cast<int>(parser_->get().result_int());
}

std::string http_client::read_some() {
  if (buffer_.size() > 0) {  // body bytes that came with the header
    std::string head = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    return head;
  }
  char buf[4096];
  const size_t n = stream_.socket().read_some(asio::buffer(buf));
  return std::string(buf, n);
}

void http_client::close() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.socket().close(ec);
}

struct ws_client::impl {
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};
};

ws_client::ws_client(uint16_t port) : impl_(std::make_unique<impl>()) {
  beast::get_lowest_layer(impl_->ws).connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  impl_->ws.handshake("127.0.0.1", "/v1/ws");
}

ws_client::~ws_client() = default;

void ws_client::send(const std::string& text) {
  impl_->ws.write(asio::buffer(text));
}

std::string ws_client::next_text() {
  beast::flat_buffer b;
  impl_->ws.read(b);
  return beast::buffers_to_string(b.data());
}

void ws_client::drop() {
  beast::error_code ec;
  auto& sock = beast::get_lowest_layer(impl_->ws).socket();
  sock.shutdown(tcp::socket::shutdown_both, ec);
  sock.close(ec);
}

boost::json::value get_json(uint16_t port, const std::string& target) {
  http_client c(port);
  const auto r = c.call(http::verb::get, target);
  if (r.status != 200)
    throw std::runtime_error("GET " + target + ": " + std::to_string(r.status) + " " + r.body);
  return boost::json::parse(r.body);
}

http_reply post_json(uint16_t port, const std::string& target, const std::string& body,
                     const std::vector<std::pair<std::string, std::string>>& headers) {
  http_client c(port);
  return c.call(http::verb::post, target, body, headers);
}

std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("data: ", 0) == 0) out.push_back(line.substr(6));
  }
  return out;
}

test_server::test_server(const std::function<void(config::server_config&)>& tweak) {
  const auto model_dir = dir_.path() / "tiny-qwen";
  model::gen_model_options o;
  o.preset = "tiny-qwen";
  model::write_random_checkpoint(o, model_dir);
  const std::filesystem::path tok =
      std::filesystem::path(CONCLAVE_QWEN3_TOKENIZER_DIR) / "tokenizer.json";
  if (!std::filesystem::exists(tok))
    throw std::runtime_error("run scripts/fetch_tokenizer.sh: missing " + tok.string());
  // The tokenizer sits in the model folder without Qwen3's tokenizer_config.json, so the
  // tiny Qwen3-Coder-shaped model renders with the built-in Qwen3-Coder template.
  std::filesystem::copy_file(tok, model_dir / "tokenizer.json");
  config::server_config cfg;
  cfg.port = 0;
  cfg.model_dir = model_dir.string();
  cfg.tokenizer_path = (model_dir / "tokenizer.json").string();
  cfg.served_model_name = "tiny";
  cfg.engine.backend.kv_cache_bytes = size_t{32} << 20;
  cfg.engine.backend.threads = 1;
  if (tweak) tweak(cfg);
  metrics_ = std::make_shared<serve::server_metrics>();
  service_ = actors::make_actor_service(cfg, metrics_);
  server_ = std::make_unique<net::http_server>(cfg, *service_, metrics_);
  server_->start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!service_->loaded()) {
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("model did not load in 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

test_server::~test_server() {
  server_->stop();
  server_->wait();
  service_->shutdown();  // sessions hold sinks into the server's I/O context
  server_.reset();
  service_.reset();
}

double test_server::metric(const std::string& prefix) {
  http_client c(port());
  const auto r = c.call(http::verb::get, "/metrics");
  std::istringstream in(r.body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

loopback_hook::loopback_hook(handler h)
    : handler_(std::move(h)), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
  thread_ = std::thread([this] {
    std::vector<tcp::socket> held;
    for (;;) {
      beast::error_code ec;
      tcp::socket sock(io_);
      acceptor_.accept(sock, ec);
      if (ec || stop_) return;
      beast::flat_buffer buf;
      http::request<http::string_body> req;
      http::read(sock, buf, req, ec);
      if (ec) continue;
      const auto [status, body] = handler_(requests++, req.body(), stop_);
      if (status == 0) {
        held.push_back(std::move(sock));
        continue;
      }
      http::response<http::string_body> res(static_cast<http::status>(status), 11);
      res.body() = body;
      res.prepare_payload();
      http::write(sock, res, ec);
    }
  });
}

loopback_hook::~loopback_hook() {
  stop_ = true;  // (a handler holding a call sees it and returns)
  beast::error_code ec;
  tcp::socket poke(io_);
  poke.connect(acceptor_.local_endpoint(), ec);  // wakes accept()
  thread_.join();
}

std::string loopback_hook::url() const {
  return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/stock";
}

}  // namespace conclave::test
