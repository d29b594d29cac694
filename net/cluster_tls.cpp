// The cluster port's TLS contexts (Boost.Asio SSL over OpenSSL's libssl).
#include "net/cluster_tls.h"

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <stdexcept>

namespace conclave::net {
namespace {

namespace ssl = boost::asio::ssl;

template <class Load>
void load(const char* what, const std::string& file, Load&& f) {
  boost::system::error_code ec;
  f(ec);
  if (ec)
    throw std::invalid_argument("cluster TLS: cannot load the " + std::string(what) + " " + file +
                                ": " + ec.message());
}

}  // namespace

std::unique_ptr<ssl::context> make_tls_context(const tls_files& f, tls_role role) {
  if (f.certificate.empty() || f.key.empty() || f.cafile.empty())
    throw std::invalid_argument("cluster TLS needs a certificate, a key and a CA file");
  auto ctx = std::make_unique<ssl::context>(role == tls_role::server ? ssl::context::tls_server
                                                                     : ssl::context::tls_client);
  ::SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::single_dh_use);
  load("certificate", f.certificate,
       [&](auto& ec) { ctx->use_certificate_chain_file(f.certificate, ec); });
  load("key", f.key, [&](auto& ec) { ctx->use_private_key_file(f.key, ssl::context::pem, ec); });
  if (::SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    throw std::invalid_argument("cluster TLS: the key " + f.key +
                                " does not match the certificate " + f.certificate);
  load("CA file", f.cafile, [&](auto& ec) { ctx->load_verify_file(f.cafile, ec); });
  if (role == tls_role::server) {
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    ::SSL_CTX_set_num_tickets(ctx->native_handle(), 0);  // every join is a new session
  } else {
    // Chain verification only: the coordinator's host name is not checked (docs/cluster.md
    // §4); the token handshake inside TLS proves the door knows K as well.
    ctx->set_verify_mode(ssl::verify_peer);
  }
  return ctx;
}

}  // namespace conclave::net
