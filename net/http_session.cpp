// HTTP sessions. Writes go through one queue (one async_write in flight); while a
// generation runs, a read on the socket watches for the client going away.
#include "net/http_session.h"
#include "net/stream_resume.h"

#include <array>
#include <charconv>

#include "net/admin.h"
#include "net/admin_keys.h"
#include "net/alert_webhooks.h"
#include "net/dashboard.h"
#include "net/dashboard_feed.h"
#include "net/telemetry_json.h"
#include "serve/telemetry_hub.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <chrono>
#include <deque>
#include <optional>
#include <sstream>

namespace conclave::net {
namespace {

using clock_type = std::chrono::steady_clock;
using request_type = http::request<http::string_body>;

class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(std::shared_ptr<server_context> ctx, tcp::socket socket)
      : ctx_(std::move(ctx)), stream_(std::move(socket)) {}
  /// A session can go while its request runs (its socket failed where no handler took it
  /// up): the request stops, and its key gets its slot back and is charged its tokens.
  ~http_session() {
    if (generating_ && handle_) handle_->cancel();
    finish_request();
  }

  void run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
  }

  /// Called on this session's strand for each event of the running request.
  void on_event(serve::client_event e);

 private:
  void do_read();
  void on_read(beast::error_code ec, size_t);
  void route(request_type& req);
  void handle_generation(request_type& req, bool chat);
  /// POST /admin/cluster/rebalance?replica=N: forces an expert rebalance (this connection
  /// waits until every rank switched).
  void handle_rebalance(std::string_view target);
  void handle_fault(request_type& req);
  /// GET/POST /admin/models, DELETE /admin/models/{name} (serve::model_set).
  void handle_models_admin(request_type& req, std::string_view path);
  /// GET/POST /admin/keys, DELETE /admin/keys/{id}, GET /admin/usage (serve/tenants.h).
  void handle_keys_admin(request_type& req, std::string_view path);
  void send_simple(http::status status, std::string body,
                   const char* content_type = "application/json", bool close = false,
                   const char* retry_after = nullptr);
  void send_error(const api_error& err, bool close = false);
  void enqueue(std::string data);
  void do_write();
  void finish_request();
  void client_gone();
  void watch_disconnect();
  void close();
  /// A lingering close (as nginx's): after an error sent before the request was read
  /// whole (413, 431), the write side is shut and what the client still sends is read
  /// and dropped, for up to kLingerTime (kLingerTimeout between reads) and kLingerBytes,
  /// so the client reads the error instead of a connection reset.
  void linger();
  void linger_read();

  std::shared_ptr<server_context> ctx_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  unsigned version_ = 11;

  // The running generation, if any.
  bool generating_ = false;
  bool streaming_ = false;
  bool started_ = false;
  bool done_ = false;
  bool closed_ = false;
  bool watching_ = false;
  std::string route_, request_id_, model_;
  std::string key_id_;  ///< the API key the running request counts against (else empty)
  std::optional<response_writer> writer_;
  std::optional<stream_tap> tap_;  ///< a streamed request's chunk numbers and journal
  std::shared_ptr<serve::request_handle> handle_;
  clock_type::time_point t0_;

  std::deque<std::string> out_;
  bool writing_ = false;
  bool close_after_write_ = false;
  bool read_after_write_ = false;
  bool linger_on_close_ = false;
  clock_type::time_point linger_until_;
  size_t lingered_ = 0;
  std::unique_ptr<std::array<char, 16384>> linger_buf_;
};

constexpr auto kLingerTime = std::chrono::seconds(30);
constexpr auto kLingerTimeout = std::chrono::seconds(5);
constexpr size_t kLingerBytes = size_t{256} << 20;

/// Delivers service events onto the session's strand.
class sink final : public serve::client_sink {
 public:
  sink(std::weak_ptr<http_session> s, asio::any_io_executor ex)
      : session_(std::move(s)), ex_(std::move(ex)) {}
  void push(serve::client_event e) override {
    asio::post(ex_, [s = session_, e = std::move(e)]() mutable {
      if (auto p = s.lock()) p->on_event(std::move(e));
    });
  }

 private:
  std::weak_ptr<http_session> session_;
  asio::any_io_executor ex_;
};

