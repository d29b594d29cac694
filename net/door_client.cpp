// The node's handshake, a one-shot join and the local relay; the handshake runs on the
// socket or on the TLS stream over it (one template for both).
#include "net/door_client.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "net/awaitable.h"
#include "net/cluster_handshake.h"
#include "net/tcp_splice.h"

namespace conclave::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using kind = prove_result::kind;

prove_result broken(const error_code& ec, const char* when) {
  const bool closed = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
  return {kind::error,
          std::string("connection ") + (closed ? "closed" : ec.message()) + " " + when};
}

/// Reads the door's answer frame: `tag` and `body` bytes, or a refusal.
template <class Stream>
asio::awaitable<std::optional<prove_result>> read_answer(Stream& s, uint8_t want,
                                                         std::span<uint8_t> body,
                                                         const char* when) {
  uint8_t tag = 0;
  if (auto [ec, n] = co_await asio::async_read(s, asio::buffer(&tag, 1), tuple_awaitable); ec) {
    (void)n;
    co_return broken(ec, when);
  }
  if (tag == handshake::tag_refused) {
    uint8_t len = 0;
    if (auto [ec, n] = co_await asio::async_read(s, asio::buffer(&len, 1), tuple_awaitable); ec) {
      (void)n;
      co_return broken(ec, "in the door's refusal");
    }
    if (len == 0 || len > handshake::max_reason_bytes)
      co_return prove_result{kind::error, "a malformed refusal from the door"};
    std::string reason(len, '\0');
    if (auto [ec, n] = co_await asio::async_read(s, asio::buffer(reason), tuple_awaitable); ec) {
      (void)n;
      co_return broken(ec, "in the door's refusal");
    }
    for (char& ch : reason) {
      if (ch < 0x20 || ch > 0x7e) ch = '?';  // it goes to a terminal
    }
    co_return prove_result{kind::refused, reason};
  }
  if (tag != want)
    co_return prove_result{kind::error, "not a conclave cluster door (unexpected reply)"};
  if (auto [ec, n] =
          co_await asio::async_read(s, asio::buffer(body.data(), body.size()), tuple_awaitable);
      ec) {
    (void)n;
    co_return broken(ec, when);
  }
  co_return std::nullopt;
}

template <class Stream>
asio::awaitable<prove_result> prove_on(Stream& s, std::string_view token);

/// The connection to the door, shared with its deadline's handler.
struct door_end {
  explicit door_end(const asio::any_io_executor& ex) : socket(ex), deadline(ex) {}
  tcp::socket socket;  ///< moved into `tls` when the door speaks TLS
  std::optional<tls_stream> tls;
  asio::steady_timer deadline;
  bool timed_out = false;
  tcp::socket::lowest_layer_type& lowest() { return tls ? tls->lowest_layer() : socket; }
  /// Closes the connection when `timeout` passes first.
  void arm(std::chrono::milliseconds timeout, std::weak_ptr<door_end> self) {
    deadline.expires_after(timeout);
    deadline.async_wait([self = std::move(self)](error_code ec) {
      auto d = self.lock();
      if (ec || !d) return;
      d->timed_out = true;
      error_code ignored;
      d->lowest().close(ignored);
    });
  }
};

/// Dials host:port, completes TLS when `tls` is given, proves; `d.timed_out` tells a
/// deadline's close from other errors.
asio::awaitable<prove_result> dial_and_prove(door_end& d, const std::string& host, uint16_t port,
                                             const std::string& token, asio::ssl::context* tls) {
  tcp::socket& s = d.socket;
  const bool& timed_out = d.timed_out;
  tcp::resolver resolver(s.get_executor());
  auto [rec, endpoints] =
      co_await resolver.async_resolve(host, std::to_string(port), tuple_awaitable);
  if (rec)
    co_return prove_result{kind::unreachable, "cannot resolve " + host + ": " + rec.message()};
  auto [cec, ep] = co_await asio::async_connect(s, endpoints, tuple_awaitable);
  (void)ep;
  if (cec) {
    co_return prove_result{kind::unreachable,
                           timed_out ? std::string("connect timed out") : cec.message()};
  }
  error_code ignored;
  s.set_option(tcp::no_delay(true), ignored);
  prove_result r;
  if (tls == nullptr) {
    r = co_await prove_on(s, token);
  } else {
    d.tls.emplace(std::move(d.socket), *tls);
    auto [hec] = co_await d.tls->async_handshake(asio::ssl::stream_base::client, tuple_awaitable);
    if (hec) {
      r = {kind::error, "TLS handshake with the door failed: " + hec.message()};
    } else {
      r = co_await prove_on(*d.tls, token);
    }
  }
  if (timed_out && r.status == kind::error) r.reason = "the handshake timed out";
  co_return r;
}

