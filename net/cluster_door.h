// cluster_door: the owner of the public cluster port (docs/cluster.md §4). Every
// connection must prove the cluster token within a deadline and a byte limit before a
// single byte of it reaches the coordinator; then the door splices it to an inner
// endpoint on 127.0.0.1 (where the CAF gate is published). Anything else gets one warning
// with the peer and the reason, is closed and counted. With TLS the door first completes a
// TLS handshake (the peer's certificate signed by the cluster CA) and runs the token
// handshake and the splice inside it; the inner side stays plain loopback. Boost.Asio, one
// I/O thread, no CAF.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "net/cluster_tls.h"

namespace conclave::net {

struct cluster_door_options {
  std::string host = "0.0.0.0";
  uint16_t port = 0;        ///< 0: the OS picks (see cluster_door::port())
  uint16_t inner_port = 0;  ///< proven connections are spliced to 127.0.0.1:inner_port
  std::string token;        ///< K (read_cluster_token)
  std::chrono::milliseconds handshake_timeout{5000};
  size_t max_handshake_bytes = 256;  ///< bytes read from a peer before its proof is checked
  size_t max_in_handshake = 16;      ///< more connections in handshake are closed at once
  tls_files tls;  ///< enabled(): TLS 1.2+ on the port, a certificate required of every peer
  /// Called (on the door's I/O thread) with the reason of every refusal, e.g. to count
  /// it in /metrics.
  std::function<void(const std::string& reason)> on_refused;
};

/// Reasons a connection is refused: the keys of refused_counts() and the log lines'
/// last words.
namespace refusal {
inline constexpr const char* bad_token = "bad token";
inline constexpr const char* bad_magic = "bad magic";
inline constexpr const char* bad_version = "bad version";
inline constexpr const char* bad_role = "bad role";
inline constexpr const char* short_read = "short read";  ///< closed before the handshake ended
inline constexpr const char* timeout = "timeout";
inline constexpr const char* oversize = "oversize";    ///< more bytes than the frame in hand
inline constexpr const char* busy = "busy";            ///< max_in_handshake reached
inline constexpr const char* not_ready = "not ready";  ///< good proof, inner endpoint down
inline constexpr const char* io_error = "io error";
inline constexpr const char* tls = "tls";  ///< the TLS handshake failed (no TLS, foreign CA, ...)
}  // namespace refusal

class cluster_door {
 public:
  explicit cluster_door(cluster_door_options o);
  ~cluster_door();
  cluster_door(const cluster_door&) = delete;
  cluster_door& operator=(const cluster_door&) = delete;

  /// Loads the TLS files (std::invalid_argument when one is bad), binds host:port and
  /// starts the I/O thread. Throws std::runtime_error when it cannot listen.
  void start();
  /// The bound port (0 before start()).
  uint16_t port() const;
  /// Closes the port and every connection; joins the I/O thread.
  void stop();

  /// reason -> connections refused for it so far.
  std::map<std::string, uint64_t> refused_counts() const;
  /// Connections that proved the token and were spliced.
  uint64_t joined() const;
  /// Connections in handshake now.
  size_t in_handshake() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave::net
