// The door's accept loop and per-connection handshake (one coroutine each, on one
// thread, so the counters and limits need no strand). With TLS the token handshake and
// the splice run on the TLS stream, otherwise on the socket: one template for both.
#include "net/cluster_door.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
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
#include <vector>

#include "net/awaitable.h"
#include "net/cluster_handshake.h"
#include "net/tcp_splice.h"

namespace conclave::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

std::string peer_of(const tcp::socket& s) {
  error_code ec;
  const auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown peer";
  return ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                              : ep.address().to_string() + ":" + std::to_string(ep.port());
}

/// Why a hello seen so far is refused, or nullptr.
const char* hello_refusal(std::span<const uint8_t> bytes) {
  switch (handshake::check_hello(bytes)) {
    case handshake::hello_check::bad_magic:
      return refusal::bad_magic;
    case handshake::hello_check::bad_version:
      return refusal::bad_version;
    case handshake::hello_check::bad_role:
      return refusal::bad_role;
    default:
      return nullptr;
  }
}

/// One connection in handshake; shared with its deadline's handler.
struct connection {
  explicit connection(tcp::socket s) : socket(std::move(s)), deadline(socket.get_executor()) {}
  tcp::socket socket;  ///< moved into `tls` when the port speaks TLS
  std::optional<tls_stream> tls;
  asio::steady_timer deadline;
  bool timed_out = false;
  tcp::socket::lowest_layer_type& lowest() { return tls ? tls->lowest_layer() : socket; }
  void close() {
    error_code ignored;
    lowest().close(ignored);
  }
};

/// Keeps the count of connections in handshake until released (spliced) or destroyed.
struct handshake_slot {
  std::atomic<size_t>& n;
  bool released = false;
  void release() {
    if (!released) --n;
    released = true;
  }
  ~handshake_slot() { release(); }
};

}  // namespace

struct cluster_door::impl {
  explicit impl(cluster_door_options opts) : o(std::move(opts)) {}

  // The counters outlive `io`: destroying it destroys the coroutines still in it, whose
  // guards touch in_handshake. The acceptor goes before `io`.
  cluster_door_options o;
  std::unique_ptr<asio::ssl::context> tls;  ///< set when o.tls is enabled; outlives `io`
  mutable std::mutex mu;
  std::map<std::string, uint64_t> refused;
  std::atomic<uint64_t> joined{0};
  std::atomic<size_t> in_handshake{0};
  std::atomic<uint16_t> bound_port{0};
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;

