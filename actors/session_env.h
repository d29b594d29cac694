// session_env: what every request session of a service shares (the model's text side,
// server-side tools, the failover policy, metrics, counters, the running tool actors),
// and how the service builds it from its config.
#pragma once

#include <memory>

#include "actors/live_actors.h"
#include "config/server_config.h"
#include "model/model_config.h"
#include "serve/admission.h"
#include "serve/failover.h"
#include "serve/request_setup.h"

namespace conclave::actors {

/// What every session of a service shares.
struct session_env {
  std::shared_ptr<const serve::model_text> text;
  serve::server_tools tools;
  serve::failover_policy failover;
  std::shared_ptr<serve::server_metrics> metrics;  ///< may be null
  std::shared_ptr<serve::session_counters> counters;
  std::shared_ptr<live_actors> tool_list;  ///< running tool invocations (kill_tool)
};

/// Loads the model's text side (tokenizer, chat template) for `mc` and builds the shared
/// environment. Where the tokenizer knows fewer ids than the model's vocabulary (padded
/// embedding rows) and cfg.engine.sampling_vocab_size is unset, sets it to the tokenizer's
/// size, so no id without text is ever sampled.
std::shared_ptr<session_env> make_session_env(config::server_config& cfg,
                                              const model::model_config& mc,
                                              std::shared_ptr<serve::server_metrics> metrics);

}  // namespace conclave::actors
