// The dashboard's SSE feed (see the header).
#include "net/dashboard_feed.h"

#include <spdlog/fmt/fmt.h>

#include <array>
#include <deque>
#include <sstream>

#include "net/telemetry_json.h"
#include "serve/telemetry_hub.h"

namespace conclave::net {
namespace {

/// Frames waiting to be written beyond this are dropped (a reader that keeps up gets
/// every one; a stalled one gets the newest when it resumes).
constexpr size_t max_queued = 8;

class feed_session : public std::enable_shared_from_this<feed_session> {
 public:
  feed_session(std::shared_ptr<server_context> ctx, beast::tcp_stream stream)
      : ctx_(std::move(ctx)), stream_(std::move(stream)) {}

  void start(unsigned version) {
    stream_.expires_never();
    http::response<http::empty_body> res{http::status::ok, version};
    res.set(http::field::server, "conclave");
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    res.set("X-Accel-Buffering", "no");  // nginx: pass events through at once
    res.keep_alive(false);
    res.chunked(true);
    std::ostringstream head;
    head << res.base();
    enqueue(head.str(), true);
    auto& hub = *ctx_->telemetry;
    send_event("history", history_json(hub.history()), true);
    std::weak_ptr<feed_session> weak = weak_from_this();
    auto ex = stream_.get_executor();
    subscription_ = hub.subscribe([weak, ex](const serve::telemetry_hub::frame_ptr& f) {
      asio::post(ex, [weak, f] {
        if (auto s = weak.lock()) s->send_event("frame", frame_json(*f), false);
      });
    });
    watch();
  }

  ~feed_session() {
    if (subscription_ != 0) ctx_->telemetry->unsubscribe(subscription_);
  }

 private:
  void send_event(const char* name, const std::string& data, bool always) {
    const std::string event = fmt::format("event: {}\ndata: {}\n\n", name, data);
    enqueue(fmt::format("{:x}\r\n{}\r\n", event.size(), event), always);
  }

  void enqueue(std::string data, bool always) {
    if (closed_) return;
    if (!always && out_.size() >= max_queued) return;
    out_.push_back(std::move(data));
    if (!writing_) write();
  }

  void write() {
    writing_ = true;
    asio::async_write(stream_, asio::buffer(out_.front()),
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        self->writing_ = false;
                        if (ec) return self->close();
                        self->out_.pop_front();
                        if (!self->out_.empty()) self->write();
                      });
  }

  /// The client sends nothing more: any read completing means it closed (or broke the
  /// protocol), so the feed ends.
  void watch() {
    stream_.socket().async_read_some(
        asio::buffer(scratch_),
        [self = shared_from_this()](beast::error_code, size_t) { self->close(); });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    if (subscription_ != 0) {
      ctx_->telemetry->unsubscribe(subscription_);
      subscription_ = 0;
    }
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  std::shared_ptr<server_context> ctx_;
  beast::tcp_stream stream_;
  std::deque<std::string> out_;
  bool writing_ = false, closed_ = false;
  uint64_t subscription_ = 0;
  std::array<char, 256> scratch_{};
};

}  // namespace

void start_feed_session(std::shared_ptr<server_context> ctx, beast::tcp_stream stream,
                        unsigned http_version) {
  std::make_shared<feed_session>(std::move(ctx), std::move(stream))->start(http_version);
}

}  // namespace conclave::net