void http_session::do_read() {
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(ctx_->cfg.max_header_bytes));
  parser_->body_limit(ctx_->cfg.max_body_bytes);
  stream_.expires_after(std::chrono::seconds(120));  // idle keep-alive connections go away
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&http_session::on_read, shared_from_this()));
}

void http_session::on_read(beast::error_code ec, size_t) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == asio::error::connection_reset) {
    return close();
  }
  if (ec == http::error::header_limit) {
    ctx_->metrics->count_request("other", 431);
    linger_on_close_ = true;
    return send_error(
        {431, "request headers are larger than the server's limit", "invalid_request_error"}, true);
  }
  if (ec == http::error::body_limit) {
    ctx_->metrics->count_request("other", 413);
    linger_on_close_ = true;
    return send_error({413,
                       "the request body is larger than the server's limit of " +
                           std::to_string(ctx_->cfg.max_body_bytes) + " bytes",
                       "invalid_request_error"},
                      true);
  }
  if (ec) {
    ctx_->metrics->count_request("other", 400);
    return send_error({400, "malformed HTTP request: " + ec.message(), "invalid_request_error"},
                      true);
  }
  request_type req = parser_->release();
  keep_alive_ = req.keep_alive();
  version_ = req.version();
  if (websocket::is_upgrade(req)) {
    if (req.target() != "/v1/ws")
      return send_error({404, "WebSocket endpoint is /v1/ws", "invalid_request_error"}, true);
    if (!ctx_->authorized(req[http::field::authorization])) {
      ctx_->metrics->count_request("/v1/ws", 401);
      return send_error(
          {401, "missing or invalid API key", "authentication_error", {}, "invalid_api_key"}, true);
    }
    if (ctx_->draining.load())
      return send_error({503, "the server is shutting down", "service_unavailable"}, true);
    stream_.expires_never();
    return start_websocket_session(ctx_, std::move(stream_), std::move(req));
  }
  route(req);
}

