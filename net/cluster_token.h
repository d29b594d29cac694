// cluster_token: reading the cluster's shared secret K (docs/cluster.md §4).
#pragma once

#include <filesystem>
#include <string>

namespace conclave::net {

/// Shortest and longest accepted token, in bytes (after trailing whitespace is dropped).
inline constexpr size_t min_cluster_token_bytes = 32;
inline constexpr size_t max_cluster_token_bytes = 4096;

/// K = the file's bytes minus trailing whitespace. Throws std::invalid_argument with one
/// line naming the file when it cannot be read, is readable by group or others (mode &
/// 077), or holds fewer than 32 (or more than 4096) bytes.
std::string read_cluster_token(const std::filesystem::path& file);

}  // namespace conclave::net
