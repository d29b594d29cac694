// The last-event guarantee and the reservation of one request (see the header).
#include "serve/session_guard.h"

#include <spdlog/spdlog.h>

namespace conclave::serve {

void session_guard::push(client_event e) {
  if (e.type == client_event::kind::finished || e.type == client_event::kind::error) {
    if (ended_.exchange(true)) return;  // the request already ended
  } else if (ended_.load()) {
    return;
  }
  client_->push(std::move(e));
}

void session_guard::reserve(std::function<void()> give_back) {
  release();
  std::lock_guard lock(mutex_);
  give_back_ = std::move(give_back);
}

void session_guard::release() {
  std::function<void()> f;
  {
    std::lock_guard lock(mutex_);
    f = std::exchange(give_back_, nullptr);
  }
  if (f) f();
}

void session_guard::on_exit(const std::string& reason) {
  release();
  if (ended_.load()) return;
  spdlog::error("a request session stopped before its request ended ({})", reason);
  push(client_event::error(
      500, "the request was stopped on the server (its session ended: " + reason + ")",
      "server_error", {}, "session_stopped"));
}

}  // namespace conclave::serve
