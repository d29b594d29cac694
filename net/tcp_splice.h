// tcp_splice: two connected sockets become one pipe (the door after a good proof, the
// node's relay after the door accepted it).
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace conclave::net {

/// Copies bytes both ways until both directions ended. An end of stream on one side is
/// passed on as a half-close (shutdown of sending) to the other; an error on either side
/// closes both. Both sockets must run on the same single-threaded executor, which keeps
/// them alive until then.
void splice(boost::asio::ip::tcp::socket a, boost::asio::ip::tcp::socket b);

}  // namespace conclave::net
