// WebSocket sessions. Each request frame becomes one service request whose events are
// written back as frames tagged with the client's id. One write in flight; bytes queued
// beyond the configured buffer mean a reader that does not keep up: closed with 1008.
#include "net/websocket_session.h"
#include "net/stream_resume.h"

#include "model/pytext/json_exact.h"
#include "serve/live_stats.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>
#include <chrono>
#include <deque>
#include <map>

namespace conclave::net {
namespace json = boost::json;

class websocket_session : public std::enable_shared_from_this<websocket_session> {
 public:
  websocket_session(std::shared_ptr<server_context> ctx, beast::tcp_stream stream)
      : ctx_(std::move(ctx)), ws_(std::move(stream)) {}

  void run(http::request<http::string_body> upgrade) {
    authorization_ = std::string(upgrade[http::field::authorization]);
    ws_.read_message_max(ctx_->cfg.websocket.max_frame_bytes);
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(30);
    t.idle_timeout =
        std::chrono::milliseconds(static_cast<int64_t>(ctx_->cfg.websocket.ping_interval_s * 2000));
    t.keep_alive_pings = true;  // pings at half the idle timeout; no pong within it closes
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "conclave"); }));
    ws_.async_accept(upgrade, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->accepted_ = true;
      if (self->pending_close_) {
        // A drain asked to close while the handshake response was still being written.
        self->ws_.async_close(*self->pending_close_, [self](beast::error_code) {});
        return;
      }
      self->do_read();
    });
  }

  /// On the strand: an event of request `id`.
  void on_event(const std::string& id, serve::client_event e);
  /// On any thread: close with 1012 (service restart).
  void close_for_restart() {
    asio::post(ws_.get_executor(), [self = shared_from_this()] {
      self->close(websocket::close_code::service_restart);
    });
  }

 private:
  struct running {
    std::shared_ptr<serve::request_handle> handle;
    std::optional<response_writer> writer;
    bool started = false;
    std::chrono::steady_clock::time_point t0;
    std::string route, model;
    /// The API key it counts against: its slot is given back, and its tokens counted,
    /// when the request leaves requests_ (finished, failed, cancelled or the socket closed).
    std::shared_ptr<serve::tenants> tenants;
    std::string key_id;
    /// Chunk numbers and the journal (net/stream_resume.h).
    std::optional<stream_tap> tap;
    running() = default;
    running(const running&) = delete;
    running& operator=(const running&) = delete;
    ~running() {
      if (tap) tap->end(false);  // cut short: resumable (a finished stream ended already)
      if (!tenants || key_id.empty()) return;
      const auto used = writer ? writer->tokens() : serve::usage{};
      tenants->finish(key_id, model, used.prompt_tokens, used.completion_tokens);
    }
  };

  void do_read() {
    ws_.async_read(
        in_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }
  void on_read(beast::error_code ec);
  void handle_frame(std::string_view text);
  void send_frame(std::string frame);
  void do_write();
  void error_frame(const std::string& id, const api_error& err);
  void close(websocket::close_code code);
  void cancel_all();

  std::shared_ptr<server_context> ctx_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer in_;
  std::deque<std::string> out_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool closed_ = false;
  bool accepted_ = false;  ///< handshake done: before it, no other operation may start
  std::optional<websocket::close_code> pending_close_;  ///< to send once the write in flight ends
  std::map<std::string, running> requests_;
  std::string
      authorization_;  ///< the upgrade's Authorization header (the key, looked up per request)
};

namespace {

class ws_sink final : public serve::client_sink {
 public:
  ws_sink(std::weak_ptr<websocket_session> s, asio::any_io_executor ex, std::string id)
      : session_(std::move(s)), ex_(std::move(ex)), id_(std::move(id)) {}
  void push(serve::client_event e) override {
    asio::post(ex_, [s = session_, id = id_, e = std::move(e)]() mutable {
      if (auto p = s.lock()) p->on_event(id, std::move(e));
    });
  }

 private:
  std::weak_ptr<websocket_session> session_;
  asio::any_io_executor ex_;
  std::string id_;
};

}  // namespace

void websocket_session::on_read(beast::error_code ec) {
  if (ec) {
    cancel_all();
    closed_ = true;
    return;
  }
  const std::string text = beast::buffers_to_string(in_.data());
  in_.consume(in_.size());
  if (!ws_.got_text()) {
    error_frame("", {400, "binary frames are not part of the protocol; send JSON text frames",
                     "invalid_request_error"});
  } else {
    handle_frame(text);
  }
  if (!closed_) do_read();
}

