// node_session: one membership of a `conclave node` in a cluster (docs/cluster.md): an
// actor system with the middleman, connected through the local door relay to the
// coordinator's registry; the node_actor joins and hosts ranks until the connection is
// lost (coordinator gone, partition, or this process paused past the timeout) or the
// process stops. The caller rejoins with a fresh session: every rank of the old one is
// stopped with its actor system, so late results of a fenced incarnation never arrive.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "actors/rank_worker.h"

namespace conclave::actors {

struct node_session_options {
  uint16_t relay_port = 0;  ///< 127.0.0.1 port of the door relay
  std::filesystem::path model_dir;
  std::vector<rank_slot> slots;
  std::string host, version;
  double node_timeout_s = 5;
  int actor_threads = 4;
};

struct node_session_result {
  enum class kind { lost, refused, unreachable, stopped };
  kind status = kind::lost;
  std::string reason;
  bool joined = false;  ///< it was a member before it ended
};

/// Blocks until the session ends; `stop` (set from a signal handler) ends it. Ending a
/// session stops its ranks; a rank stuck in a device call or a collective could hold that
/// up for ever, so when the teardown takes longer than `teardown_limit`, `on_stuck` runs on
/// another thread (the node command exits or starts itself afresh: a process is the only
/// sure way to be rid of a stuck thread).
node_session_result run_node_session(const node_session_options& o, const std::atomic<bool>& stop,
                                     std::chrono::seconds teardown_limit,
                                     const std::function<void()>& on_stuck);

}  // namespace conclave::actors
