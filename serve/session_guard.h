// session_guard: the client's sink as a request's session uses it, and what the
// session's end needs once its state is gone: whether the request's last event went
// out, and the router reservation it holds. However a session ends (even killed), its
// exit calls on_exit(): the reservation is given back and a client that got no last
// event gets an error (500, code "session_stopped").
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "serve/client_api.h"

namespace conclave::serve {

class session_guard final : public client_sink {
 public:
  explicit session_guard(std::shared_ptr<client_sink> client) : client_(std::move(client)) {}
  /// Passes `e` on, unless the request already ended (a second last event is dropped).
  void push(client_event e) override;
  /// The client left (cancel): nothing more is sent.
  void client_left() { ended_ = true; }
  /// The request's last event went out (or the client left).
  bool ended() const { return ended_.load(); }
  /// The request now holds a reservation that `give_back` returns (replacing, and first
  /// giving back, any earlier one).
  void reserve(std::function<void()> give_back);
  /// Gives the reservation back (once).
  void release();
  /// The session ended: gives back what it held and, when no last event went out (the
  /// session was killed or failed), ends the request for the client with an error.
  void on_exit(const std::string& reason);

 private:
  std::shared_ptr<client_sink> client_;
  std::atomic<bool> ended_{false};
  std::mutex mutex_;  ///< guards give_back_ (the session and its exit run on other threads)
  std::function<void()> give_back_;
};

}  // namespace conclave::serve
