// The Asio coroutine completion token shared by the cluster door's server and client sides.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace conclave::net {

/// `co_await op(..., tuple_awaitable)` yields (error_code, results...) instead of throwing.
inline constexpr auto tuple_awaitable = boost::asio::as_tuple(boost::asio::use_awaitable);

}  // namespace conclave::net