void websocket_session::handle_frame(std::string_view text) {
  boost::system::error_code ec;
  json::value v = pytext::parse_json_exact(text, ec);
  if (ec || !v.is_object())
    return error_frame("", {400, "frames must be JSON objects", "invalid_request_error"});
  const json::object& o = v.get_object();
  const json::value* type = o.if_contains("type");
  const json::value* idv = o.if_contains("id");
  std::string id;
  if (idv != nullptr && idv->is_string()) id = std::string(idv->get_string());
  if (idv != nullptr && (idv->is_int64() || idv->is_uint64())) id = json::serialize(*idv);
  if (type == nullptr || !type->is_string())
    return error_frame(id, {400, "missing 'type'", "invalid_request_error", "type"});
  const std::string_view t = type->get_string();
  if (t == "cancel") {
    auto it = requests_.find(id);
    if (it != requests_.end()) {
      running& r = it->second;
      if (r.handle) r.handle->cancel();
      ctx_->log_request(
          {r.route, r.writer->id(), r.model, -1, 499, "cancelled by the client",
           std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r.t0)
               .count(),
           0, r.writer->tokens(), r.writer->num_tool_calls()});
      requests_.erase(it);
      send_frame(
          fmt::format(R"({{"type":"done","id":{},"finish_reason":"cancelled","usage":null}})",
                      json_string(id)));
    }
    return;
  }
  if (t != "request" && t != "resume") return;  // unknown frame types are ignored (extensions)
  if (id.empty())
    return error_frame("", {400, "a request frame needs an 'id'", "invalid_request_error", "id"});
  if (requests_.count(id))
    return error_frame(
        id, {400, "a request with this id is already running", "invalid_request_error", "id"});
  if (ctx_->draining.load())
    return error_frame(id, {503, "the server is shutting down", "service_unavailable"});
  // Looked up per request: a key deleted meanwhile stops working on open sockets too.
  const auto key = ctx_->key_of(authorization_);
  if (!key && !ctx_->authorized(authorization_))
    return error_frame(id, {401,
                            "the API key of this connection is no longer valid",
                            "authentication_error",
                            {},
                            "invalid_api_key"});
  const std::string key_id = key ? key->id : std::string();
  bool chat = true;
  int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  std::optional<resume_plan> resumed;
  std::variant<decoded_request, api_error> decoded;
  if (t == "resume") {
    // {"type":"resume","id":"<request id>","after":N}: the frames of the run again are
    // tagged with that id.
    const json::value* after = o.if_contains("after");
    if (after == nullptr || !(after->is_int64() || after->is_uint64()))
      return error_frame(id, {400, "'after' must be the number of the last chunk received",
                              "invalid_request_error", "after"});
    auto plan = plan_resume(*ctx_, id, after->to_number<int64_t>(), key_id);
    if (auto* err = std::get_if<api_error>(&plan)) return error_frame(id, *err);
    resumed = std::move(std::get<resume_plan>(plan));
    chat = resumed->chat;
    created = resumed->created;
    decoded = std::move(resumed->d);
  } else {
    const json::value* endpoint = o.if_contains("endpoint");
    const json::value* body = o.if_contains("body");
    chat = endpoint && endpoint->is_string() && endpoint->get_string() == "chat.completions";
    const bool completion =
        endpoint && endpoint->is_string() && endpoint->get_string() == "completions";
    if (!chat && !completion) {
      return error_frame(id, {400, "'endpoint' must be \"chat.completions\" or \"completions\"",
                              "invalid_request_error", "endpoint"});
    }
    if (body == nullptr || !body->is_object())
      return error_frame(id, {400, "'body' must be an object", "invalid_request_error", "body"});
    // The frame is parsed once; its body is decoded in place.
    decoded = chat ? decode_chat_request(body->get_object(), ctx_->proto)
                   : decode_completion_request(body->get_object(), ctx_->proto);
    if (auto* d = std::get_if<decoded_request>(&decoded)) {
      d->req.id = ctx_->new_request_id(chat ? "chatcmpl-" : "cmpl-");
      d->stream = true;
    }
  }
  if (auto* err = std::get_if<api_error>(&decoded)) return error_frame(id, *err);
  auto& d = std::get<decoded_request>(decoded);
  if (key) {  // the key's limits, per request
    if (const auto no = ctx_->tenants->admit(*key, d.req.model))
      return error_frame(id, server_context::refusal_error(*no));
  }
  auto& r = requests_[id];
  if (resumed) {
    r.tap.emplace(ctx_->journal, d.req.id, resumed->after, std::move(resumed->journaled));
  } else {
    r.tap = begin_journal(*ctx_, d, chat, json::serialize(*o.if_contains("body")), created, key_id);
  }
  d.req.sampling.max_tokens = d.max_tokens.value_or(0);
  if (key) {
    r.tenants = ctx_->tenants;
    r.key_id = key->id;
    d.req.max_context = key->limits.max_context;
  }
  r.t0 = std::chrono::steady_clock::now();
  r.route = chat ? "ws:chat.completions" : "ws:completions";
  r.model = d.req.model;
  r.writer.emplace(d, d.req.model, created);
  auto sink = std::make_shared<ws_sink>(weak_from_this(), ws_.get_executor(), id);
  r.handle = ctx_->service.submit(std::move(d.req), sink);
}

