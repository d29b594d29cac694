// server_context: what every HTTP and WebSocket session of one server shares (internal
// to net/).
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "config/server_config.h"
#include "net/openai_protocol.h"
#include "serve/server_metrics.h"
#include "serve/service.h"
#include "serve/stream_journal.h"
#include "serve/tenants.h"

namespace conclave::serve {
class telemetry_hub;
}  // namespace conclave::serve

namespace conclave::net {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class websocket_session;
class alert_webhooks;

/// One finished request, as its log line records it (docs/observability.md: the fields).
struct request_log {
  std::string route, request_id, model;
  int replica = -1;  ///< -1: none ran it (refused, or the client left first)
  int status = 0;
  std::string error;  ///< the error message, when it failed
  double latency_ms = 0, engine_ms = 0;
  serve::usage tokens;
  size_t tool_calls = 0;
};

struct server_context {
  server_context(const config::server_config& c, serve::service& s,
                 std::shared_ptr<serve::server_metrics> m);

  config::server_config cfg;
  serve::service& service;
  std::shared_ptr<serve::server_metrics> metrics;
  protocol_context proto;
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> next_id{1};
  /// Per server: two servers in one process (or one restarted) never share request ids,
  /// which name journaled streams.
  const uint64_t id_salt =
      (uint64_t{std::random_device{}()} << 32 | std::random_device{}()) * 0x9e3779b97f4a7c15ull;

  /// The [gateway] store: API keys, usage, the stream journal.
  std::shared_ptr<store::state_store> store;
  /// API keys with limits and usage (serve/tenants.h).
  std::shared_ptr<serve::tenants> tenants;
  /// The journal of resumable streams (net/stream_resume.h); null when
  /// gateway.resume_window_s is 0.
  std::shared_ptr<serve::stream_journal> journal;

  /// The dashboard feed's frames and the alert rules (set by http_server).
  std::shared_ptr<serve::telemetry_hub> telemetry;
  std::shared_ptr<alert_webhooks> alerts;

  std::mutex ws_mutex;
  std::vector<std::weak_ptr<websocket_session>> ws_sessions;

  /// "chatcmpl-<24 hex>"-style ids, unique per server (id_salt).
  std::string new_request_id(const char* prefix);
  /// True when no keys exist (none configured, none created) or the Authorization header
  /// carries one of them. Admin keys are taken on the user routes too.
  bool authorized(std::string_view authorization_header) const;
  /// A key's refused request as the error the client gets (HTTP and WebSocket alike).
  static api_error refusal_error(const serve::tenant_refusal& no);
  /// The user key (config or managed) the header carries, or nothing.
  std::optional<store::key_record> key_of(std::string_view authorization_header) const;
  /// The admin routes' check: with admin keys configured, `ok` only for one of them and
  /// `forbidden` (403) for a user key; without, as authorized().
  enum class admin_auth { ok, unauthorized, forbidden };
  admin_auth authorize_admin(std::string_view authorization_header) const;
  /// One JSON log line per finished request.
  void log_request(const request_log& r) const;
};

/// Takes over an upgraded connection as a WebSocket session.
void start_websocket_session(std::shared_ptr<server_context> ctx, beast::tcp_stream stream,
                             http::request<http::string_body> upgrade);

/// Closes every WebSocket with 1012 (service restart); used when draining.
void close_all_websockets(server_context& ctx);

}  // namespace conclave::net
