// Holding a prompt's other choices back until its prefill ran (see the header).
#include "engine/prefill_groups.h"

#include <algorithm>

namespace conclave::engine {

bool prefill_groups::leader_done(const sequence& leader) {
  return leader.status == sequence_status::finished ||
         leader.num_computed >= leader.num_prompt_tokens();
}

bool prefill_groups::hold(const std::shared_ptr<sequence>& seq) {
  const uint64_t key = seq->params().prefill_group;
  if (key == 0) return false;
  auto it = groups_.find(key);
  if (it == groups_.end()) {
    groups_.emplace(key, group{seq, {}});  // the first to arrive leads
    return false;
  }
  if (leader_done(*it->second.leader)) {
    seq->preferred_rank = it->second.leader->rank;
    return false;
  }
  it->second.held.push_back(seq);
  return true;
}

std::vector<std::shared_ptr<sequence>> prefill_groups::release() {
  std::vector<std::shared_ptr<sequence>> out;
  for (auto it = groups_.begin(); it != groups_.end();) {
    const sequence& leader = *it->second.leader;
    if (!leader_done(leader)) {
      ++it;
      continue;
    }
    for (auto& s : it->second.held) {
      // A leader that ended before its prompt was computed leaves nothing to share.
      if (leader.status != sequence_status::finished || leader.num_computed > 0)
        s->preferred_rank = leader.rank;
      out.push_back(std::move(s));
    }
    it = groups_.erase(it);
  }
  // Arrival order (ids grow) across groups.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->id() < b->id(); });
  return out;
}

bool prefill_groups::drop(int64_t id) {
  for (auto& [key, g] : groups_) {
    auto it =
        std::find_if(g.held.begin(), g.held.end(), [id](const auto& s) { return s->id() == id; });
    if (it != g.held.end()) {
      (*it)->status = sequence_status::finished;
      (*it)->finish = finish_reason::aborted;
      g.held.erase(it);
      return true;
    }
  }
  return false;
}

bool prefill_groups::contains(int64_t id) const {
  for (const auto& [key, g] : groups_) {
    for (const auto& s : g.held)
      if (s->id() == id) return true;
  }
  return false;
}

size_t prefill_groups::num_held() const {
  size_t n = 0;
  for (const auto& [key, g] : groups_) n += g.held.size();
  return n;
}

}  // namespace conclave::engine
