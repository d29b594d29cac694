// choice_fanout: a request asking for n > 1 choices runs as n member requests, one per
// choice, each in its own session (its own seed stream, text pipeline and failover) and
// all in one prefill group (engine/prefill_groups.h: the prompt is computed once). This
// class merges their events into one response for the client: each member's events are
// tagged with its choice index; `started` goes out once; a member's `finished` becomes
// a `choice_end`, and the last one is followed by one `finished` with the usage of all
// (prompt tokens once, completion tokens summed). The first error ends the response and
// the others are stopped.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "serve/client_api.h"

namespace conclave::serve {

class member_sink;

class choice_fanout final : public std::enable_shared_from_this<choice_fanout> {
 public:
  /// Throws std::invalid_argument for n < 1.
  choice_fanout(std::shared_ptr<client_sink> client, size_t n);

  /// The sink choice `i` pushes its events to (it keeps this fan-out alive).
  std::shared_ptr<client_sink> member(size_t i);
  /// Runs once, when the first member fails (to stop the others).
  void on_failure(std::function<void()> f);
  /// The response's last event went out.
  bool ended() const;

 private:
  friend class member_sink;
  void push(size_t i, client_event e);

  std::shared_ptr<client_sink> client_;
  size_t n_;
  mutable std::mutex mutex_;
  bool started_ = false, ended_ = false;
  size_t done_ = 0;
  usage total_;
  double engine_seconds_ = 0;
  std::function<void()> on_failure_;
};

/// The handle of an n-choice request: cancelling it cancels every choice.
class choice_handles final : public request_handle {
 public:
  void add(std::shared_ptr<request_handle> h);
  void cancel() override;

 private:
  std::mutex mutex_;
  std::vector<std::shared_ptr<request_handle>> members_;
};

/// Starts one request per choice of `req` (req.n > 1) with `start` (which starts one
/// request, after admission, and returns its handle or null), all in prefill group
/// `group` (non-zero) and merged into `sink`. The handle cancels every choice; the
/// first choice that fails stops the others.
std::shared_ptr<request_handle> start_choices(
    const generation_request& req, std::shared_ptr<client_sink> sink, uint64_t group,
    const std::function<std::shared_ptr<request_handle>(generation_request,
                                                        std::shared_ptr<client_sink>)>& start);

/// Member i of an n-choice request: n = 1, the prefill group, and the seed of choice i
/// (choice 0 keeps the request's seed, so it gives what n = 1 gives; the others draw
/// from seeds derived from it; unseeded requests stay unseeded).
generation_request choice_request(const generation_request& req, size_t i, uint64_t group);

}  // namespace conclave::serve
