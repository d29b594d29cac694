// The token file's rules: owner-only, at least 32 bytes of secret.
#include "net/cluster_token.h"

#include <spdlog/fmt/fmt.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace conclave::net {

std::string read_cluster_token(const std::filesystem::path& file) {
  const std::string name = file.string();
  struct stat st {};
  if (::stat(name.c_str(), &st) != 0) {
    throw std::invalid_argument(
        fmt::format("cluster token file {}: {}", name, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode))
    throw std::invalid_argument(fmt::format("cluster token file {}: not a regular file", name));
  if ((st.st_mode & 077) != 0) {
    throw std::invalid_argument(
        fmt::format("cluster token file {} is readable by group or others (mode {:o}); "
                    "chmod 600 it",
                    name, st.st_mode & 0777));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw std::invalid_argument(
        fmt::format("cluster token file {}: {}", name, std::strerror(errno)));
  }
  std::string k;
  k.reserve(static_cast<size_t>(st.st_size));
  char buf[1024];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    k.append(buf, static_cast<size_t>(in.gcount()));
    if (k.size() > 4 * max_cluster_token_bytes) break;  // no need to read a huge file whole
  }
  const auto space = [](char ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
  };
  while (!k.empty() && space(k.back())) k.pop_back();
  if (k.size() < min_cluster_token_bytes) {
    throw std::invalid_argument(
        fmt::format("cluster token file {} holds {} bytes; at least {} are needed (e.g. head -c 32 "
                    "/dev/urandom | base64 > FILE)",
                    name, k.size(), min_cluster_token_bytes));
  }
  if (k.size() > max_cluster_token_bytes) {
    throw std::invalid_argument(fmt::format("cluster token file {} holds more than {} bytes", name,
                                            max_cluster_token_bytes));
  }
  return k;
}

}  // namespace conclave::net
