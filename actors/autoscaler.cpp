// The autoscaler's loop: sample, decide, act, sleep until the next interval.
#include "actors/autoscaler.h"

#include <spdlog/spdlog.h>

#include "serve/live_stats.h"

namespace conclave::actors {

caf::behavior autoscaler(caf::stateful_actor<autoscaler_state>* self, config::autoscale_config cfg,
                         std::shared_ptr<serve::load_source> source,
                         std::shared_ptr<scaling_target> pool) {
  auto& st = self->state;
  const auto interval = std::chrono::duration_cast<caf::actor_clock::duration_type>(
      std::chrono::duration<double>(cfg.interval_s));
  st.policy.emplace(std::move(cfg));
  st.source = std::move(source);
  st.pool = std::move(pool);
  st.start = self->clock().now();
  st.source->sample();  // the baseline busy times the first interval is measured against
  self->delayed_send(self, interval, scale_tick_atom::value);
  return {
      [self, interval](scale_tick_atom) {
        auto& s = self->state;
        const double now_s = std::chrono::duration<double>(self->clock().now() - s.start).count();
        s.last = s.policy->decide(s.source->sample(), now_s);
        switch (s.last.what) {
          case serve::autoscale_decision::action::scale_up:
            spdlog::info("autoscaler: adding a replica ({})", s.last.reason);
            s.pool->note("adding a replica (" + s.last.reason + ")");
            s.pool->add_replica();
            break;
          case serve::autoscale_decision::action::scale_down:
            spdlog::info("autoscaler: removing replica {} ({})", s.last.replica, s.last.reason);
            s.pool->note("removing replica " + std::to_string(s.last.replica) + " (" +
                         s.last.reason + ")");
            s.pool->drain_replica(s.last.replica);
            break;
          case serve::autoscale_decision::action::hold:
            spdlog::debug("autoscaler: hold ({})", s.last.reason);
            break;
        }
        self->delayed_send(self, interval, scale_tick_atom::value);
      },
  };
}

namespace {

/// The autoscaler's hands: the service adds and drains replicas.
class service_target final : public scaling_target {
 public:
  service_target(serve::service* svc, std::shared_ptr<serve::server_metrics> metrics)
      : svc_(svc), metrics_(std::move(metrics)) {}
  void add_replica() override { svc_->add_replica(); }
  void drain_replica(int id) override { svc_->drain_replica(id); }
  void note(const std::string& decision) override {
    metrics_->live().add_event("autoscaler", svc_->model_name() + ": " + decision);
  }

 private:
  serve::service* svc_;  // outlives the actor system, and so the autoscaler
  std::shared_ptr<serve::server_metrics> metrics_;
};

}  // namespace

std::shared_ptr<scaling_target> service_scaling_target(
    serve::service* svc, std::shared_ptr<serve::server_metrics> metrics) {
  return std::make_shared<service_target>(svc, std::move(metrics));
}

}  // namespace conclave::actors
