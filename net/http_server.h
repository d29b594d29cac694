// http_server: the Beast front end. One port serves HTTP/1.1 (OpenAI routes, SSE) and
// WebSocket (/v1/ws). Sessions hand typed requests to the actor service and write its
// events back; I/O runs on its own threads, never on the actors'.
#pragma once

#include <chrono>
#include <memory>

#include "config/server_config.h"
#include "serve/server_metrics.h"
#include "serve/service.h"

namespace conclave::net {

class http_server {
 public:
  http_server(const config::server_config& cfg, serve::service& service,
              std::shared_ptr<serve::server_metrics> metrics);
  ~http_server();

  /// Binds and starts the I/O threads. Throws std::runtime_error (address in use...).
  void start();
  /// The bound port (useful with port 0).
  uint16_t port() const;
  /// SIGTERM behaviour: new requests get 503; waits up to `timeout` for running requests,
  /// ends what is left with an error event (503), closes WebSockets with 1012 and stops.
  /// Returns when stopped.
  void drain_and_stop(std::chrono::milliseconds timeout);
  /// Stops at once.
  void stop();
  /// Blocks until the server stopped (after drain_and_stop / stop, or a signal).
  void wait();
  /// Installs SIGINT/SIGTERM handlers that drain with the configured timeout.
  void handle_signals();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave::net
