// Minimal synchronous HTTP and WebSocket clients (Beast) for the server tests, plus a
// fixture that serves a tiny model with Qwen3's vocabulary on a free loopback port.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json/value.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/server_config.h"
#include "net/http_server.h"
#include "serve/service.h"
#include "tests/fixture.h"

namespace conclave::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct http_reply {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
};

/// One HTTP connection (keep-alive across calls).
class http_client {
 public:
  explicit http_client(uint16_t port);
  http_reply call(http::verb verb, const std::string& target, const std::string& body = {},
                  const std::vector<std::pair<std::string, std::string>>& headers = {});
  /// Sends a request and reads only the response header (for streams cut short).
  int send_and_read_header(const std::string& target, const std::string& body,
                           http::verb verb = http::verb::post);
  /// Reads some bytes of the body after send_and_read_header (raw: chunk sizes included).
  std::string read_some();
  void close();

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
};

/// One WebSocket connection to /v1/ws (Beast kept in the .cpp).
class ws_client {
 public:
  explicit ws_client(uint16_t port);
  ~ws_client();
  ws_client(const ws_client&) = delete;
  ws_client& operator=(const ws_client&) = delete;
  void send(const std::string& text);
  /// The next frame's text.
  std::string next_text();
  /// Drops the connection without a close frame (a client that vanished).
  void drop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

http_reply post_json(uint16_t port, const std::string& target, const std::string& body,
                     const std::vector<std::pair<std::string, std::string>>& headers = {});

/// GET `target` (an admin view such as /admin/cluster) parsed as JSON; throws
/// std::runtime_error unless the answer is 200.
boost::json::value get_json(uint16_t port, const std::string& target);

/// "data: ..." payloads of an SSE body, in order (including "[DONE]").
std::vector<std::string> sse_events(const std::string& body);

/// An HTTP endpoint on loopback for tools to call (webhooks): request number n (from 0)
/// with body `body` gets handler(n, body, stopping) = {status, reply body}. The handler
/// runs on the hook's thread and may block to hold a call (until `stopping`, set when the
/// hook ends); status 0 never answers (the connection stays open until the hook ends).
class loopback_hook {
 public:
  using handler = std::function<std::pair<int, std::string>(int n, const std::string& body,
                                                            const std::atomic<bool>& stopping)>;
  explicit loopback_hook(handler h);
  ~loopback_hook();
  loopback_hook(const loopback_hook&) = delete;
  loopback_hook& operator=(const loopback_hook&) = delete;
  /// http://127.0.0.1:PORT/stock
  std::string url() const;
  std::atomic<int> requests{0};

 private:
  handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// A served model for the duration of a test.
class test_server {
 public:
  /// Serves the tiny-qwen preset; `tweak` adjusts the config before start.
  explicit test_server(const std::function<void(config::server_config&)>& tweak = {});
  ~test_server();
  uint16_t port() const { return server_->port(); }
  net::http_server& server() { return *server_; }
  serve::service& service() { return *service_; }
  /// The value of a Prometheus sample line starting with `prefix`, or -1.
  double metric(const std::string& prefix);

 private:
  temp_dir dir_;
  std::shared_ptr<serve::server_metrics> metrics_;
  std::unique_ptr<serve::service> service_;
  std::unique_ptr<net::http_server> server_;
};

}  // namespace conclave::test
