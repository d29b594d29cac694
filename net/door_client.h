// door_client: the node's side of the cluster door (docs/cluster.md §4). prove() is the
// node's half of the handshake; join_door() dials and proves once (the node command's
// first contact); door_relay is the local endpoint the node's CAF middleman will connect
// through: each connection to it is dialled to the door, proven, then spliced. With TLS
// files both first complete a TLS handshake with the door (its certificate verified
// against the CA file; host names not checked) and prove the token inside TLS; the
// relay's local side stays plain loopback. No CAF.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "net/cluster_tls.h"

namespace conclave::net {

struct prove_result {
  enum class kind {
    ok,           ///< the door took our proof and proved the token back
    refused,      ///< the door said no; `reason` is its reason ("bad token", ...)
    untrusted,    ///< the peer did not prove the token: not our coordinator, or another K
    unreachable,  ///< no connection (resolve or connect failed)
    error,        ///< the connection broke or timed out mid-handshake, spoke garbage, or TLS failed
  };
  kind status = kind::error;
  std::string reason;
};

/// The node's half of the handshake on a connected socket. Does not close it; on `ok`
/// the next byte belongs to the coordinator. No deadline of its own (the caller's).
boost::asio::awaitable<prove_result> prove(boost::asio::ip::tcp::socket& socket,
                                           std::string_view token);

/// Blocking: dials host:port, proves within `timeout` (inside TLS when `tls` is enabled),
/// closes. Bad TLS files throw std::invalid_argument.
prove_result join_door(const std::string& host, uint16_t port, const std::string& token,
                       std::chrono::milliseconds timeout, const tls_files& tls = {});

/// Listens on 127.0.0.1 (any free port); every connection to it is dialled to the door at
/// host:port, proven within `timeout` and spliced. A failed proof closes the local
/// connection and is kept as last_failure().
class door_relay {
 public:
  door_relay(std::string host, uint16_t port, std::string token,
             std::chrono::milliseconds timeout = std::chrono::seconds(5), tls_files tls = {});
  ~door_relay();
  door_relay(const door_relay&) = delete;
  door_relay& operator=(const door_relay&) = delete;

  /// Loads the TLS files (std::invalid_argument when one is bad), binds 127.0.0.1:0 and
  /// starts the I/O thread. Throws std::runtime_error when it cannot listen.
  void start();
  uint16_t port() const;
  void stop();

  /// Connections spliced through to the door so far.
  uint64_t spliced() const;
  /// The last connection's failure, if any.
  std::optional<prove_result> last_failure() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave::net