void http_session::route(request_type& req) {
  const std::string_view target = req.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const auto method = req.method();
  auto only = [&](http::verb v) {
    if (method == v) return true;
    ctx_->metrics->count_request(std::string(path), 405);
    send_error({405, "method not allowed", "invalid_request_error"});
    return false;
  };
  if (path == "/health") {
    if (!only(http::verb::get)) return;
    ctx_->metrics->count_request("/health", 200);
    return send_simple(http::status::ok, R"({"status":"ok"})");
  }
  if (path == "/ready") {
    if (!only(http::verb::get)) return;
    const bool ready = ctx_->service.ready() && !ctx_->draining.load();
    ctx_->metrics->count_request("/ready", ready ? 200 : 503);
    return send_simple(
        ready ? http::status::ok : http::status::service_unavailable,
        ready ? R"({"status":"ready"})"
              : (ctx_->draining.load() ? R"({"status":"draining"})" : R"({"status":"loading"})"));
  }
  if (path == "/metrics") {
    if (!only(http::verb::get)) return;
    ctx_->metrics->count_request("/metrics", 200);
    return send_simple(http::status::ok, ctx_->metrics->serialize(), "text/plain; version=0.0.4");
  }
  if (auto asset = dashboard_asset_for(path)) {
    // The page and its scripts hold no data (the feed does, behind the API key).
    if (!only(http::verb::get)) return;
    ctx_->metrics->count_request("/dashboard", 200);
    return send_simple(http::status::ok, std::string(asset->body), asset->content_type);
  }
  const bool telemetry =
      path == "/dashboard/feed" || path == "/admin/alerts" || path == "/admin/telemetry";
  const bool known = telemetry || path == "/v1/models" || path == "/v1/chat/completions" ||
                     path == "/v1/completions" || path == "/admin/cluster" ||
                     path == "/admin/fault" || path == "/admin/cluster/rebalance" ||
                     path == "/admin/models" || path.rfind("/admin/models/", 0) == 0 ||
                     path == "/admin/keys" || path.rfind("/admin/keys/", 0) == 0 ||
                     path == "/admin/usage";
  if (!known) {
    ctx_->metrics->count_request("other", 404);
    return send_error(
        {404, "unknown route " + std::string(path), "invalid_request_error", {}, "unknown_url"});
  }
  // The admin routes (and the dashboard's data) take the admin keys when there are any.
  const bool admin = path.rfind("/admin/", 0) == 0 || path == "/dashboard/feed";
  const auto auth = admin ? ctx_->authorize_admin(req[http::field::authorization])
                    : ctx_->authorized(req[http::field::authorization])
                        ? server_context::admin_auth::ok
                        : server_context::admin_auth::unauthorized;
  if (auth == server_context::admin_auth::unauthorized) {
    ctx_->metrics->count_request(std::string(path), 401);
    return send_error({401,
                       "missing or invalid API key (send 'Authorization: Bearer KEY')",
                       "authentication_error",
                       {},
                       "invalid_api_key"});
  }
  if (auth == server_context::admin_auth::forbidden) {
    ctx_->metrics->count_request(std::string(path), 403);
    return send_error({403,
                       "this route needs an admin key (server.admin_keys); a user key was sent",
                       "permission_error",
                       {},
                       "admin_key_required"});
  }
  if (telemetry) {
    if (!only(http::verb::get)) return;
    if (!ctx_->telemetry) {
      ctx_->metrics->count_request(std::string(path), 503);
      return send_error({503, "telemetry is not running", "service_unavailable"});
    }
    ctx_->metrics->count_request(std::string(path), 200);
    if (path == "/dashboard/feed") return start_feed_session(ctx_, std::move(stream_), version_);
    if (path == "/admin/alerts") {
      return send_simple(
          http::status::ok,
          alerts_json(ctx_->telemetry->alerts(),
                      ctx_->alerts ? ctx_->alerts->stats() : std::vector<webhook_stats>{}));
    }
    auto latest = ctx_->telemetry->latest();
    if (!latest) latest = ctx_->telemetry->step();
    return send_simple(http::status::ok, frame_json(*latest));
  }
  if (path == "/v1/models") {
    if (!only(http::verb::get)) return;
    ctx_->metrics->count_request("/v1/models", 200);
    return send_simple(http::status::ok, models_json(ctx_->service.models(), 0));
  }
  if (path == "/admin/models" || path.rfind("/admin/models/", 0) == 0)
    return handle_models_admin(req, path);
  if (path == "/admin/keys" || path.rfind("/admin/keys/", 0) == 0 || path == "/admin/usage")
    return handle_keys_admin(req, path);
  if (path == "/admin/cluster") {
    if (!only(http::verb::get)) return;
    ctx_->metrics->count_request("/admin/cluster", 200);
    return send_simple(http::status::ok,
                       cluster_json(ctx_->service.cluster(), ctx_->service.topology()));
  }
  if (!only(http::verb::post)) return;
  if (path == "/admin/fault") return handle_fault(req);
  if (path == "/admin/cluster/rebalance") return handle_rebalance(target);
  handle_generation(req, path == "/v1/chat/completions");
}

void http_session::handle_rebalance(std::string_view target) {
  // Gated like /admin/fault: moving experts is an operator's (or a drill's) act.
  if (!ctx_->service.fault_injection_enabled()) {
    ctx_->metrics->count_request("/admin/cluster/rebalance", 404);
    return send_error({404,
                       "admin actions are off (set replicas.fault_injection)",
                       "invalid_request_error",
                       {},
                       "unknown_url"});
  }
  const size_t q = target.find("replica=");
  int replica = -1;
  if (q != std::string_view::npos) {
    const auto digits = target.substr(q + 8, target.find('&', q) - (q + 8));
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), replica);
    if (ec != std::errc() || end != digits.data() + digits.size()) replica = -1;
  }
  if (replica < 0) {
    ctx_->metrics->count_request("/admin/cluster/rebalance", 400);
    return send_error({400, "give ?replica=N (a replica id from /admin/cluster)",
                       "invalid_request_error", "replica"});
  }
  try {
    const uint64_t version = ctx_->service.rebalance(replica);
    ctx_->metrics->count_request("/admin/cluster/rebalance", 200);
    send_simple(http::status::ok, R"({"status":"applied","replica":)" + std::to_string(replica) +
                                      R"(,"placement_version":)" + std::to_string(version) + "}");
  } catch (const std::out_of_range& e) {
    ctx_->metrics->count_request("/admin/cluster/rebalance", 404);
    send_error({404, e.what(), "invalid_request_error", "replica"});
  } catch (const std::exception& e) {
    ctx_->metrics->count_request("/admin/cluster/rebalance", 409);
    send_error({409, e.what(), "invalid_request_error", "replica"});
  }
}

