// The cluster door (docs/cluster.md §4) over loopback: a node with the token is spliced
// through to the inner endpoint; everything else is refused, logged, counted and closed,
// and a good node still gets through afterwards. The handshake's pieces and the token
// file's rules without sockets. With TLS (a throwaway CA made with the openssl CLI) only a
// peer with a certificate from the cluster CA gets as far as the token handshake. Every
// wait is bounded (a few seconds at most).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "net/cluster_door.h"
#include "net/cluster_handshake.h"
#include "net/cluster_token.h"
#include "net/door_client.h"
#include "serve/server_metrics.h"

using namespace conclave;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

const std::string token = "0123456789abcdef0123456789abcdef-the-test-cluster-token";

/// The inner endpoint: echoes every byte, passes a half-close on.
class echo_server {
 public:
  echo_server() {
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::address_v4::loopback(), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, accept(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~echo_server() {
    asio::post(io_, [this] {
      acceptor_.close();
      io_.stop();
    });
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  asio::awaitable<void> accept() {
    for (;;) {
      auto [ec, s] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      asio::co_spawn(io_, echo(std::move(s)), asio::detached);
    }
  }
  static asio::awaitable<void> echo(tcp::socket s) {
    std::array<char, 8192> buf;
    for (;;) {
      auto [ec, n] =
          co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
      if (n > 0) {
        auto [wec, m] = co_await asio::async_write(s, asio::buffer(buf.data(), n),
                                                   asio::as_tuple(asio::use_awaitable));
        (void)m;
        if (wec) co_return;
      }
      if (ec) {
        boost::system::error_code ignored;
        s.shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
    }
  }

  asio::io_context io_{1};
  tcp::acceptor acceptor_{io_};
  uint16_t port_ = 0;
  std::thread thread_;
};

net::cluster_door_options door_options(uint16_t inner, std::chrono::milliseconds timeout = 5s) {
  net::cluster_door_options o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.inner_port = inner;
  o.token = token;
  o.handshake_timeout = timeout;
  return o;
}

/// A blocking loopback connection with bounded waits (plain sockets, so that a test can
/// send anything at all).
class raw_conn {
 public:
  explicit raw_conn(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~raw_conn() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  /// Sends what it can (the door may close first); returns bytes sent.
  size_t send(const void* p, size_t n) {
    size_t sent = 0;
    while (sent < n) {
      const ssize_t k = ::send(fd_, static_cast<const char*>(p) + sent, n - sent, MSG_NOSIGNAL);
      if (k <= 0) break;
      sent += static_cast<size_t>(k);
    }
    return sent;
  }
  size_t send(const std::string& s) { return send(s.data(), s.size()); }
  void shutdown_send() { ::shutdown(fd_, SHUT_WR); }
  /// Reads until the peer closes (true) or `within` passes (false); `*got` collects bytes.
  bool read_until_closed(std::chrono::milliseconds within, std::string* got = nullptr) {
    const auto until = std::chrono::steady_clock::now() + within;
    char buf[65536];
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      const ssize_t k = ::recv(fd_, buf, sizeof buf, 0);
      if (k <= 0) return true;  // EOF or reset
      if (got) got->append(buf, static_cast<size_t>(k));
    }
  }
  /// Reads exactly n bytes within `within`; false when fewer came.
  bool read_exact(std::string& out, size_t n, std::chrono::milliseconds within) {
    const auto until = std::chrono::steady_clock::now() + within;
    out.clear();
    char buf[65536];
    while (out.size() < n) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      const ssize_t k = ::recv(fd_, buf, std::min(sizeof buf, n - out.size()), 0);
      if (k <= 0) return false;
      out.append(buf, static_cast<size_t>(k));
    }
    return true;
  }

 private:
  int fd_ = -1;
};

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds within = 5s) {
  const auto until = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

uint64_t count_of(const net::cluster_door& d, const std::string& reason) {
  const auto m = d.refused_counts();
  const auto it = m.find(reason);
  return it == m.end() ? 0 : it->second;
}

std::string hello_bytes(uint16_t version = net::handshake::version,
                        uint8_t role = net::handshake::role_node) {
  const auto f = net::handshake::hello_frame(net::handshake::random_nonce(), version, role);
  return std::string(f.begin(), f.end());
}

/// A node with the right token gets through (the door still works).
void good_node_gets_through(const net::cluster_door& d, const net::tls_files& tls = {}) {
  const auto before = d.joined();
  const auto r = net::join_door("127.0.0.1", d.port(), token, 5s, tls);
  INFO(r.reason);
  CHECK(r.status == net::prove_result::kind::ok);
  CHECK(eventually([&] { return d.joined() == before + 1; }));
}

/// The door's log lines, captured (tests log at error by default).
struct log_capture {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  spdlog::level::level_enum level = spdlog::get_level();
  log_capture() {
    spdlog::default_logger()->sinks().push_back(sink);
    spdlog::set_level(spdlog::level::warn);
  }
  ~log_capture() {
    spdlog::set_level(level);
    spdlog::default_logger()->sinks().pop_back();
  }
  std::vector<std::string> lines() { return sink->last_formatted(); }
};

struct temp_dir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("conclave_door_test_" + std::to_string(::getpid()));
  temp_dir() { std::filesystem::create_directories(path); }
  ~temp_dir() { std::filesystem::remove_all(path); }
  std::filesystem::path write(const std::string& name, const std::string& text, mode_t mode) const {
    const auto p = path / name;
    std::ofstream(p, std::ios::binary) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
};

/// A throwaway CA (EC P-256 keys, made with the openssl CLI), a door and a node
/// certificate it signed, and a self-signed "rogue" CA with its own node certificate.
struct test_pki {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("conclave_door_tls_" + std::to_string(::getpid()));
  test_pki() {
    std::filesystem::create_directories(dir);
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for (const char* ca : {"ca", "rogue-ca"})
      run(std::string("req -x509") + key + " -keyout " + ca + ".key -out " + ca +
          ".pem -days 2 -subj /CN=" + ca);
    for (const auto& [name, ca] :
         {std::pair{"door", "ca"}, std::pair{"node", "ca"}, std::pair{"rogue", "rogue-ca"}}) {
      run(std::string("req") + key + " -keyout " + name + ".key -out " + name +
          ".csr -subj /CN=" + name);
      run(std::string("x509 -req -in ") + name + ".csr -CA " + ca + ".pem -CAkey " + ca +
          ".key -CAcreateserial -days 2 -out " + name + ".pem");
    }
  }
  ~test_pki() { std::filesystem::remove_all(dir); }
  void run(const std::string& args) const {
    const std::string cmd = "cd '" + dir.string() + "' && openssl " + args + " >/dev/null 2>&1";
    INFO(cmd);
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  /// `name`'s certificate and key, trusting `ca`.
  net::tls_files files(const std::string& name, const std::string& ca = "ca") const {
    return {(dir / (name + ".pem")).string(), (dir / (name + ".key")).string(),
            (dir / (ca + ".pem")).string()};
  }
};

}  // namespace

TEST_CASE("cluster handshake: frames, partial hellos and the two proofs", "[cluster]") {
  namespace hs = net::handshake;
  const auto n = hs::random_nonce();
  CHECK(n != hs::random_nonce());
  const auto hello = hs::hello_frame(n);
  REQUIRE(hello.size() == 43);
  CHECK(std::string(hello.begin(), hello.begin() + 8) == "CONCLAVE");
  CHECK(hello[8] == 0);
  CHECK(hello[9] == 1);  // version 1, big-endian
  CHECK(hello[10] == hs::role_node);
  hs::nonce got{};
  CHECK(hs::check_hello(hello, &got) == hs::hello_check::ok);
  CHECK(got == n);
  CHECK(hs::check_hello(std::span(hello.data(), 5)) == hs::hello_check::need_more);
  CHECK(hs::check_hello(std::span(hello.data(), 42)) == hs::hello_check::need_more);
  const std::string get = "GET / HTTP/1.1\r\n";
  CHECK(hs::check_hello(std::span(reinterpret_cast<const uint8_t*>(get.data()), 1)) ==
        hs::hello_check::bad_magic);
  CHECK(hs::check_hello(hs::hello_frame(n, 2)) == hs::hello_check::bad_version);
  CHECK(hs::check_hello(std::span(hs::hello_frame(n, 0x0100).data(), 10)) ==
        hs::hello_check::bad_version);
  CHECK(hs::check_hello(hs::hello_frame(n, 1, 7)) == hs::hello_check::bad_role);

  const auto c = hs::random_nonce();
  const auto node = hs::node_proof(token, n, c);
  CHECK(hs::same_mac(node, hs::node_proof(token, n, c)));
  CHECK(!hs::same_mac(node, hs::node_proof(token + "x", n, c)));
  CHECK(!hs::same_mac(node, hs::node_proof(token, c, n)));
  CHECK(!hs::same_mac(node, hs::door_proof(token, c, n)));  // the labels differ

  CHECK(hs::challenge_frame(c).size() == 33);
  CHECK(hs::challenge_frame(c)[0] == 'C');
  CHECK(hs::ok_frame(node)[0] == 'O');
  const auto refused = hs::refused_frame("bad token");
  CHECK(std::string(refused.begin(), refused.end()) == std::string("R\x09"
                                                                   "bad token"));
  CHECK(hs::refused_frame(std::string(100, 'x')).size() == 2 + 64);
}

TEST_CASE("cluster token file: owner-only, at least 32 bytes, trailing whitespace dropped",
          "[cluster]") {
  const temp_dir d;
  const std::string k(32, 'k');
  CHECK(net::read_cluster_token(d.write("ok", k + "\n \t\r\n", 0600)) == k);
  CHECK(net::read_cluster_token(d.write("inner", "  " + k + " x\n", 0400)) == "  " + k + " x");
  const auto error_of = [](const std::filesystem::path& p) {
    try {
      net::read_cluster_token(p);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK_THAT(
      error_of(d.write("group", k, 0640)),
      Catch::Contains("readable by group or others (mode 640)") && Catch::Contains("chmod 600"));
  CHECK_THAT(error_of(d.write("world", k, 0604)), Catch::Contains("readable by group or others"));
  CHECK_THAT(error_of(d.write("short", std::string(31, 'k') + "\n\n", 0600)),
             Catch::Contains("holds 31 bytes; at least 32 are needed"));
  CHECK_THAT(error_of(d.path / "missing"), Catch::Contains("No such file"));
  CHECK_THAT(error_of(d.path), Catch::Contains("not a regular file"));
}

TEST_CASE("cluster door: a node with the token is spliced to the inner endpoint both ways",
          "[cluster]") {
  echo_server echo;
  net::cluster_door door(door_options(echo.port()));
  door.start();
  REQUIRE(door.port() != 0);
  net::door_relay relay("127.0.0.1", door.port(), token);
  relay.start();

  raw_conn c(relay.port());
  std::string payload(256 * 1024, '\0');
  std::mt19937 rng(7);
  for (auto& ch : payload) ch = static_cast<char>(rng());
  std::thread writer([&] { c.send(payload); });
  std::string back;
  const bool all = c.read_exact(back, payload.size(), 10s);
  writer.join();
  REQUIRE(all);
  CHECK(back == payload);
  // A half-close travels through both splices to the echo server, whose own half-close
  // comes back as end of stream.
  c.shutdown_send();
  CHECK(c.read_until_closed(5s));
  CHECK(door.joined() == 1);
  CHECK(relay.spliced() == 1);
  CHECK(!relay.last_failure());
  CHECK(door.refused_counts().empty());
  good_node_gets_through(door);
}

TEST_CASE("cluster door: a wrong token is refused with its reason, logged and counted",
          "[cluster]") {
  echo_server echo;
  log_capture log;
  auto opts = door_options(echo.port());
  std::mutex mu;
  std::vector<std::string> seen;  // what the server's /metrics counter is fed
  opts.on_refused = [&](const std::string& reason) {
    std::lock_guard lock(mu);
    seen.push_back(reason);
  };
  net::cluster_door door(std::move(opts));
  door.start();
  const auto r = net::join_door("127.0.0.1", door.port(), std::string(40, 'w'), 5s);
  CHECK(r.status == net::prove_result::kind::refused);
  CHECK(r.reason == "bad token");
  CHECK(eventually([&] { return count_of(door, "bad token") == 1; }));
  {
    std::lock_guard lock(mu);
    CHECK(seen == std::vector<std::string>{"bad token"});
  }
  CHECK(door.joined() == 0);
  const auto lines = log.lines();
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::Matches(".*cluster: refused 127\\.0\\.0\\.1:[0-9]+: bad token\\s*"));

  // Through the relay: the local connection is closed, the refusal kept.
  net::door_relay relay("127.0.0.1", door.port(), std::string(40, 'w'));
  relay.start();
  raw_conn c(relay.port());
  CHECK(c.read_until_closed(5s));
  REQUIRE(relay.last_failure());
  CHECK(relay.last_failure()->status == net::prove_result::kind::refused);
  CHECK(relay.last_failure()->reason == "bad token");
  CHECK(relay.spliced() == 0);
  CHECK(eventually([&] { return count_of(door, "bad token") == 2; }));
  good_node_gets_through(door);
}

TEST_CASE("cluster door: garbage, HTTP, truncated and oversized handshakes are refused",
          "[cluster]") {
  echo_server echo;
  net::cluster_door door(door_options(echo.port()));
  door.start();
  const auto refused = [&](const std::string& what, const std::string& bytes, bool half_close,
                           const std::string& reason) {
    INFO(what);
    const auto before = count_of(door, reason);
    raw_conn c(door.port());
    c.send(bytes);
    if (half_close) c.shutdown_send();
    std::string got;
    CHECK(c.read_until_closed(5s, &got));
    CHECK(eventually([&] { return count_of(door, reason) == before + 1; }));
    return got;
  };
  std::string random(300, '\0');
  std::mt19937 rng(11);
  for (auto& ch : random) ch = static_cast<char>(rng());
  random[0] = 'X';  // never a 'C'
  CHECK(refused("random bytes", random, false, "bad magic").empty());
  CHECK(
      refused("an HTTP request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, "bad magic").empty());
  CHECK(refused("1 MiB of zeros", std::string(1 << 20, '\0'), false, "bad magic").empty());
  CHECK(refused("a truncated hello", hello_bytes().substr(0, 20), true, "short read").empty());
  CHECK(refused("nothing, then end of stream", "", true, "short read").empty());
  CHECK(refused("a hello with more behind it", hello_bytes() + "extra", false, "oversize").empty());
  CHECK(refused("version 2", hello_bytes(2), false, "bad version") == std::string("R\x0b"
                                                                                  "bad version"));
  CHECK(refused("an unknown role", hello_bytes(1, 9), false, "bad role") ==
        std::string("R\x08"
                    "bad role"));
  {  // A hello, the challenge, then a truncated proof and end of stream.
    raw_conn c(door.port());
    c.send(hello_bytes());
    std::string challenge;
    REQUIRE(c.read_exact(challenge, 33, 5s));
    CHECK(challenge[0] == 'C');
    c.send(std::string(10, 'p'));
    c.shutdown_send();
    CHECK(c.read_until_closed(5s));
    CHECK(eventually([&] { return count_of(door, "short read") == 3; }));
  }
  CHECK(door.joined() == 0);
  good_node_gets_through(door);
}

TEST_CASE("cluster door: a silent or slow peer is cut at the handshake deadline", "[cluster]") {
  echo_server echo;
  net::cluster_door door(door_options(echo.port(), 300ms));
  door.start();
  {
    raw_conn silent(door.port());
    CHECK(silent.read_until_closed(5s));
    CHECK(eventually([&] { return count_of(door, "timeout") == 1; }));
  }
  {
    raw_conn slow(door.port());
    const std::string hello = hello_bytes();
    bool closed = false;
    for (size_t i = 0; i < hello.size() && !closed; ++i) {  // 43 bytes over ~2 s
      if (slow.send(hello.data() + i, 1) != 1) break;
      closed = slow.read_until_closed(50ms);
    }
    CHECK((closed || slow.read_until_closed(5s)));
    CHECK(eventually([&] { return count_of(door, "timeout") == 2; }));
  }
  CHECK(door.in_handshake() == 0);
  good_node_gets_through(door);
}

TEST_CASE("cluster door: at most 16 handshakes at once, then a good node still gets in",
          "[cluster]") {
  echo_server echo;
  net::cluster_door door(door_options(echo.port()));
  door.start();
  std::vector<std::unique_ptr<raw_conn>> idle;
  for (int i = 0; i < 16; ++i) idle.push_back(std::make_unique<raw_conn>(door.port()));
  REQUIRE(eventually([&] { return door.in_handshake() == 16; }));
  for (int i = 0; i < 4; ++i) {
    raw_conn extra(door.port());
    CHECK(extra.read_until_closed(5s));
  }
  CHECK(eventually([&] { return count_of(door, "busy") == 4; }));
  CHECK(door.in_handshake() == 16);
  idle.clear();  // they close: 16 short reads
  CHECK(eventually([&] { return count_of(door, "short read") == 16; }));
  CHECK(eventually([&] { return door.in_handshake() == 0; }));
  good_node_gets_through(door);
}

TEST_CASE("cluster door client: a door that cannot prove the token is not trusted", "[cluster]") {
  // An impostor: answers the hello with a challenge and any proof with 32 zero bytes.
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
  const uint16_t port = acceptor.local_endpoint().port();
  std::thread impostor([&] {
    tcp::socket s(io);
    acceptor.accept(s);
    std::array<uint8_t, 43> hello{};
    asio::read(s, asio::buffer(hello));
    const auto challenge = net::handshake::challenge_frame(net::handshake::random_nonce());
    asio::write(s, asio::buffer(challenge));
    std::array<uint8_t, 32> proof{};
    asio::read(s, asio::buffer(proof));
    const auto ok = net::handshake::ok_frame(net::handshake::mac{});
    asio::write(s, asio::buffer(ok));
  });
  const auto r = net::join_door("127.0.0.1", port, token, 5s);
  impostor.join();
  CHECK(r.status == net::prove_result::kind::untrusted);
  CHECK_THAT(r.reason, Catch::Contains("did not prove the cluster token"));

  acceptor.close();
  const auto none = net::join_door("127.0.0.1", port, token, 2s);
  CHECK(none.status == net::prove_result::kind::unreachable);
}

TEST_CASE(
    "cluster door with TLS: a node with the cluster CA's certificate is spliced, and no TLS "
    "or a foreign CA is refused as tls, logged and counted",
    "[cluster]") {
  const test_pki pki;
  echo_server echo;
  log_capture log;
  auto o = door_options(echo.port());
  o.tls = pki.files("door");
  net::cluster_door door(o);
  door.start();
  const auto node_tls = pki.files("node");
  {  // Through the node's relay: TLS to the door, plain on the relay's loopback side.
    net::door_relay relay("127.0.0.1", door.port(), token, 5s, node_tls);
    relay.start();
    raw_conn c(relay.port());
    std::string payload(128 * 1024, '\0');
    std::mt19937 rng(5);
    for (auto& ch : payload) ch = static_cast<char>(rng());
    std::thread writer([&] { c.send(payload); });
    std::string back;
    const bool all = c.read_exact(back, payload.size(), 10s);
    writer.join();
    REQUIRE(all);
    CHECK(back == payload);
    c.shutdown_send();  // the half-close crosses the TLS leg too
    CHECK(c.read_until_closed(5s));
    CHECK(relay.spliced() == 1);
    CHECK(!relay.last_failure());
  }
  CHECK(door.joined() == 1);
  CHECK(door.refused_counts().empty());

  using kind = net::prove_result::kind;
  const auto refused_as_tls = [&](const std::string& what, const net::tls_files& tls, uint64_t n) {
    INFO(what);
    const auto r = net::join_door("127.0.0.1", door.port(), token, 5s, tls);
    INFO(r.reason);
    CHECK(r.status == kind::error);  // retried by a node, never a token refusal
    CHECK(eventually([&] { return count_of(door, "tls") == n; }));
  };
  refused_as_tls("a node without TLS", {}, 1);
  refused_as_tls("a node whose certificate another CA signed", pki.files("rogue", "ca"), 2);
  refused_as_tls("a node that trusts another CA", pki.files("rogue", "rogue-ca"), 3);
  {
    raw_conn plain(door.port());  // a hello in the clear
    plain.send(hello_bytes());
    CHECK(plain.read_until_closed(5s));
    CHECK(eventually([&] { return count_of(door, "tls") == 4; }));
  }
  CHECK(door.joined() == 1);
  CHECK(eventually([&] { return door.in_handshake() == 0; }));
  std::vector<std::string> refusals;
  for (const auto& l : log.lines())
    if (l.find("refused") != std::string::npos) refusals.push_back(l);
  CHECK(refusals.size() == 4);
  for (const auto& l : refusals)
    CHECK_THAT(l, Catch::Matches(".*cluster: refused 127\\.0\\.0\\.1:[0-9]+: tls \\(.+\\)\\s*"));
  CHECK(door.refused_counts().size() == 1);
  good_node_gets_through(door, node_tls);
}

TEST_CASE("cluster door with TLS: missing or mismatched PEM files are named", "[cluster]") {
  const test_pki pki;
  const auto error_of = [](const net::tls_files& f) {
    try {
      auto o = door_options(1);
      o.tls = f;
      net::cluster_door door(o);
      door.start();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto f = pki.files("door");
  f.cafile = (pki.dir / "none.pem").string();
  CHECK_THAT(error_of(f), Catch::Contains("CA file " + f.cafile));
  f = pki.files("door");
  f.key = (pki.dir / "node.key").string();
  CHECK_THAT(error_of(f), Catch::Contains("key " + f.key));  // OpenSSL's words, or ours
  f = pki.files("door");
  f.certificate = f.key;
  CHECK_THAT(error_of(f), Catch::Contains("certificate " + f.key));
}

TEST_CASE("cluster door refusals appear in /metrics by reason", "[cluster]") {
  serve::server_metrics m;
  m.count_cluster_refusal("bad token");
  m.count_cluster_refusal("bad token");
  m.count_cluster_refusal("timeout");
  const std::string text = m.serialize();
  CHECK_THAT(text, Catch::Contains("conclave_cluster_refusals_total{reason=\"bad token\"} 2"));
  CHECK_THAT(text, Catch::Contains("conclave_cluster_refusals_total{reason=\"timeout\"} 1"));
}
