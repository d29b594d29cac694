// The WebSocket side of `conclave bench serve`: min(clients, 64) connections to /v1/ws,
// each keeping its share of the streams in flight as multiplexed request frames and
// starting the next request as soon as one is done.
#include <spdlog/fmt/fmt.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <deque>
#include <map>
#include <optional>

#include "bench/clock.h"
#include "bench/serve_bench.h"

namespace conclave::bench::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;

// Without any frame (or pong) for this long the connection counts as dead.
constexpr auto idle_timeout = std::chrono::seconds(120);
std::string ws_error_kind(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return "timeout";
  if (ec == websocket::error::closed) return "closed by the server";
  if (ec == websocket::error::upgrade_declined) return "WebSocket upgrade declined";
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe) {
    return "disconnected";
  }
  return ec.message();
}

std::string string_field(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

struct ws_run {
  asio::io_context& io;
  const serve_bench_options& opts;
  const std::string& model;
  const server_url& url;
  tcp::resolver::results_type endpoints;
  load_plan plan;
  serve_bench_result result;
  clock_type::time_point last_end;
};

class ws_connection : public std::enable_shared_from_this<ws_connection> {
 public:
  ws_connection(ws_run& run, int32_t streams) : run_(run), streams_(streams), timer_(run.io) {}

  void connect() {
    ws_.emplace(run_.io);
    buffer_.clear();
    out_.clear();
    writing_ = closing_ = false;
    auto& tcp_layer = beast::get_lowest_layer(*ws_);
    tcp_layer.expires_after(std::chrono::seconds(30));
    tcp_layer.async_connect(
        run_.endpoints, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return self->connect_failed(ec);
          self->handshake();
        });
  }

 private:
  struct in_flight {
    clock_type::time_point t_send;
    stream_timing timing;
  };

  void handshake() {
    auto& tcp_layer = beast::get_lowest_layer(*ws_);
    beast::error_code ec;
    tcp_layer.socket().set_option(tcp::no_delay(true), ec);
    tcp_layer.expires_never();  // the websocket timeouts below take over
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(30);
    t.idle_timeout = idle_timeout;
    t.keep_alive_pings = true;
    ws_->set_option(t);
    const std::string key = run_.opts.api_key;
    ws_->set_option(websocket::stream_base::decorator([key](websocket::request_type& req) {
      if (!key.empty()) req.set(http::field::authorization, "Bearer " + key);
    }));
    ws_->async_handshake(run_.url.host_header(), run_.url.prefix + "/v1/ws",
                         [self = shared_from_this()](beast::error_code e) {
                           if (e) return self->connect_failed(e);
                           self->do_read();
                           for (int32_t i = 0; i < self->streams_; ++i) self->launch();
                         });
  }

  /// A connect or handshake failed: count it against a request slot, then retry.
  void connect_failed(const beast::error_code& ec) {
    if (!run_.plan.next()) return;
    run_.result.add_error("connect: " + ws_error_kind(ec));
    timer_.expires_after(connect_retry_delay);
    timer_.async_wait([self = shared_from_this()](beast::error_code) { self->connect(); });
  }

  void launch() {
    if (closing_) return;
    if (!run_.plan.next()) {
      if (running_.empty()) close();
      return;
    }
    const int64_t index = run_.plan.issued() - 1;
    const std::string id = std::to_string(index);
    running_[id].t_send = clock_type::now();
    send(fmt::format(R"({{"type":"request","id":"{}","endpoint":"completions","body":{}}})", id,
                     bench_request_body(run_.opts, run_.model, index, false)));
  }

  void send(std::string frame) {
    out_.push_back(std::move(frame));
    if (!writing_) do_write();
  }

  void do_write() {
    writing_ = true;
    ws_->text(true);
    ws_->async_write(asio::buffer(out_.front()),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->writing_ = false;
                       if (ec) return;  // the read side reports the broken connection
                       self->out_.pop_front();
                       if (!self->out_.empty()) return self->do_write();
                       if (self->close_after_write_) self->close();
                     });
  }

  void close() {
    if (writing_) {
      close_after_write_ = true;
      return;
    }
    close_after_write_ = false;
    closing_ = true;
    ws_->async_close(websocket::close_code::normal,
                     [self = shared_from_this()](beast::error_code) {});
  }

  void do_read() {
    ws_->async_read(
        buffer_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(const beast::error_code& ec) {
    if (ec) {
      if (closing_) return;
      // Every stream of this connection is lost; reconnect for the requests still to come.
      const std::string kind = "connection lost: " + ws_error_kind(ec);
      for (size_t i = 0; i < running_.size(); ++i) run_.result.add_error(kind);
      running_.clear();
      run_.last_end = std::max(run_.last_end, clock_type::now());
      timer_.expires_after(connect_retry_delay);
      timer_.async_wait([self = shared_from_this()](beast::error_code) { self->connect(); });
      return;
    }
    const auto now = clock_type::now();
    boost::system::error_code pec;
    const json::value v = json::parse(beast::buffers_to_string(buffer_.data()), pec);
    buffer_.consume(buffer_.size());
    if (pec || !v.is_object()) {
      run_.result.add_error("malformed frame");
    } else {
      on_frame(v.get_object(), now);
    }
    do_read();
  }

  void on_frame(const json::object& f, clock_type::time_point now) {
    const std::string type = string_field(f, "type");
    const std::string id = string_field(f, "id");
    auto it = running_.find(id);
    if (type == "error" && it == running_.end()) {
      run_.result.add_error("error frame for no request");
      return;
    }
    if (it == running_.end()) return;  // unknown frame types and ids are ignored
    in_flight& r = it->second;
    const double t = seconds(now - r.t_send);
    if (type == "chunk") {
      const json::value* data = f.if_contains("data");
      if (data != nullptr && inspect_chunk(*data).content) r.timing.content_times.push_back(t);
      return;
    }
    if (type == "done") {
      const std::string reason = string_field(f, "finish_reason");
      if (const json::value* u = f.if_contains("usage")) {
        const chunk_info info = inspect_chunk(json::object{{"usage", *u}});
        r.timing.prompt_tokens = info.prompt_tokens;
        r.timing.completion_tokens = info.completion_tokens;
      }
      if (const json::value* timing = f.if_contains("timing"); timing && timing->is_object()) {
        if (const json::value* ms = timing->get_object().if_contains("engine_ms");
            ms && ms->is_number())
          r.timing.engine_s = ms->to_number<double>() / 1e3;
      }
      if (reason == "length" || reason == "stop") {
        r.timing.end = t;
        run_.result.add_stream(r.timing);
      } else {
        run_.result.add_error("finish_reason " + reason);
      }
    } else if (type == "error") {
      run_.result.add_error("error frame: " + error_label(json::serialize(f)));
    } else {
      return;
    }
    running_.erase(it);
    run_.last_end = std::max(run_.last_end, now);
    launch();
  }

  ws_run& run_;
  int32_t streams_;
  asio::steady_timer timer_;
  std::optional<websocket::stream<beast::tcp_stream>> ws_;
  beast::flat_buffer buffer_;
  std::deque<std::string> out_;
  bool writing_ = false;
  bool closing_ = false;
  bool close_after_write_ = false;
  std::map<std::string, in_flight> running_;
};

}  // namespace

serve_bench_result run_ws_load(const serve_bench_options& opts, const std::string& model,
                               const server_url& url) {
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot resolve {}: {}", url.host, ec.message()));
  const auto start = clock_type::now();
  ws_run run{io, opts, model, url, endpoints, load_plan(opts.requests, opts.duration_s, start),
             {}, start};
  const int32_t connections = ws_connections(opts.clients);
  for (int32_t c = 0; c < connections; ++c) {
    const int32_t streams = opts.clients / connections + (c < opts.clients % connections ? 1 : 0);
    std::make_shared<ws_connection>(run, streams)->connect();
  }
  io.run();
  run.result.wall_s = seconds(run.last_end - start);
  return run.result;
}

}  // namespace conclave::bench::detail