void http_session::handle_models_admin(request_type& req, std::string_view path) {
  const std::string route = "/admin/models";
  const auto fail = [&](int status, const std::string& message, const char* param = "") {
    ctx_->metrics->count_request(route, status);
    send_error({status, message, "invalid_request_error", param});
  };
  try {
    if (path == "/admin/models") {
      if (req.method() == http::verb::get) {
        ctx_->metrics->count_request(route, 200);
        return send_simple(http::status::ok, models_json(ctx_->service.models(), 0));
      }
      if (req.method() != http::verb::post) return fail(405, "method not allowed");
      const auto status = ctx_->service.load_model(decode_model_spec(req.body()));
      ctx_->metrics->count_request(route, 202);
      return send_simple(http::status::accepted, model_status_json(status));
    }
    if (req.method() != http::verb::delete_) return fail(405, "method not allowed");
    const std::string name(path.substr(std::string_view("/admin/models/").size()));
    const auto status = ctx_->service.unload_model(name);
    ctx_->metrics->count_request(route, 202);
    send_simple(http::status::accepted, model_status_json(status));
  } catch (const serve::model_conflict& e) {
    fail(409, e.what(), "name");
  } catch (const std::out_of_range& e) {
    fail(404, e.what());
  } catch (const std::invalid_argument& e) {
    fail(400, e.what());
  } catch (const std::logic_error& e) {
    fail(409, e.what());
  } catch (const std::exception& e) {
    fail(500, e.what());
  }
}

void http_session::handle_keys_admin(request_type& req, std::string_view path) {
  const std::string route = path == "/admin/usage" ? "/admin/usage" : "/admin/keys";
  auto answer = [&](http::status st, std::string body) {
    ctx_->metrics->count_request(route, static_cast<int>(st));
    send_simple(st, std::move(body));
  };
  auto fail = [&](int status, const std::string& msg, const char* type) {
    ctx_->metrics->count_request(route, status);
    send_error({status, msg, type});
  };
  auto& t = *ctx_->tenants;
  const auto method = req.method();
  try {
    if (path == "/admin/usage") {
      if (method != http::verb::get)
        return fail(405, "method not allowed", "invalid_request_error");
      return answer(http::status::ok, usage_json(t.usage(), t.describe(), t.degraded()));
    }
    if (path == "/admin/keys") {
      if (method == http::verb::get) return answer(http::status::ok, keys_json(t.keys()));
      if (method != http::verb::post)
        return fail(405, "method not allowed", "invalid_request_error");
      const auto [name, limits] = decode_key_request(req.body());
      const auto [record, secret] = t.create_key(name, limits);
      spdlog::info("API key {} (\"{}\") created", record.id, record.name);
      return answer(http::status::created, key_json(record, secret));
    }
    if (method != http::verb::delete_)
      return fail(405, "method not allowed", "invalid_request_error");
    const std::string id(path.substr(std::string_view("/admin/keys/").size()));
    if (!t.delete_key(id)) return fail(404, "no managed API key " + id, "invalid_request_error");
    spdlog::info("API key {} deleted", id);
    return answer(http::status::ok, R"({"deleted":true})");
  } catch (const std::invalid_argument& e) {
    return fail(400, e.what(), "invalid_request_error");
  } catch (const store::store_error& e) {
    // Nothing was acknowledged: the client can try again once the store answers.
    return fail(503, std::string("the state store cannot take it now: ") + e.what(),
                "service_unavailable");
  }
}

