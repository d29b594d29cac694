// The placeholder inner endpoint: accept, say so in the log, close.
#include "tests/net/closing_listener.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <thread>

namespace conclave::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct closing_listener::impl {
  std::atomic<uint16_t> bound_port{0};
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        spdlog::warn(
            "cluster: a node proved the token, but the node protocol behind the door is not "
            "built yet (docs/cluster.md §4); closing its connection");
        boost::system::error_code ignored;
        s.close(ignored);
      }
      accept();
    });
  }
};

closing_listener::closing_listener() : impl_(std::make_unique<impl>()) {}

closing_listener::~closing_listener() {
  stop();
}

void closing_listener::start() {
  auto& g = *impl_;
  boost::system::error_code ec;
  const tcp::endpoint ep{asio::ip::address_v4::loopback(), 0};
  g.acceptor.open(ep.protocol(), ec);
  if (!ec) g.acceptor.bind(ep, ec);
  if (!ec) g.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cluster gate: cannot listen on 127.0.0.1: " + ec.message());
  g.bound_port = g.acceptor.local_endpoint().port();
  g.accept();
  g.thread = std::thread([this] { impl_->io.run(); });
}

uint16_t closing_listener::port() const {
  return impl_->bound_port.load();
}

void closing_listener::stop() {
  auto& g = *impl_;
  if (!g.thread.joinable()) return;
  asio::post(g.io, [&g] {
    boost::system::error_code ignored;
    g.acceptor.close(ignored);
    g.io.stop();
  });
  g.thread.join();
}

}  // namespace conclave::net