  void refuse(const std::string& peer, const char* reason, const std::string& detail = {}) {
    if (detail.empty())
      spdlog::warn("cluster: refused {}: {}", peer, reason);
    else
      spdlog::warn("cluster: refused {}: {} ({})", peer, reason, detail);
    {
      std::lock_guard lock(mu);
      ++refused[reason];
    }
    if (o.on_refused) o.on_refused(reason);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, s] = co_await acceptor.async_accept(tuple_awaitable);
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {  // out of descriptors and the like: breathe, then go on
        spdlog::warn("cluster: accept: {}", ec.message());
        asio::steady_timer pause(io, std::chrono::milliseconds(100));
        co_await pause.async_wait(tuple_awaitable);
        continue;
      }
      if (in_handshake.load() >= o.max_in_handshake) {
        refuse(peer_of(s), refusal::busy);
        error_code ignored;
        s.close(ignored);
        continue;
      }
      ++in_handshake;
      asio::co_spawn(io, handshake(std::make_shared<connection>(std::move(s))), asio::detached);
    }
  }

  /// Reads until `need` bytes of the current frame (starting at `start`) are in `buf`.
  /// Returns a refusal reason, or nullptr. `check` sees the frame's bytes so far.
  template <class Stream, class Check>
  asio::awaitable<const char*> read_frame(connection& c, Stream& s, std::vector<uint8_t>& buf,
                                          size_t& used, size_t start, size_t need, Check check) {
    while (used - start < need) {
      if (used == buf.size()) co_return refusal::oversize;
      auto [ec, n] = co_await s.async_read_some(asio::buffer(buf.data() + used, buf.size() - used),
                                                tuple_awaitable);
      used += n;
      const size_t got = used - start;
      if (const char* bad =
              check(std::span<const uint8_t>(buf.data() + start, std::min(got, need))))
        co_return bad;
      if (got > need) co_return refusal::oversize;
      if (ec) {
        if (c.timed_out) co_return refusal::timeout;
        if (ec == asio::error::eof || ec == asio::error::connection_reset ||
            ec == asio::ssl::error::stream_truncated)
          co_return refusal::short_read;
        co_return refusal::io_error;
      }
    }
    co_return nullptr;
  }

  /// Sends a refusal frame (best effort, still under the deadline) and closes.
  template <class Stream>
  asio::awaitable<void> send_refusal(connection& c, Stream& s, const char* reason) {
    const auto frame = handshake::refused_frame(reason);
    co_await asio::async_write(s, asio::buffer(frame), tuple_awaitable);
    error_code ignored;
    c.lowest().shutdown(tcp::socket::shutdown_both, ignored);
    c.close();
  }

  asio::awaitable<void> handshake(std::shared_ptr<connection> c) {
    const std::string peer = peer_of(c->socket);
    handshake_slot slot{in_handshake};
    c->deadline.expires_after(o.handshake_timeout);
    c->deadline.async_wait([weak = std::weak_ptr<connection>(c)](error_code ec) {
      auto conn = weak.lock();
      if (ec || !conn) return;
      conn->timed_out = true;
      conn->close();
    });
    if (!tls) {
      co_await admit(c, c->socket, peer, slot);
      co_return;
    }
    // TLS first: not a byte of the token handshake travels in the clear.
    c->tls.emplace(std::move(c->socket), *tls);
    auto [ec] = co_await c->tls->async_handshake(asio::ssl::stream_base::server, tuple_awaitable);
    if (ec) {
      if (c->timed_out)
        refuse(peer, refusal::timeout);
      else
        refuse(peer, refusal::tls, ec.message());
      c->close();
      co_return;
    }
    co_await admit(c, *c->tls, peer, slot);
  }

  /// The token handshake on `s` (the socket, or the TLS stream over it), then the splice.
  template <class Stream>
  asio::awaitable<void> admit(std::shared_ptr<connection> c, Stream& s, const std::string& peer,
                              handshake_slot& slot) {
    const auto fail = [&](const char* reason) {
      refuse(peer, reason);
      c->close();
    };

    std::vector<uint8_t> buf(std::max<size_t>(o.max_handshake_bytes, 1));
    size_t used = 0;
    // A wrong magic, version or role is refused from the byte that shows it.
    const char* bad =
        co_await read_frame(*c, s, buf, used, 0, handshake::hello_bytes, hello_refusal);
    if (bad == refusal::bad_version || bad == refusal::bad_role) {  // our protocol: say why
      refuse(peer, bad);
      co_await send_refusal(*c, s, bad);
      co_return;
    }
    if (bad != nullptr) co_return fail(bad);
    handshake::nonce nonce_n{};
    handshake::check_hello(std::span<const uint8_t>(buf.data(), handshake::hello_bytes), &nonce_n);

    const handshake::nonce nonce_c = handshake::random_nonce();
    const auto challenge = handshake::challenge_frame(nonce_c);
    if (auto [ec, n] = co_await asio::async_write(s, asio::buffer(challenge), tuple_awaitable);
        ec) {
      (void)n;
      co_return fail(c->timed_out ? refusal::timeout : refusal::io_error);
    }
    const size_t proof_at = used;
    bad = co_await read_frame(*c, s, buf, used, proof_at, handshake::proof_bytes,
                              [](std::span<const uint8_t>) -> const char* { return nullptr; });
    if (bad != nullptr) co_return fail(bad);
    handshake::mac proof{};
    std::copy_n(buf.begin() + static_cast<ptrdiff_t>(proof_at), proof.size(), proof.begin());
    if (!handshake::same_mac(proof, handshake::node_proof(o.token, nonce_n, nonce_c))) {
      refuse(peer, refusal::bad_token);
      co_await send_refusal(*c, s, refusal::bad_token);
      co_return;
    }

    // Proven: only now is the coordinator's side touched.
    tcp::socket inner(io);
    auto [cec] = co_await inner.async_connect(
        tcp::endpoint(asio::ip::address_v4::loopback(), o.inner_port), tuple_awaitable);
    if (cec || c->timed_out) {
      if (cec)
        spdlog::error("cluster: the inner endpoint 127.0.0.1:{}: {}", o.inner_port, cec.message());
      refuse(peer, c->timed_out ? refusal::timeout : refusal::not_ready);
      if (!c->timed_out) co_await send_refusal(*c, s, refusal::not_ready);
      co_return;
    }
    c->deadline.cancel();
    const auto ok = handshake::ok_frame(handshake::door_proof(o.token, nonce_c, nonce_n));
    if (auto [ec, n] = co_await asio::async_write(s, asio::buffer(ok), tuple_awaitable); ec) {
      (void)n;
      co_return fail(refusal::io_error);
    }
    slot.release();
    ++joined;
    spdlog::info("cluster: {} proved the cluster token{}; spliced to 127.0.0.1:{}", peer,
                 tls ? " over TLS" : "", o.inner_port);
    splice(std::move(s), std::move(inner));
  }
};

cluster_door::cluster_door(cluster_door_options o) : impl_(std::make_unique<impl>(std::move(o))) {}

cluster_door::~cluster_door() {
  stop();
}

void cluster_door::start() {
  auto& d = *impl_;
  if (d.o.tls.enabled() && !d.tls) d.tls = make_tls_context(d.o.tls, tls_role::server);
  error_code ec;
  const auto address = asio::ip::make_address(d.o.host, ec);
  if (ec) throw std::runtime_error("invalid cluster address \"" + d.o.host + "\": " + ec.message());
  const tcp::endpoint ep{address, d.o.port};
  d.acceptor.open(ep.protocol(), ec);
  if (!ec) d.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) d.acceptor.bind(ep, ec);
  if (!ec) d.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen for nodes on " + d.o.host + ":" +
                             std::to_string(d.o.port) + ": " + ec.message());
  }
  d.bound_port = d.acceptor.local_endpoint().port();
  asio::co_spawn(d.io, d.accept_loop(), asio::detached);
  d.thread = std::thread([this] { impl_->io.run(); });
}

uint16_t cluster_door::port() const {
  return impl_->bound_port.load();
}

void cluster_door::stop() {
  auto& d = *impl_;
  if (!d.thread.joinable()) return;
  asio::post(d.io, [&d] {
    error_code ignored;
    d.acceptor.close(ignored);
    d.io.stop();
  });
  d.thread.join();
}

std::map<std::string, uint64_t> cluster_door::refused_counts() const {
  std::lock_guard lock(impl_->mu);
  return impl_->refused;
}

uint64_t cluster_door::joined() const {
  return impl_->joined.load();
}

size_t cluster_door::in_handshake() const {
  return impl_->in_handshake.load();
}

}  // namespace conclave::net
