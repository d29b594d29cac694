// The splice: one coroutine per direction over a shared pair of sockets.
#include "net/tcp_splice.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <memory>

namespace conclave::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct socket_pair {
  tcp::socket a, b;
  void close_both() {
    boost::system::error_code ignored;
    a.close(ignored);
    b.close(ignored);
  }
};

asio::awaitable<void> pump(std::shared_ptr<socket_pair> p, tcp::socket& from, tcp::socket& to) {
  std::array<char, 16384> buf;
  for (;;) {
    auto [ec, n] =
        co_await from.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    if (n > 0) {
      auto [wec, written] = co_await asio::async_write(to, asio::buffer(buf.data(), n),
                                                       asio::as_tuple(asio::use_awaitable));
      (void)written;
      if (wec) {
        p->close_both();
        co_return;
      }
    }
    if (ec == asio::error::eof) {
      boost::system::error_code ignored;
      to.shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    if (ec) {
      p->close_both();
      co_return;
    }
  }
}

}  // namespace

void splice(tcp::socket a, tcp::socket b) {
  auto ex = a.get_executor();
  auto p = std::make_shared<socket_pair>(socket_pair{std::move(a), std::move(b)});
  asio::co_spawn(ex, pump(p, p->a, p->b), asio::detached);
  asio::co_spawn(ex, pump(p, p->b, p->a), asio::detached);
}

}  // namespace conclave::net