void websocket_session::on_event(const std::string& id, serve::client_event e) {
  using kind = serve::client_event::kind;
  auto it = requests_.find(id);
  if (it == requests_.end() || closed_) return;
  running& r = it->second;
  const auto log = [&](int status, std::string error) {
    ctx_->metrics->live().count_request(status);
    ctx_->log_request(
        {r.route, r.writer->id(), r.model, e.replica, status, std::move(error),
         std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r.t0).count(),
         r.writer->engine_ms(), r.writer->tokens(), r.writer->num_tool_calls()});
  };
  if (e.type == kind::error) {  // not numbered: a resume runs the request again
    log(e.status, e.text);
    error_frame(id, {e.status, e.text, e.error_type, e.error_param, e.error_code});
    requests_.erase(it);
    return;
  }
  // Numbered chunks; a resumed run skips those the client has and checks the journaled ones.
  // Usage-only chunks ("choices":[]) are numbered too but not sent: the done frame has it.
  for (const auto& payload : r.writer->stream_event(e)) {
    const auto step = r.tap->next(payload);
    if (step.diverged) {
      if (r.handle) r.handle->cancel();
      const api_error err = diverged_error(r.writer->id());
      log(500, err.message);
      error_frame(id, err);
      requests_.erase(it);
      return;
    }
    if (!step.send) continue;
    if (e.type == kind::finished && payload.find("\"choices\":[]") != std::string::npos) continue;
    send_frame(fmt::format(R"({{"type":"chunk","id":{},"n":{},"data":{}}})", json_string(id),
                           step.n, payload));
  }
  if (e.type == kind::finished) {
    r.tap->end(true);
    const auto& u = r.writer->tokens();
    const double server_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r.t0).count();
    log(200, {});
    send_frame(fmt::format(
        R"({{"type":"done","id":{},"finish_reason":{},"usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}},"timing":{{"server_ms":{:.3f},"engine_ms":{:.3f}}}}})",
        json_string(id), json_string(e.finish_reason), u.prompt_tokens, u.completion_tokens,
        u.prompt_tokens + u.completion_tokens, server_ms, r.writer->engine_ms()));
    requests_.erase(it);
  }
}

void websocket_session::error_frame(const std::string& id, const api_error& err) {
  send_frame(fmt::format(R"({{"type":"error","id":{},{}}})", id.empty() ? "null" : json_string(id),
                         err.json().substr(1, err.json().size() - 2)));
}

void websocket_session::send_frame(std::string frame) {
  if (closed_) return;
  queued_bytes_ += frame.size();
  if (queued_bytes_ > ctx_->cfg.websocket.max_buffered_bytes) {
    spdlog::warn("websocket: client is {} bytes behind; closing (1008)", queued_bytes_);
    return close(websocket::close_code::policy_error);
  }
  out_.push_back(std::move(frame));
  if (!writing_) do_write();
}

void websocket_session::do_write() {
  writing_ = true;
  ws_.text(true);
  ws_.async_write(
      asio::buffer(out_.front()), [self = shared_from_this()](beast::error_code ec, size_t) {
        self->writing_ = false;
        if (ec) {
          self->cancel_all();
          self->closed_ = true;
          return;
        }
        if (self->pending_close_) {
          return self->ws_.async_close(*self->pending_close_, [self](beast::error_code) {});
        }
        self->queued_bytes_ -= self->out_.front().size();
        self->out_.pop_front();
        if (!self->out_.empty() && !self->closed_) self->do_write();
      });
}

void websocket_session::cancel_all() {
  for (auto& [id, r] : requests_) {
    if (r.handle) r.handle->cancel();
  }
  requests_.clear();
}

void websocket_session::close(websocket::close_code code) {
  if (closed_) return;
  closed_ = true;
  cancel_all();
  if (writing_ || !accepted_) {
    // One write at a time on the socket: the handshake response or a frame is in flight, so
    // the close frame goes out when it ends.
    pending_close_ = code;
    return;
  }
  out_.clear();
  ws_.async_close(code, [self = shared_from_this()](beast::error_code) {});
}

void start_websocket_session(std::shared_ptr<server_context> ctx, beast::tcp_stream stream,
                             http::request<http::string_body> upgrade) {
  auto s = std::make_shared<websocket_session>(ctx, std::move(stream));
  {
    std::lock_guard lock(ctx->ws_mutex);
    std::erase_if(ctx->ws_sessions, [](const auto& w) { return w.expired(); });
    ctx->ws_sessions.push_back(s);
  }
  s->run(std::move(upgrade));
}

void close_all_websockets(server_context& ctx) {
  std::lock_guard lock(ctx.ws_mutex);
  for (auto& w : ctx.ws_sessions) {
    if (auto s = w.lock()) s->close_for_restart();
  }
}

}  // namespace conclave::net
