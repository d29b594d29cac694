// server_config: everything `conclave serve` needs (listener, limits, model, engine),
// from embedded defaults, then a TOML file, then command-line flags.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "config/engine_config.h"

namespace conclave::config {

struct websocket_config {
  size_t max_frame_bytes = size_t{4} << 20;  ///< larger client frames close the connection (1009)
  size_t max_buffered_bytes = size_t{8} << 20;  ///< a reader this far behind is disconnected (1008)
  double ping_interval_s = 20.0;  ///< server pings; two missed pongs close the connection
};

struct server_config {
  // [server]
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::vector<std::string> api_keys;           ///< empty: no authentication
  size_t max_body_bytes = size_t{4} << 20;     ///< 413 above this
  size_t max_header_bytes = size_t{16} << 10;  ///< 431 above this
  int32_t max_waiting = 4096;                  ///< requests queued before 429
  double drain_timeout_s = 30.0;               ///< SIGTERM: how long running requests may finish
  int io_threads = 1;                          ///< Beast I/O threads
  int actor_threads = 2;                       ///< CAF scheduler threads
  websocket_config websocket;
  // [model]
  std::string model_dir;          ///< empty: the embedded demo model
  std::string served_model_name;  ///< empty: the folder's name ("conclave-demo" for the demo)
  std::string tokenizer_path;     ///< empty: MODEL/tokenizer.json
  // [engine]
  engine_config engine;

  /// Empty when valid, else one line naming the key.
  std::string validate() const;
};

/// Reads a TOML file over `base`. Throws std::invalid_argument naming the file, key and
/// line for syntax errors, unknown keys and wrong types.
server_config load_server_config(const std::filesystem::path& path, server_config base = {});

/// The TOML text of `c` (what `conclave serve --print-config` shows).
std::string to_toml(const server_config& c);

}  // namespace conclave::config
