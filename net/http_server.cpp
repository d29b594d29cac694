// Listener, I/O threads, signals and the SIGTERM drain.
#include "net/http_server.h"

#include <spdlog/spdlog.h>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "net/alert_webhooks.h"
#include "net/http_session.h"
#include "net/server_context.h"
#include "serve/nvml.h"
#include "serve/telemetry_hub.h"

namespace conclave::net {

struct http_server::impl {
  impl(const config::server_config& cfg, serve::service& service,
       std::shared_ptr<serve::server_metrics> metrics)
      : ctx(std::make_shared<server_context>(cfg, service, std::move(metrics))),
        io(cfg.io_threads),
        acceptor(io),
        signals(io) {}

  void accept() {
    acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        spdlog::warn("accept: {}", ec.message());
      } else {
        // Small writes (a token, a frame) must leave at once, not wait for Nagle + delayed ACK.
        beast::error_code nd;
        socket.set_option(tcp::no_delay(true), nd);
        start_http_session(ctx, std::move(socket));
      }
      accept();
    });
  }

  std::shared_ptr<server_context> ctx;
  asio::io_context io;
  tcp::acceptor acceptor;
  asio::signal_set signals;
  std::vector<std::thread> threads;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread drainer;

  // Usage goes to the state store in batches, every gateway.usage_flush_s; the stream
  // journal every gateway.journal_flush_s.
  std::mutex flush_mutex;
  std::condition_variable flush_wake;
  bool flush_stop = false;
  std::thread flusher;
  void flush_loop() {
    using steady = std::chrono::steady_clock;
    const auto span = [](double s) {
      return std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s));
    };
    const auto usage_every = span(ctx->cfg.gateway.usage_flush_s);
    const auto journal_every = span(ctx->cfg.gateway.journal_flush_s);
    const auto tick = ctx->journal ? std::min(usage_every, journal_every) : usage_every;
    auto usage_due = steady::now() + usage_every, journal_due = steady::now() + journal_every;
    std::unique_lock lock(flush_mutex);
    while (!flush_wake.wait_for(lock, tick, [this] { return flush_stop; })) {
      lock.unlock();
      const auto now = steady::now();
      if (now >= usage_due) {
        ctx->tenants->flush();
        usage_due = now + usage_every;
      }
      if (ctx->journal && now >= journal_due) {
        ctx->journal->flush();
        journal_due = now + journal_every;
      }
      lock.lock();
    }
  }
  void stop_flusher() {
    {
      std::lock_guard lock(flush_mutex);
      if (flush_stop) return;
      flush_stop = true;
    }
    flush_wake.notify_all();
    if (flusher.joinable() && flusher.get_id() != std::this_thread::get_id()) flusher.join();
    ctx->tenants->flush();  // the last batch
    if (ctx->journal) ctx->journal->flush();
  }
};

http_server::http_server(const config::server_config& cfg, serve::service& service,
                         std::shared_ptr<serve::server_metrics> metrics)
    : impl_(std::make_unique<impl>(cfg, service, std::move(metrics))) {}

http_server::~http_server() {
  stop();
  wait();
}

void http_server::start() {
  auto& cfg = impl_->ctx->cfg;
  beast::error_code ec;
  const auto address = asio::ip::make_address(cfg.host, ec);
  if (ec) throw std::runtime_error("invalid listen address \"" + cfg.host + "\": " + ec.message());
  const tcp::endpoint ep{address, cfg.port};
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + cfg.host + ":" + std::to_string(cfg.port) +
                             ": " + ec.message());
  // Telemetry: the dashboard's frames and the alert rules, sampled on their own thread.
  const auto& oc = cfg.observability;
  std::shared_ptr<serve::nvml_reader> nvml;
  if (oc.nvml) {
    nvml = std::make_shared<serve::nvml_reader>();
    if (!nvml->available()) nvml.reset();
  }
  auto& ctx = *impl_->ctx;
  ctx.alerts = std::make_shared<alert_webhooks>(
      oc, "http://" + cfg.host + ":" + std::to_string(port()) + "/dashboard");
  ctx.telemetry =
      std::make_shared<serve::telemetry_hub>(ctx.service, ctx.metrics, oc, nvml, ctx.alerts);
  ctx.telemetry->start();
  spdlog::info("API keys and usage: {}", ctx.tenants->describe());
  impl_->flusher = std::thread([this] { impl_->flush_loop(); });
  impl_->accept();
  impl_->work.emplace(impl_->io.get_executor());
  for (int i = 0; i < cfg.io_threads; ++i) impl_->threads.emplace_back([this] { impl_->io.run(); });
  spdlog::info("listening on http://{}:{}", cfg.host, port());
}

uint16_t http_server::port() const {
  beast::error_code ec;
  const auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void http_server::handle_signals() {
  impl_->signals.add(SIGINT);
  impl_->signals.add(SIGTERM);
  impl_->signals.async_wait([this](beast::error_code ec, int sig) {
    if (ec) return;
    spdlog::warn("signal {}: draining (up to {:.0f} s)", sig, impl_->ctx->cfg.drain_timeout_s);
    // Drain on a plain thread: it waits, and the I/O threads must keep serving meanwhile.
    impl_->drainer = std::thread([this] {
      drain_and_stop(
          std::chrono::milliseconds(static_cast<int64_t>(impl_->ctx->cfg.drain_timeout_s * 1000)));
    });
  });
}

void http_server::drain_and_stop(std::chrono::milliseconds timeout) {
  auto& ctx = *impl_->ctx;
  ctx.draining.store(true);
  ctx.service.begin_drain();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (ctx.service.active_requests() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (ctx.service.active_requests() > 0) {
    spdlog::warn("drain timeout: {} request(s) still running end with an error",
                 ctx.service.active_requests());
    // Each ends with an error event (503), which the still-running I/O threads write
    // before the connections close.
    ctx.service.end_requests("the server is shutting down");
    const auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (ctx.service.active_requests() > 0 && std::chrono::steady_clock::now() < grace)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  close_all_websockets(ctx);
  std::this_thread::sleep_for(
      std::chrono::milliseconds(100));  // let close frames and final chunks go out
  stop();
}

void http_server::stop() {
  auto& ctx = *impl_->ctx;
  if (ctx.telemetry) ctx.telemetry->stop();
  if (ctx.alerts) ctx.alerts->stop();
  impl_->stop_flusher();
  asio::post(impl_->io, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->signals.cancel(ec);
  });
  impl_->work.reset();
  impl_->io.stop();
}

void http_server::wait() {
  for (auto& t : impl_->threads) {
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  }
  if (impl_->drainer.joinable() && impl_->drainer.get_id() != std::this_thread::get_id())
    impl_->drainer.join();
  impl_->ctx->tenants->flush();  // what requests that ended during the stop added
  if (impl_->ctx->journal) impl_->ctx->journal->flush();
}

}  // namespace conclave::net
