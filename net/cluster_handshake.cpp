// The handshake's frames and HMACs.
#include "net/cluster_handshake.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace conclave::net::handshake {
namespace {

mac hmac(std::string_view key, std::string_view label, const nonce& a, const nonce& b) {
  std::array<uint8_t, 5 + 2 * nonce_bytes> msg{};
  std::copy(label.begin(), label.end(), msg.begin());
  std::copy(a.begin(), a.end(), msg.begin() + static_cast<ptrdiff_t>(label.size()));
  std::copy(b.begin(), b.end(), msg.begin() + static_cast<ptrdiff_t>(label.size() + nonce_bytes));
  mac out{};
  unsigned len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), msg.data(),
           label.size() + 2 * nonce_bytes, out.data(), &len) == nullptr ||
      len != mac_bytes) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return out;
}

}  // namespace

nonce random_nonce() {
  nonce n{};
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1)
    throw std::runtime_error("RAND_bytes failed: no randomness for the cluster handshake");
  return n;
}

std::array<uint8_t, hello_bytes> hello_frame(const nonce& n, uint16_t v, uint8_t role) {
  std::array<uint8_t, hello_bytes> f{};
  std::copy(magic.begin(), magic.end(), f.begin());
  f[8] = static_cast<uint8_t>(v >> 8);
  f[9] = static_cast<uint8_t>(v & 0xff);
  f[10] = role;
  std::copy(n.begin(), n.end(), f.begin() + 11);
  return f;
}

hello_check check_hello(std::span<const uint8_t> bytes, nonce* n) {
  const size_t m = std::min(bytes.size(), magic.size());
  for (size_t i = 0; i < m; ++i) {
    if (bytes[i] != static_cast<uint8_t>(magic[i])) return hello_check::bad_magic;
  }
  if (bytes.size() < 10) return hello_check::need_more;
  if (((uint16_t{bytes[8]} << 8) | bytes[9]) != version) return hello_check::bad_version;
  if (bytes.size() < 11) return hello_check::need_more;
  if (bytes[10] != role_node) return hello_check::bad_role;
  if (bytes.size() < hello_bytes) return hello_check::need_more;
  if (n != nullptr) std::copy(bytes.begin() + 11, bytes.begin() + hello_bytes, n->begin());
  return hello_check::ok;
}

mac node_proof(std::string_view key, const nonce& nonce_n, const nonce& nonce_c) {
  return hmac(key, "node", nonce_n, nonce_c);
}

mac door_proof(std::string_view key, const nonce& nonce_c, const nonce& nonce_n) {
  return hmac(key, "coord", nonce_c, nonce_n);
}

bool same_mac(const mac& a, const mac& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::vector<uint8_t> challenge_frame(const nonce& nonce_c) {
  std::vector<uint8_t> f(1 + nonce_c.size());
  f[0] = tag_challenge;
  std::memcpy(f.data() + 1, nonce_c.data(), nonce_c.size());
  return f;
}

std::vector<uint8_t> ok_frame(const mac& door) {
  std::vector<uint8_t> f(1 + door.size());
  f[0] = tag_ok;
  std::memcpy(f.data() + 1, door.data(), door.size());
  return f;
}

std::vector<uint8_t> refused_frame(std::string_view reason) {
  if (reason.empty()) reason = "refused";
  reason = reason.substr(0, max_reason_bytes);
  std::vector<uint8_t> f(2 + reason.size());
  f[0] = tag_refused;
  f[1] = static_cast<uint8_t>(reason.size());
  std::memcpy(f.data() + 2, reason.data(), reason.size());
  return f;
}

}  // namespace conclave::net::handshake
