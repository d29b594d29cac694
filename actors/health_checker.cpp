// Heartbeats and probe generations for one replica (see the header).
#include "actors/health_checker.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "serve/process_memory.h"

namespace conclave::actors {
namespace {

using checker_ptr = caf::stateful_actor<health_checker_state>*;

caf::actor_clock::duration_type seconds(double s) {
  return std::chrono::duration_cast<caf::actor_clock::duration_type>(
      std::chrono::duration<double>(s));
}

double ms_since(checker_ptr self, caf::actor_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(self->clock().now() - t).count();
}

void record(checker_ptr self, const char* check, bool ok, double latency_ms, std::string detail) {
  auto& st = self->state;
  st.status->add_health({std::chrono::system_clock::now(), check, ok, latency_ms, detail});
  st.status->set_healthy(ok);
  if (!ok) spdlog::warn("replica {}: {} failed: {}", st.status->id(), check, detail);
  if (st.tracker->record(ok)) {
    spdlog::error("replica {}: {} consecutive failed health checks; restarting it", st.status->id(),
                  st.rc.unhealthy_after);
    self->send(st.supervisor, restart_atom::value);
    st.engine = nullptr;  // until the supervisor names the next one
    st.probe_id = 0;
  }
}

void end_probe(checker_ptr self) {
  auto& st = self->state;
  st.probe_id = 0;
  st.probe_seq = -1;
  st.probe_tokens = 0;
}

/// Flags steady growth of resident memory across the last ten probes (> 10 %).
void watch_memory(checker_ptr self) {
  auto& st = self->state;
  if (auto finding = st.memory.record(serve::resident_mib()))
    st.status->add_health({std::chrono::system_clock::now(), "memory", false, 0, *finding});
}

void start_probe(checker_ptr self) {
  auto& st = self->state;
  if (!st.engine || st.probe_id != 0) return;
  st.probe_id = ++st.probes_started;
  const uint64_t id = st.probe_id;
  st.probe_start = self->clock().now();
  engine::sampling_params p;
  p.temperature = 0;
  p.max_tokens = probe_tokens;
  p.ignore_eos = true;
  self->request(st.engine, seconds(st.rc.probe_timeout_s), submit_atom::value,
                engine_submit{st.probe_prompt, p, caf::actor_cast<caf::actor>(self), {}, {}})
      .then(
          [self, id](const submit_reply& r) {
            auto& s = self->state;
            if (s.probe_id != id) return;
            if (!r.error.empty()) {
              end_probe(self);
              return record(self, "probe", false, 0, "refused: " + r.error);
            }
            s.probe_seq = r.seq_id;
          },
          [self, id](caf::error& err) {
            if (self->state.probe_id != id) return;
            end_probe(self);
            if (err == caf::sec::request_receiver_down) return;  // gone, not unhealthy
            record(self, "probe", false, 0, "submit failed: " + self->system().render(err));
          });
  self->delayed_send(self, seconds(st.rc.probe_timeout_s), probe_timeout_atom::value, id);
  watch_memory(self);
}

}  // namespace

caf::behavior health_checker(checker_ptr self, std::shared_ptr<serve::replica_status> status,
                             caf::actor supervisor, std::vector<int32_t> probe_prompt,
                             config::replica_config rc) {
  auto& st = self->state;
  st.status = std::move(status);
  st.supervisor = std::move(supervisor);
  st.probe_prompt = std::move(probe_prompt);
  st.rc = rc;
  st.tracker.emplace(rc.unhealthy_after);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& s = self->state;
    if (s.engine && msg.source == s.engine.address()) {
      s.engine = nullptr;
      end_probe(self);
    }
  });
  if (rc.heartbeat_interval_s > 0)
    self->delayed_send(self, seconds(rc.heartbeat_interval_s), heartbeat_atom::value);
  if (rc.probe_interval_s > 0 && !st.probe_prompt.empty())
    self->delayed_send(self, seconds(rc.probe_interval_s), probe_atom::value);
  return {
      [self](watch_atom, caf::actor engine) {
        auto& s = self->state;
        // A fresh engine starts with a clean record; a dead one is the supervisor's
        // business, not a health verdict.
        s.engine = std::move(engine);
        self->monitor(s.engine);
        s.tracker.emplace(s.rc.unhealthy_after);
        end_probe(self);
      },
      [self](heartbeat_atom) {
        auto& s = self->state;
        self->delayed_send(self, seconds(s.rc.heartbeat_interval_s), heartbeat_atom::value);
        if (!s.engine) return;
        const auto t0 = self->clock().now();
        const caf::actor engine = s.engine;
        self->request(engine, seconds(s.rc.heartbeat_interval_s), stats_atom::value)
            .then(
                [self, t0](const stats_msg&) {
                  record(self, "heartbeat", true, ms_since(self, t0), {});
                },
                [self, t0, engine](caf::error& err) {
                  // Gone (not slow): the supervisor restarts it; nothing to judge.
                  if (self->state.engine != engine || err == caf::sec::request_receiver_down)
                    return;
                  record(self, "heartbeat", false, ms_since(self, t0),
                         "no answer: " + self->system().render(err));
                });
      },
      [self](probe_atom) {
        self->delayed_send(self, seconds(self->state.rc.probe_interval_s), probe_atom::value);
        start_probe(self);
      },
      [self](token_atom, const token_msg& t) {
        auto& s = self->state;
        if (s.probe_id == 0 || t.seq_id != s.probe_seq) return;
        ++s.probe_tokens;
        if (!t.finished) return;
        const double ms = ms_since(self, s.probe_start);
        const int32_t got = s.probe_tokens;
        end_probe(self);
        record(self, "probe", got == probe_tokens, ms,
               got == probe_tokens ? std::string()
                                   : fmt::format("{} of {} tokens", got, probe_tokens));
      },
      [self](probe_timeout_atom, uint64_t id) {
        auto& s = self->state;
        if (s.probe_id != id) return;
        if (s.engine && s.probe_seq >= 0) self->send(s.engine, cancel_atom::value, s.probe_seq);
        end_probe(self);
        record(self, "probe", false, s.rc.probe_timeout_s * 1e3,
               fmt::format("no answer within {:.1f} s", s.rc.probe_timeout_s));
      },
      [self](failed_atom, const failure_msg&) {
        end_probe(self);  // the replica failed: its supervisor restarts it
      },
  };
}

}  // namespace conclave::actors
