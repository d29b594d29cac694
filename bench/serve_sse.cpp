// The SSE side of `conclave bench serve`: each client owns one keep-alive HTTP
// connection and sends streamed /v1/completions requests on it back to back, reading
// the chunked body as it arrives (Beast's chunk-body callback) to time every chunk.
#include <spdlog/fmt/fmt.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <functional>
#include <limits>
#include <optional>

#include "bench/clock.h"
#include "bench/serve_bench.h"

namespace conclave::bench::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

std::string sse_error_kind(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return "timeout";
  if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe) {
    return "disconnected";
  }
  return ec.message();
}

struct sse_run {
  asio::io_context& io;
  const serve_bench_options& opts;
  const std::string& model;
  const server_url& url;
  tcp::resolver::results_type endpoints;
  load_plan plan;
  serve_bench_result result;
  clock_type::time_point last_end;
  /// No byte for this long ends a request as "timeout" (a hung stream).
  std::chrono::milliseconds io_timeout() const {
    return std::chrono::milliseconds(static_cast<int64_t>(opts.stall_timeout_s * 1000));
  }
};

class sse_client : public std::enable_shared_from_this<sse_client> {
 public:
  explicit sse_client(sse_run& run) : run_(run), stream_(run.io), timer_(run.io) {
    on_chunk_ = [this](uint64_t, beast::string_view body, beast::error_code&) {
      on_body(body);
      return body.size();
    };
  }

  /// Starts the next request, if the plan has one left.
  void next() {
    if (!run_.plan.next()) return close();
    index_ = run_.plan.issued() - 1;
    if (!connected_) return connect();
    send();
  }

 private:
  void connect() {
    stream_.expires_after(run_.io_timeout());
    stream_.async_connect(run_.endpoints,
                          [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
                            if (ec) return self->fail("connect: " + sse_error_kind(ec), true);
                            self->connected_ = true;
                            self->stream_.socket().set_option(tcp::no_delay(true), ec);
                            self->send();
                          });
  }

  void send() {
    req_ = {};
    req_.method(http::verb::post);
    req_.target(run_.url.prefix + "/v1/completions");
    req_.version(11);
    req_.set(http::field::host, run_.url.host_header());
    req_.set(http::field::content_type, "application/json");
    req_.set(http::field::accept, "text/event-stream");
    if (!run_.opts.api_key.empty()) {
      req_.set(http::field::authorization, "Bearer " + run_.opts.api_key);
    }
    req_.keep_alive(true);
    req_.body() = bench_request_body(run_.opts, run_.model, index_, true);
    req_.prepare_payload();
    timing_ = {};
    pending_.clear();
    stream_error_.clear();
    got_done_ = false;
    t_send_ = clock_type::now();
    stream_.expires_after(run_.io_timeout());
    http::async_write(stream_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->fail(sse_error_kind(ec), false);
      self->read_header();
    });
  }

  void read_header() {
    parser_.emplace();
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    stream_.expires_after(run_.io_timeout());
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->fail(sse_error_kind(ec), false);
                              // Chunks of a 200 stream go to on_body as they arrive;
                              // error bodies are kept whole.
                              if (self->parser_->get().result_int() == 200) {
                                self->parser_->on_chunk_body(self->on_chunk_);
                              }
                              self->read_body();
                            });
  }

  void read_body() {
    if (parser_->is_done()) return on_message_done();
    stream_.expires_after(run_.io_timeout());
    http::async_read_some(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            if (ec) return self->fail(sse_error_kind(ec), false);
                            self->read_body();
                          });
  }

  void on_body(std::string_view data) {
    const double t = seconds(clock_type::now() - t_send_);
    pending_ += data;
    size_t end;
    while ((end = pending_.find("\n\n")) != std::string::npos) {
      size_t pos = 0;
      while (pos < end) {
        size_t eol = pending_.find('\n', pos);
        if (eol == std::string::npos || eol > end) eol = end;
        const std::string_view line(pending_.data() + pos, eol - pos);
        if (line.substr(0, 6) == "data: ") on_payload(line.substr(6), t);
        pos = eol + 1;
      }
      pending_.erase(0, end + 2);
    }
  }

  void on_payload(std::string_view payload, double t) {
    if (payload == "[DONE]") {
      got_done_ = true;
      return;
    }
    boost::system::error_code ec;
    const json::value v = json::parse(payload, ec);
    if (ec) {
      stream_error_ = "malformed chunk";
      return;
    }
    if (v.is_object() && v.get_object().contains("error")) {
      stream_error_ = "stream error: " + error_label(payload);
      return;
    }
    const chunk_info info = inspect_chunk(v);
    if (info.content) timing_.content_times.push_back(t);
    if (info.usage) {
      timing_.prompt_tokens = info.prompt_tokens;
      timing_.completion_tokens = info.completion_tokens;
    }
  }

  void on_message_done() {
    const auto now = clock_type::now();
    const int status = static_cast<int>(parser_->get().result_int());
    if (status == 200 && !parser_->chunked()) on_body(parser_->get().body() + "\n\n");
    if (status != 200) {
      run_.result.add_error(fmt::format("HTTP {}: {}", status, error_label(parser_->get().body())));
    } else if (!stream_error_.empty()) {
      run_.result.add_error(stream_error_);
    } else if (!got_done_) {
      run_.result.add_error("stream ended without [DONE]");
    } else {
      timing_.end = seconds(now - t_send_);
      run_.result.add_stream(timing_);
    }
    run_.last_end = std::max(run_.last_end, now);
    if (!parser_->get().keep_alive()) close();
    next();
  }

  /// Counts the running request as failed, drops the connection and moves on.
  void fail(const std::string& kind, bool connecting) {
    run_.result.add_error(kind);
    run_.last_end = std::max(run_.last_end, clock_type::now());
    close();
    if (!connecting) return next();
    timer_.expires_after(connect_retry_delay);
    timer_.async_wait([self = shared_from_this()](beast::error_code) { self->next(); });
  }

  void close() {
    connected_ = false;
    // Bytes left from the old connection must not be parsed as the next response.
    buffer_.consume(buffer_.size());
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  sse_run& run_;
  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::function<size_t(uint64_t, beast::string_view, beast::error_code&)> on_chunk_;
  bool connected_ = false;
  int64_t index_ = 0;
  clock_type::time_point t_send_;
  stream_timing timing_;
  std::string pending_;  ///< SSE text not yet ended by a blank line
  std::string stream_error_;
  bool got_done_ = false;
};

}  // namespace

serve_bench_result run_sse_load(const serve_bench_options& opts, const std::string& model,
                                const server_url& url) {
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot resolve {}: {}", url.host, ec.message()));
  const auto start = clock_type::now();
  sse_run run{io, opts, model, url, endpoints, load_plan(opts.requests, opts.duration_s, start),
              {}, start};
  for (int32_t i = 0; i < opts.clients; ++i) std::make_shared<sse_client>(run)->next();
  io.run();
  run.result.wall_s = seconds(run.last_end - start);
  return run.result;
}

}  // namespace conclave::bench::detail
