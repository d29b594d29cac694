// A real redis-server (Debian's) on a free loopback port for a test's duration, without
// persistence; nothing when the binary is missing (the test then skips).
#pragma once

#include <sys/types.h>

#include <string>

namespace conclave::test {

class redis_server {
 public:
  /// Starts it and waits (up to 10 s) until it answers PING; available() false when
  /// redis-server is not installed or did not come up.
  redis_server();
  ~redis_server();
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  bool available() const { return pid_ > 0; }
  int port() const { return port_; }
  /// "redis://127.0.0.1:PORT/PREFIX".
  std::string url(const std::string& prefix = "conclave-test") const;
  /// Stops it (SIGKILL, as a crash) and starts it again on the same port: empty, since it
  /// keeps nothing on disk. `restart` false leaves it stopped.
  void kill(bool restart = false);

 private:
  void start();
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace conclave::test
