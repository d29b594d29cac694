// closing_listener (tests): a local TCP port that accepts and closes every connection.
// Stands behind a door in tests that need no coordinator, and gives a port nobody
// listens on once stopped.
#pragma once

#include <cstdint>
#include <memory>

namespace conclave::net {

class closing_listener {
 public:
  closing_listener();
  ~closing_listener();
  closing_listener(const closing_listener&) = delete;
  closing_listener& operator=(const closing_listener&) = delete;

  /// Binds 127.0.0.1 (any free port) and starts its thread. Throws std::runtime_error.
  void start();
  uint16_t port() const;
  void stop();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave::net