void http_session::handle_fault(request_type& req) {
  if (!ctx_->service.fault_injection_enabled()) {
    ctx_->metrics->count_request("/admin/fault", 404);
    return send_error({404,
                       "fault injection is off (set replicas.fault_injection)",
                       "invalid_request_error",
                       {},
                       "unknown_url"});
  }
  std::string reply = R"({"status":"injected"})";
  try {
    const fault_request f = decode_fault_request(req.body());
    if (f.what == fault_request::target::replica) {
      if (!ctx_->service.inject_fault(f.replica, f.kind)) {
        ctx_->metrics->count_request("/admin/fault", 409);
        return send_error({409, "replica " + std::to_string(f.replica) + " is not up",
                           "invalid_request_error", "replica"});
      }
    } else if (f.what == fault_request::target::node) {
      if (!ctx_->service.kill_node(f.node)) {
        ctx_->metrics->count_request("/admin/fault", 409);
        return send_error({409, "no node " + std::to_string(f.node) + " is in the cluster",
                           "invalid_request_error", "node"});
      }
      reply = R"({"status":"killed","node":)" + std::to_string(f.node) + "}";
    } else {
      const bool session = f.what == fault_request::target::session;
      const auto killed =
          session ? ctx_->service.kill_session(f.id) : ctx_->service.kill_tool(f.id);
      if (!killed) {
        ctx_->metrics->count_request("/admin/fault", 409);
        return send_error(
            {409,
             session ? "no such request session is running" : "no such tool invocation is running",
             "invalid_request_error", session ? "request" : "call"});
      }
      reply = killed_json(*killed);
    }
  } catch (const std::out_of_range& e) {
    ctx_->metrics->count_request("/admin/fault", 400);
    return send_error({400, e.what(), "invalid_request_error", "replica"});
  } catch (const std::invalid_argument& e) {
    ctx_->metrics->count_request("/admin/fault", 400);
    return send_error({400, e.what(), "invalid_request_error"});
  }
  ctx_->metrics->count_request("/admin/fault", 200);
  send_simple(http::status::ok, reply);
}

void http_session::handle_generation(request_type& req, bool chat) {
  route_ = chat ? "/v1/chat/completions" : "/v1/completions";
  t0_ = clock_type::now();
  if (ctx_->draining.load()) {
    ctx_->metrics->count_request(route_, 503);
    return send_error({503, "the server is shutting down", "service_unavailable"});
  }
  const auto key = ctx_->key_of(req[http::field::authorization]);
  const std::string key_id = key ? key->id : std::string();
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  // A resume (net/stream_resume.h): the stream's journaled request runs again.
  std::optional<resume_plan> resumed;
  if (const auto last_id = req["Last-Event-ID"]; !last_id.empty()) {
    const auto parsed = parse_event_id(last_id);
    if (!parsed) {
      ctx_->metrics->count_request(route_, 400);
      return send_error({400, "Last-Event-ID must be \"<request id>:<event number>\"",
                         "invalid_request_error", "Last-Event-ID"});
    }
    auto plan = plan_resume(*ctx_, parsed->first, parsed->second, key_id);
    if (auto* err = std::get_if<api_error>(&plan)) {
      ctx_->metrics->count_request(route_, err->status);
      return send_error(*err);
    }
    resumed = std::move(std::get<resume_plan>(plan));
    chat = resumed->chat;
    route_ = chat ? "/v1/chat/completions" : "/v1/completions";
  }
  std::variant<decoded_request, api_error> decoded;
  if (resumed) {
    decoded = std::move(resumed->d);
  } else {
    decoded = chat ? decode_chat_request(req.body(), ctx_->proto)
                   : decode_completion_request(req.body(), ctx_->proto);
  }
  if (auto* err = std::get_if<api_error>(&decoded)) {
    ctx_->metrics->count_request(route_, err->status);
    return send_error(*err);
  }
  auto& d = std::get<decoded_request>(decoded);
  // The key's limits (an admin key, or a server without keys, has none).
  if (key) {
    if (const auto no = ctx_->tenants->admit(*key, d.req.model)) {
      ctx_->metrics->count_request(route_, no->status);
      return send_error(server_context::refusal_error(*no));
    }
    key_id_ = key->id;
    d.req.max_context = key->limits.max_context;
  }
  const int64_t created = resumed ? resumed->created : now_s;
  if (resumed) {
    tap_.emplace(ctx_->journal, d.req.id, resumed->after, std::move(resumed->journaled));
  } else {
    d.req.id = ctx_->new_request_id(chat ? "chatcmpl-" : "cmpl-");
    if (d.stream) tap_ = begin_journal(*ctx_, d, chat, req.body(), created, key_id);
  }
  request_id_ = d.req.id;
  model_ = d.req.model;
  d.req.sampling.max_tokens = d.max_tokens.value_or(0);  // 0: the rest of the context
  streaming_ = d.stream;
  writer_.emplace(d, d.req.model, created);
  generating_ = true;
  started_ = done_ = false;
  stream_.expires_never();  // generations may be long; the disconnect watch covers dead clients
  auto s = std::make_shared<sink>(weak_from_this(), stream_.get_executor());
  handle_ = ctx_->service.submit(std::move(d.req), s);
  watch_disconnect();
}

