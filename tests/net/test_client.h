// Minimal synchronous HTTP and WebSocket clients (Beast) for the server tests, plus a
// fixture that serves a tiny model with Qwen3's vocabulary on a free loopback port.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/service.h"
#include "config/server_config.h"
#include "net/http_server.h"
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
  int send_and_read_header(const std::string& target, const std::string& body);
  /// Reads some bytes of the body after send_and_read_header.
  std::string read_some();
  void close();

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
};

http_reply post_json(uint16_t port, const std::string& target, const std::string& body,
                     const std::vector<std::pair<std::string, std::string>>& headers = {});

/// "data: ..." payloads of an SSE body, in order (including "[DONE]").
std::vector<std::string> sse_events(const std::string& body);

/// A served model for the duration of a test.
class test_server {
 public:
  /// Serves the tiny-qwen preset; `tweak` adjusts the config before start.
  explicit test_server(const std::function<void(config::server_config&)>& tweak = {});
  ~test_server();
  uint16_t port() const { return server_->port(); }
  net::http_server& server() { return *server_; }
  actors::inference_service& service() { return *service_; }
  /// The value of a Prometheus sample line starting with `prefix`, or -1.
  double metric(const std::string& prefix);

 private:
  temp_dir dir_;
  std::shared_ptr<actors::server_metrics> metrics_;
  std::unique_ptr<actors::inference_service> service_;
  std::unique_ptr<net::http_server> server_;
};

}  // namespace conclave::test
