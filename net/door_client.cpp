// The node's handshake, a one-shot join and the local relay.
#include "net/door_client.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "net/cluster_handshake.h"
#include "net/tcp_splice.h"

namespace conclave::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using kind = prove_result::kind;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

prove_result broken(const error_code& ec, const char* when) {
  return {kind::error, std::string("connection ") +
                           (ec == asio::error::eof ? "closed" : ec.message()) + " " + when};
}

/// Reads the door's answer frame: `tag` and `body` bytes, or a refusal.
asio::awaitable<std::optional<prove_result>> read_answer(tcp::socket& s, uint8_t want,
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

/// Dials host:port, proves; `timed_out` tells a deadline's close from other errors.
asio::awaitable<prove_result> dial_and_prove(tcp::socket& s, const std::string& host, uint16_t port,
                                             const std::string& token, const bool& timed_out) {
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
  auto r = co_await prove(s, token);
  if (timed_out && r.status == kind::error) r.reason = "the handshake timed out";
  co_return r;
}

}  // namespace

asio::awaitable<prove_result> prove(tcp::socket& s, std::string_view token) {
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

prove_result join_door(const std::string& host, uint16_t port, const std::string& token,
                       std::chrono::milliseconds timeout) {
  asio::io_context io{1};
  tcp::socket s(io);
  bool timed_out = false;
  asio::steady_timer deadline(io, timeout);
  deadline.async_wait([&](error_code ec) {
    if (ec) return;
    timed_out = true;
    error_code ignored;
    s.close(ignored);
  });
  prove_result result;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        result = co_await dial_and_prove(s, host, port, token, timed_out);
        deadline.cancel();
      },
      asio::detached);
  io.run();
  return result;
}

struct door_relay::impl {
  impl(std::string h, uint16_t p, std::string t, std::chrono::milliseconds to)
      : host(std::move(h)), port(p), token(std::move(t)), timeout(to) {}

  std::string host;
  uint16_t port;
  std::string token;
  std::chrono::milliseconds timeout;
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
    struct remote_state {
      explicit remote_state(asio::io_context& io) : socket(io), deadline(io) {}
      tcp::socket socket;
      asio::steady_timer deadline;
      bool timed_out = false;
    };
    auto st = std::make_shared<remote_state>(io);
    st->deadline.expires_after(timeout);
    st->deadline.async_wait([weak = std::weak_ptr<remote_state>(st)](error_code ec) {
      auto s = weak.lock();
      if (ec || !s) return;
      s->timed_out = true;
      error_code ignored;
      s->socket.close(ignored);
    });
    const prove_result r = co_await dial_and_prove(st->socket, host, port, token, st->timed_out);
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
    splice(std::move(local), std::move(st->socket));
  }
};

door_relay::door_relay(std::string host, uint16_t port, std::string token,
                       std::chrono::milliseconds timeout)
    : impl_(std::make_unique<impl>(std::move(host), port, std::move(token), timeout)) {}

door_relay::~door_relay() {
  stop();
}

void door_relay::start() {
  auto& r = *impl_;
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