void http_session::on_event(serve::client_event e) {
  using kind = serve::client_event::kind;
  if (!generating_ || done_ || closed_) return;
  if (!started_) {
    if (e.type == kind::error) {
      done_ = true;
      ctx_->metrics->count_request(route_, e.status);
      api_error err{e.status, e.text, e.error_type, e.error_param, e.error_code};
      ctx_->log_request({route_,
                         request_id_,
                         model_,
                         -1,
                         e.status,
                         e.text,
                         std::chrono::duration<double, std::milli>(clock_type::now() - t0_).count(),
                         0,
                         {},
                         0});
      finish_request();
      return send_error(err);
    }
    if (e.type != kind::started) return;
    started_ = true;
    if (streaming_) {
      http::response<http::empty_body> res{http::status::ok, version_};
      res.set(http::field::server, "conclave");
      res.set(http::field::content_type, "text/event-stream");
      res.set(http::field::cache_control, "no-cache");
      res.keep_alive(keep_alive_);
      res.chunked(true);
      std::ostringstream head;
      head << res.base();
      enqueue(head.str());
    }
  }
  const bool last = e.type == kind::finished || e.type == kind::error;
  if (streaming_) {
    std::string data;
    bool diverged = false;
    for (const auto& payload : writer_->stream_event(e)) {
      if (e.type == kind::error || !tap_) {  // errors are not numbered: a resume runs again
        data += "data: " + payload + "\n\n";
        continue;
      }
      const auto step = tap_->next(payload);
      if (step.diverged) {
        diverged = true;
        break;
      }
      if (step.send) data += fmt::format("id: {}:{}\ndata: {}\n\n", request_id_, step.n, payload);
    }
    if (diverged) {
      // The run is not reproducible here (a different engine or batch): say so rather
      // than send the client a stream that does not continue what it has.
      if (!data.empty()) enqueue(fmt::format("{:x}\r\n{}\r\n", data.size(), data));
      if (handle_) handle_->cancel();
      const api_error err = diverged_error(request_id_);
      return on_event(
          serve::client_event::error(err.status, err.message, err.type, err.param, err.code));
    }
    if (last) {
      if (tap_) tap_->end(e.type == kind::finished);
      data += "data: [DONE]\n\n";
    }
    if (!data.empty()) enqueue(fmt::format("{:x}\r\n{}\r\n", data.size(), data));
    if (last) enqueue("0\r\n\r\n");
  } else {
    writer_->accumulate(e);
  }
  if (!last) return;
  done_ = true;
  const int status = e.type == kind::error ? e.status : 200;
  ctx_->metrics->count_request(route_, status);
  ctx_->log_request({route_, request_id_, model_, e.replica, status,
                     e.type == kind::error ? e.text : std::string(),
                     std::chrono::duration<double, std::milli>(clock_type::now() - t0_).count(),
                     writer_->engine_ms(), writer_->tokens(), writer_->num_tool_calls()});
  finish_request();
  if (!streaming_) {
    if (e.type == kind::error)
      return send_error({e.status, e.text, e.error_type, e.error_param, e.error_code});
    send_simple(http::status::ok, writer_->final_json());
  } else if (!keep_alive_) {
    close_after_write_ = true;
  } else {
    read_after_write_ = true;
  }
}

