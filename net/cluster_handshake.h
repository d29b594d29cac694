// cluster_handshake: the door's wire format, version 1 (docs/cluster.md §4), and its
// crypto (OpenSSL libcrypto). Plain functions on bytes; the sockets are the door's and
// the door client's.
//
//   node -> door  hello      "CONCLAVE" | u16 version (big-endian) | u8 role | nonce_n[32]
//   door -> node  challenge  'C' | nonce_c[32]
//   node -> door  proof      HMAC-SHA256(K, "node" | nonce_n | nonce_c)
//   door -> node  ok         'O' | HMAC-SHA256(K, "coord" | nonce_c | nonce_n)
//            or   refused    'R' | u8 length | reason (ASCII, 1..64 bytes)
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace conclave::net::handshake {

inline constexpr std::string_view magic = "CONCLAVE";
inline constexpr uint16_t version = 1;
inline constexpr uint8_t role_node = 1;
inline constexpr size_t nonce_bytes = 32;
inline constexpr size_t mac_bytes = 32;
inline constexpr size_t hello_bytes = 8 + 2 + 1 + nonce_bytes;  // 43
inline constexpr size_t proof_bytes = mac_bytes;
inline constexpr uint8_t tag_challenge = 'C';
inline constexpr uint8_t tag_ok = 'O';
inline constexpr uint8_t tag_refused = 'R';
inline constexpr size_t max_reason_bytes = 64;

using nonce = std::array<uint8_t, nonce_bytes>;
using mac = std::array<uint8_t, mac_bytes>;

/// 32 bytes from RAND_bytes. Throws std::runtime_error when the generator fails.
nonce random_nonce();

std::array<uint8_t, hello_bytes> hello_frame(const nonce& n, uint16_t v = version,
                                             uint8_t role = role_node);

enum class hello_check { need_more, bad_magic, bad_version, bad_role, ok };

/// Checks the first bytes of a hello as they arrive: a wrong magic is seen from its first
/// differing byte. `ok` only with all hello_bytes; then `*n` is the node's nonce.
hello_check check_hello(std::span<const uint8_t> bytes, nonce* n = nullptr);

/// HMAC-SHA256(K, "node" | nonce_n | nonce_c): what the node sends.
mac node_proof(std::string_view key, const nonce& nonce_n, const nonce& nonce_c);
/// HMAC-SHA256(K, "coord" | nonce_c | nonce_n): what the door answers with.
mac door_proof(std::string_view key, const nonce& nonce_c, const nonce& nonce_n);
/// Constant time (CRYPTO_memcmp).
bool same_mac(const mac& a, const mac& b);

std::vector<uint8_t> challenge_frame(const nonce& nonce_c);
std::vector<uint8_t> ok_frame(const mac& door);
/// `reason` is cut to max_reason_bytes; an empty one becomes "refused".
std::vector<uint8_t> refused_frame(std::string_view reason);

}  // namespace conclave::net::handshake
