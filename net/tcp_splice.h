// tcp_splice: two connected streams become one pipe (the door after a good proof, the
// node's relay after the door accepted it). Either end may be TLS (the cluster port with
// [cluster] tls); the other is the plain loopback socket of CAF.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>

namespace conclave::net {

using tls_stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

/// Copies bytes both ways until both directions ended. An end of stream on one side is
/// passed on as a half-close (shutdown of sending) to the other; an error on either side
/// closes both. Both streams must run on the same single-threaded executor, which keeps
/// them alive until then.
///
/// A TLS end is half-closed at the TCP level (no close_notify, which would need a read of
/// its own while the other direction still reads), so a TLS end that ends without
/// close_notify (`stream_truncated`) counts as an end of stream too. What travels inside
/// (CAF's BASP) is framed, so a cut is seen there.
void splice(boost::asio::ip::tcp::socket a, boost::asio::ip::tcp::socket b);
void splice(tls_stream a, boost::asio::ip::tcp::socket b);

}  // namespace conclave::net
