// Registration through attach_functor: the entry leaves the list when the actor ends,
// whatever ends it.
#include "actors/live_actors.h"

#include <vector>

namespace conclave::actors {

void live_actors::add(const caf::actor& actor, std::string name,
                      std::shared_ptr<toolkit::cancel_flag> stop, std::function<bool()> working) {
  if (!actor) return;
  uint64_t key = 0;
  {
    std::lock_guard lock(mutex_);
    key = next_key_++;
    entries_.emplace(key, entry{actor, std::move(name), std::move(stop), std::move(working)});
  }
  // Runs at once when the actor has already ended.
  std::weak_ptr<live_actors> self = weak_from_this();
  caf::actor_cast<caf::abstract_actor*>(actor)->attach_functor([self, key] {
    if (auto list = self.lock()) list->remove(key);
  });
}

void live_actors::remove(uint64_t key) {
  std::lock_guard lock(mutex_);
  entries_.erase(key);
}

std::optional<live_actors::killed> live_actors::kill(const std::string& name, uint64_t draw) {
  entry victim;
  {
    std::lock_guard lock(mutex_);
    std::vector<const entry*> candidates;
    for (const auto& [key, e] : entries_) {
      if ((name.empty() || e.name == name) && (!e.working || e.working())) candidates.push_back(&e);
    }
    if (candidates.empty()) return std::nullopt;
    victim = *candidates[draw % candidates.size()];
  }
  if (victim.stop) victim.stop->cancel();
  caf::anon_send_exit(victim.actor, caf::exit_reason::kill);
  return killed{victim.name};
}

std::vector<caf::actor> live_actors::working() const {
  std::lock_guard lock(mutex_);
  std::vector<caf::actor> out;
  for (const auto& [key, e] : entries_) {
    if (!e.working || e.working()) out.push_back(e.actor);
  }
  return out;
}

size_t live_actors::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace conclave::actors