template <class Stream>
asio::awaitable<prove_result> prove_on(Stream& s, std::string_view token) {
  const handshake::nonce nonce_n = handshake::random_nonce();
  const auto hello = handshake::hello_frame(nonce_n);
  if (auto [ec, n] = co_await asio::async_write(s, asio::buffer(hello), tuple_awaitable); ec) {
    (void)n;
    co_return broken(ec, "sending the hello");
  }
  handshake::nonce nonce_c{};
  if (auto r = co_await read_answer(s, handshake::tag_challenge, nonce_c, "before the challenge"))
    co_return *r;
  const auto proof = handshake::node_proof(token, nonce_n, nonce_c);
  if (auto [ec, n] = co_await asio::async_write(s, asio::buffer(proof), tuple_awaitable); ec) {
    (void)n;
    co_return broken(ec, "sending the proof");
  }
  handshake::mac door{};
  if (auto r = co_await read_answer(s, handshake::tag_ok, door, "before the door's answer"))
    co_return *r;
  if (!handshake::same_mac(door, handshake::door_proof(token, nonce_c, nonce_n))) {
    co_return prove_result{kind::untrusted,
                           "the door did not prove the cluster token (not our coordinator, "
                           "or another token)"};
  }
  co_return prove_result{kind::ok, {}};
}

}  // namespace

asio::awaitable<prove_result> prove(tcp::socket& s, std::string_view token) {
  return prove_on(s, token);
}

prove_result join_door(const std::string& host, uint16_t port, const std::string& token,
                       std::chrono::milliseconds timeout, const tls_files& tls) {
  const auto ctx = tls.enabled() ? make_tls_context(tls, tls_role::client) : nullptr;
  asio::io_context io{1};
  auto d = std::make_shared<door_end>(io.get_executor());
  d->arm(timeout, d);
  prove_result result;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        result = co_await dial_and_prove(*d, host, port, token, ctx.get());
        d->deadline.cancel();
      },
      asio::detached);
  io.run();
  return result;
}

struct door_relay::impl {
  impl(std::string h, uint16_t p, std::string t, std::chrono::milliseconds to, tls_files f)
      : host(std::move(h)), port(p), token(std::move(t)), timeout(to), files(std::move(f)) {}

  std::string host;
  uint16_t port;
  std::string token;
  std::chrono::milliseconds timeout;
  tls_files files;
  std::unique_ptr<asio::ssl::context> tls;  ///< set when `files` is enabled; outlives `io`
  std::atomic<uint64_t> spliced{0};
  std::atomic<uint16_t> bound_port{0};
  mutable std::mutex mu;
  std::optional<prove_result> last_failure;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, local] = co_await acceptor.async_accept(tuple_awaitable);
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {
        spdlog::warn("cluster relay: accept: {}", ec.message());
        continue;
      }
      asio::co_spawn(io, relay(std::move(local)), asio::detached);
    }
  }

  asio::awaitable<void> relay(tcp::socket local) {
    auto st = std::make_shared<door_end>(io.get_executor());
    st->arm(timeout, st);
    const prove_result r = co_await dial_and_prove(*st, host, port, token, tls.get());
    st->deadline.cancel();
    if (r.status != kind::ok) {
      spdlog::warn("cluster relay: {}:{}: {}", host, port, r.reason);
      {
        std::lock_guard lock(mu);
        last_failure = r;
      }
      error_code ignored;
      local.close(ignored);
      co_return;
    }
    ++spliced;
    if (st->tls)
      splice(std::move(*st->tls), std::move(local));
    else
      splice(std::move(local), std::move(st->socket));
  }
};

door_relay::door_relay(std::string host, uint16_t port, std::string token,
                       std::chrono::milliseconds timeout, tls_files tls)
    : impl_(std::make_unique<impl>(std::move(host), port, std::move(token), timeout,
                                   std::move(tls))) {}

door_relay::~door_relay() {
  stop();
}

void door_relay::start() {
  auto& r = *impl_;
  if (r.files.enabled() && !r.tls) r.tls = make_tls_context(r.files, tls_role::client);
  error_code ec;
  const tcp::endpoint ep{asio::ip::address_v4::loopback(), 0};
  r.acceptor.open(ep.protocol(), ec);
  if (!ec) r.acceptor.bind(ep, ec);
  if (!ec) r.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cluster relay: cannot listen on 127.0.0.1: " + ec.message());
  r.bound_port = r.acceptor.local_endpoint().port();
  asio::co_spawn(r.io, r.accept_loop(), asio::detached);
  r.thread = std::thread([this] { impl_->io.run(); });
}

uint16_t door_relay::port() const {
  return impl_->bound_port.load();
}

void door_relay::stop() {
  auto& r = *impl_;
  if (!r.thread.joinable()) return;
  asio::post(r.io, [&r] {
    error_code ignored;
    r.acceptor.close(ignored);
    r.io.stop();
  });
  r.thread.join();
}

uint64_t door_relay::spliced() const {
  return impl_->spliced.load();
}

std::optional<prove_result> door_relay::last_failure() const {
  std::lock_guard lock(impl_->mu);
  return impl_->last_failure;
}

}  // namespace conclave::net
