// live_actors: a thread-safe list of running actors of one kind (request sessions, tool
// invocations) under a name, so that operators and drills can find one to stop
// (POST /admin/fault kill_session / kill_tool). Entries remove themselves when their
// actor ends.
#pragma once

#include <caf/all.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "toolkit/tool.h"

namespace conclave::actors {

class live_actors : public std::enable_shared_from_this<live_actors> {
 public:
  /// What kill() stopped.
  struct killed {
    std::string name;
  };

  /// Lists `actor` under `name` until it ends. `stop`, when given, is set before the
  /// actor is killed (an actor blocked in a tool sees it and gives up its work).
  /// `working`, when given, tells whether the actor still does its job (a session that
  /// sent its request's last event is about to end: killing it would show nothing).
  void add(const caf::actor& actor, std::string name,
           std::shared_ptr<toolkit::cancel_flag> stop = nullptr,
           std::function<bool()> working = nullptr);
  /// Kills the working actor listed under `name`, or a random working one when `name` is
  /// empty; nothing when none matches. `draw` picks the random entry (a uniform index below n).
  std::optional<killed> kill(const std::string& name, uint64_t draw);
  size_t size() const;
  /// Every listed actor that still does its job.
  std::vector<caf::actor> working() const;

 private:
  struct entry {
    caf::actor actor;
    std::string name;
    std::shared_ptr<toolkit::cancel_flag> stop;
    std::function<bool()> working;
  };
  void remove(uint64_t key);

  mutable std::mutex mutex_;
  uint64_t next_key_ = 0;
  std::unordered_map<uint64_t, entry> entries_;
};

}  // namespace conclave::actors
