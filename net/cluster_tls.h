// cluster_tls: TLS on the cluster port (docs/cluster.md §4). The door (server) and the
// node's door client (client) wrap their TCP connection in TLS 1.2+ before the token
// handshake; both ends present a certificate signed by the cluster's CA file and verify
// the other's against it. Host names are not checked: the CA file should be a private CA
// of this cluster. No CAF.
#pragma once

#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace conclave::net {

/// PEM files: this end's certificate (chain) and its unencrypted key, and the CA the
/// other end's certificate must be signed by. All empty: no TLS.
struct tls_files {
  std::string certificate, key, cafile;
  bool enabled() const { return !certificate.empty() || !key.empty() || !cafile.empty(); }
};

enum class tls_role { server, client };

/// A context for TLS 1.2 or later with `f`'s certificate and key, verifying the peer
/// against `f.cafile` (a server also refuses a peer without a certificate). Throws
/// std::invalid_argument naming the file at fault (missing, unreadable, not PEM, a key
/// that does not match the certificate).
std::unique_ptr<boost::asio::ssl::context> make_tls_context(const tls_files& f, tls_role role);

}  // namespace conclave::net
