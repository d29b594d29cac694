// engine_actor: the engine of one model replica, a thin shell around
// engine::llm_engine. It schedules steps, sends each to the replica's gpu_worker (one
// message round trip per step), streams sampled tokens to request sessions, and ends
// the replica when a step fails or outlives the watchdog. Requests and cancels join at
// step boundaries; the engine never blocks.
#pragma once

#include <caf/all.hpp>
#include <chrono>
#include <memory>
#include <optional>

#include "actors/messages.h"
#include "config/engine_config.h"
#include "gpu/expert_map.h"
#include "serve/server_metrics.h"

namespace conclave::actors {

/// The engine actor. Handles:
///   (submit_atom, engine_submit) -> submit_reply
///   (cancel_atom, int64_t seq_id)
///   (stats_atom) -> stats_msg
///   (drain_atom) -> drain_atom, once no request runs (submits still join meanwhile)
///   (placement_atom, expert_map) -> uint64_t version, once every rank switched to it
///     between two steps (expert-parallel replicas)
/// Sessions receive (token_atom, token_msg) per token and (failed_atom, failure_msg) if
/// the replica fails. Exits with the worker's error when a step fails.
/// What an engine needs beyond its model: where to report, and its watchdog.
struct engine_actor_options {
  int replica = 0;
  std::shared_ptr<serve::replica_status> status;  ///< may be null (tests)
  /// Watchdog: a step that takes longer ends the engine (and with it the replica) with
  /// sec::request_timeout; its requests fail over.
  std::chrono::milliseconds step_timeout{std::chrono::minutes(2)};
  double hang_s = 0;  ///< length of an injected hang
  /// An expert-parallel replica (docs/cluster.md): its rank workers, in rank order. Each
  /// step is cut by rank and sent to every rank (idle ones too); then `worker` is unused.
  std::vector<caf::actor> ranks;
  uint64_t epoch = 0;              ///< the replica incarnation the ranks belong to
  uint64_t placement_version = 0;  ///< the placement every rank holds
  caf::actor expert_group;         ///< gets the per-expert token counts; may be null
};

caf::behavior engine_actor(caf::stateful_actor<struct engine_state>* self, gpu_worker_actor worker,
                           model::model_config model, gpu::kv_cache_shape kv,
                           config::engine_config cfg,
                           std::shared_ptr<serve::server_metrics> metrics,
                           engine_actor_options opts);

struct engine_state {
  std::unique_ptr<engine::llm_engine> eng;
  gpu_worker_actor worker;
  std::unordered_map<int64_t, caf::actor> sessions;
  std::unordered_map<caf::actor_addr, int64_t> seq_of_session;  ///< to abort a dead one's
  /// Per sequence: seconds of the steps it ran in since its last token was sent (a
  /// chunked prompt runs in several steps before it samples).
  std::unordered_map<int64_t, double> unsent_step_seconds;
  std::shared_ptr<serve::server_metrics> metrics;
  engine_actor_options opts;
  engine::engine_stats reported;  ///< the stats last published to the metrics
  bool in_flight = false;
  uint64_t steps = 0;  ///< steps sent to ranks (rank_step::step)
  /// A placement to apply before the next step, and who waits for it.
  std::optional<gpu::expert_map> next_placement;
  caf::response_promise placement_promise;
  bool applying = false;  ///< ranks are switching placement: no step starts
  std::vector<caf::response_promise> drain_waiters;  ///< answered when sessions is empty
  static inline const char* name = "engine";
};

}  // namespace conclave::actors
