// prefill_groups: requests that share one prompt (the n choices of one OpenAI request,
// sampling_params::prefill_group) run its prefill once. The first member an engine
// receives leads: it is queued at once. Members arriving while the leader's prompt is
// not yet computed are held back; once it is (or the leader ended), they are queued with
// the leader's rank preferred, and admission finds the prompt's full blocks in the
// prefix cache (block_manager), so each recomputes at most its last block. This is how
// vLLM serves n > 1 too: a parent request fanned out over the prefix cache.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/sequence.h"

namespace conclave::engine {

class prefill_groups {
 public:
  /// True when `seq` must wait for its group's leader (then it is held here); false when
  /// it may be queued now (it leads its group, or is in none, or its leader is done).
  bool hold(const std::shared_ptr<sequence>& seq);
  /// The held members whose leader has computed its prompt or ended, in arrival order,
  /// with preferred_rank set to the leader's rank; their groups are forgotten.
  std::vector<std::shared_ptr<sequence>> release();
  /// Drops a held member (it was aborted before being queued). False when not held.
  bool drop(int64_t id);
  bool contains(int64_t id) const;
  size_t num_held() const;

 private:
  struct group {
    std::shared_ptr<sequence> leader;
    std::vector<std::shared_ptr<sequence>> held;
  };
  static bool leader_done(const sequence& leader);
  std::unordered_map<uint64_t, group> groups_;
};

}  // namespace conclave::engine
