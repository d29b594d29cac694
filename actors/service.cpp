// The service: actor system lifecycle and request admission.
#include "actors/service.h"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include "actors/replica_supervisor.h"
#include "actors/request_session.h"
#include "actors/router.h"
#include "model/checkpoint.h"

namespace conclave::actors {

struct inference_service::handles {
  caf::actor router;
  caf::actor supervisor;
};

namespace {

class session_handle final : public request_handle {
 public:
  explicit session_handle(caf::actor session) : session_(std::move(session)) {}
  void cancel() override {
    if (!cancelled_.exchange(true)) caf::anon_send(session_, cancel_atom::value);
  }

 private:
  caf::actor session_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace

inference_service::inference_service(const config::server_config& cfg,
                                     std::shared_ptr<server_metrics> metrics)
    : cfg_(cfg),
      metrics_(std::move(metrics)),
      counters_(std::make_shared<session_counters>()),
      ready_(std::make_shared<std::atomic<bool>>(false)) {
  // Validate the checkpoint now so a bad folder fails at startup with its one-line error.
  const model::checkpoint ckpt(cfg_.model_dir);
  const auto& mc = ckpt.config();
  text_ = std::make_shared<text_resources>();
  text_->tok = std::make_shared<const tokenizer::tokenizer>(
      tokenizer::tokenizer::from_file(cfg_.tokenizer_path));
  text_->eos_ids = mc.eos_token_ids;
  text_->max_model_len = cfg_.engine.max_model_len > 0
                             ? std::min(cfg_.engine.max_model_len, mc.max_position_embeddings)
                             : mc.max_position_embeddings;
  model_name_ = cfg_.served_model_name;
  // Never sample an id the tokenizer cannot turn into text (padded embedding rows).
  if (cfg_.engine.sampling_vocab_size == 0 &&
      text_->tok->vocab_size() < static_cast<size_t>(mc.vocab_size)) {
    cfg_.engine.sampling_vocab_size = static_cast<int64_t>(text_->tok->vocab_size());
  }

  system_cfg_ = std::make_unique<caf::actor_system_config>();
  system_cfg_->set("scheduler.max-threads", cfg_.actor_threads);
  system_cfg_->set("logger.verbosity", caf::atom("quiet"));
  system_ = std::make_unique<caf::actor_system>(*system_cfg_);
  actors_ = std::make_unique<handles>();
  // (Spawning with no arguments trips UBSan inside CAF 0.17's empty-tuple path.)
  actors_->router = system_->spawn(router_actor, std::vector<caf::actor>{});
  const std::string dir = cfg_.model_dir;
  const auto backend_cfg = cfg_.engine.backend;
  backend_factory factory = [dir, backend_cfg]() -> std::shared_ptr<gpu::backend> {
    const model::checkpoint c(dir);
    return gpu::make_backend(c, backend_cfg);
  };
  actors_->supervisor = system_->spawn<caf::detached>(
      replica_supervisor, std::move(factory), cfg_.engine, metrics_, actors_->router, ready_);
}

inference_service::~inference_service() {
  shutdown();
}

void inference_service::shutdown() {
  if (!system_) return;
  ready_->store(false);
  draining_.store(true);
  // The supervisor takes its engine and worker down; sessions watching the engine end.
  caf::anon_send_exit(actors_->supervisor, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(actors_->router, caf::exit_reason::user_shutdown);
  actors_.reset();
  system_.reset();  // waits for all actors to finish
}

int64_t inference_service::max_model_len() const {
  return text_->max_model_len;
}
int64_t inference_service::active_requests() const {
  return counters_->active.load();
}
int64_t inference_service::queued_requests() const {
  return counters_->queued.load();
}

std::shared_ptr<request_handle> inference_service::submit(generation_request req,
                                                          std::shared_ptr<client_sink> sink) {
  if (draining_.load()) {
    sink->push(client_event::error(503, "the server is shutting down", "service_unavailable"));
    return nullptr;
  }
  if (!ready_->load()) {
    sink->push(client_event::error(503, "the model is still loading; retry shortly",
                                   "service_unavailable"));
    return nullptr;
  }
  if (counters_->queued.load() >= cfg_.max_waiting) {
    sink->push(client_event::error(429, "too many requests are waiting; retry later",
                                   "rate_limit_error", {}, "queue_full"));
    return nullptr;
  }
  auto session = system_->spawn(request_session, std::move(req), std::move(sink), text_,
                                actors_->router, metrics_, counters_);
  return std::make_shared<session_handle>(std::move(session));
}

}  // namespace conclave::actors
