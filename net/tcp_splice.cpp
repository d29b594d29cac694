// The splice: one coroutine per direction over a shared pair of streams; one copy loop
// for every pair of stream types.
#include "net/tcp_splice.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <memory>

namespace conclave::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

template <class A, class B>
struct stream_pair {
  A a;
  B b;
  void close_both() {
    error_code ignored;
    a.lowest_layer().close(ignored);
    b.lowest_layer().close(ignored);
  }
};

bool end_of_stream(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

template <class Pair, class From, class To>
asio::awaitable<void> pump(std::shared_ptr<Pair> p, From& from, To& to) {
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
    if (end_of_stream(ec)) {
      error_code ignored;
      to.lowest_layer().shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    if (ec) {
      p->close_both();
      co_return;
    }
  }
}

template <class A, class B>
void splice_streams(A a, B b) {
  auto ex = a.get_executor();
  using pair = stream_pair<A, B>;
  auto p = std::make_shared<pair>(pair{std::move(a), std::move(b)});
  asio::co_spawn(ex, pump(p, p->a, p->b), asio::detached);
  asio::co_spawn(ex, pump(p, p->b, p->a), asio::detached);
}

}  // namespace

void splice(tcp::socket a, tcp::socket b) {
  splice_streams(std::move(a), std::move(b));
}

void splice(tls_stream a, tcp::socket b) {
  splice_streams(std::move(a), std::move(b));
}

}  // namespace conclave::net