void http_session::client_gone() {
  // The client closed the connection mid-request: stop the generation (its KV blocks are
  // freed within a step) and record it as 499 (client closed request), as nginx does.
  if (generating_) {
    if (handle_) handle_->cancel();
    ctx_->metrics->count_request(route_, 499);
    ctx_->log_request({route_, request_id_, model_, -1, 499, "the client closed the connection",
                       std::chrono::duration<double, std::milli>(clock_type::now() - t0_).count(),
                       0, writer_ ? writer_->tokens() : serve::usage{}, 0});
  }
  finish_request();
  close();
}

void http_session::finish_request() {
  generating_ = false;
  handle_.reset();
  if (tap_) {  // a stream cut short stays resumable (a finished one ended already)
    tap_->end(false);
    tap_.reset();
  }
  if (!key_id_.empty()) {  // the key's slot back, its tokens counted
    const auto used = writer_ ? writer_->tokens() : serve::usage{};
    ctx_->tenants->finish(key_id_, model_, used.prompt_tokens, used.completion_tokens);
    key_id_.clear();
  }
}

void http_session::watch_disconnect() {
  if (watching_) return;
  watching_ = true;
  stream_.socket().async_wait(
      tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
        self->watching_ = false;
        if (self->closed_) return;
        if (!ec && self->generating_) {
          // Readable while generating: either the peer closed, or it pipelined another request.
          char probe;
          beast::error_code pec;
          const size_t n = self->stream_.socket().receive(asio::buffer(&probe, 1),
                                                          tcp::socket::message_peek, pec);
          if (pec || n == 0) return self->client_gone();
          return;  // data for the next request: leave it; stop watching for this one
        }
        if (ec && ec != asio::error::operation_aborted && self->generating_) self->client_gone();
      });
}

void http_session::send_simple(http::status status, std::string body, const char* content_type,
                               bool close, const char* retry_after) {
  http::response<http::string_body> res{status, version_};
  res.set(http::field::server, "conclave");
  res.set(http::field::content_type, content_type);
  if (retry_after != nullptr) res.set(http::field::retry_after, retry_after);
  res.keep_alive(keep_alive_ && !close);
  res.body() = std::move(body);
  res.prepare_payload();
  std::ostringstream ss;
  ss << res;
  if (!res.keep_alive()) {
    close_after_write_ = true;
  } else {
    read_after_write_ = true;
  }
  enqueue(ss.str());
}

void http_session::send_error(const api_error& err, bool close) {
  const std::string retry = std::to_string(std::max(1, err.retry_after_s));
  send_simple(static_cast<http::status>(err.status), err.json(), "application/json", close,
              err.status == 429 ? retry.c_str() : nullptr);
}

void http_session::enqueue(std::string data) {
  if (closed_) return;
  out_.push_back(std::move(data));
  if (!writing_) do_write();
}

void http_session::do_write() {
  writing_ = true;
  asio::async_write(
      stream_, asio::buffer(out_.front()),
      [self = shared_from_this()](beast::error_code ec, size_t) {
        self->writing_ = false;
        if (ec) {
          if (self->generating_) return self->client_gone();
          return self->close();
        }
        self->out_.pop_front();
        if (!self->out_.empty()) return self->do_write();
        if (self->close_after_write_)
          return self->linger_on_close_ ? self->linger() : self->close();
        if (self->read_after_write_ && !self->generating_) {
          self->read_after_write_ = false;
          if (self->watching_)
            self->stream_.socket().cancel();  // ends the watch; the read below takes over
          self->do_read();
        }
      });
}

void http_session::linger() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close();
  linger_until_ = clock_type::now() + kLingerTime;
  linger_buf_ = std::make_unique<std::array<char, 16384>>();
  linger_read();
}

void http_session::linger_read() {
  const auto left = linger_until_ - clock_type::now();
  if (left <= clock_type::duration::zero() || lingered_ > kLingerBytes) return close();
  stream_.expires_after(std::min<clock_type::duration>(left, kLingerTimeout));
  stream_.async_read_some(asio::buffer(*linger_buf_),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec) return self->close();  // the client finished (EOF) or idled
                            self->lingered_ += n;
                            self->linger_read();
                          });
}

void http_session::close() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.socket().close(ec);
}

}  // namespace

void start_http_session(std::shared_ptr<server_context> ctx, tcp::socket socket) {
  std::make_shared<http_session>(std::move(ctx), std::move(socket))->run();
}

}  // namespace conclave::net
