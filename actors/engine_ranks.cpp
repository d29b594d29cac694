// The expert-parallel half of the engine actor: a step fanned out to the replica's ranks
// and their answers joined, and a new expert placement switched in between two steps.
#include <spdlog/spdlog.h>

#include "actors/engine_actor_parts.h"
#include "actors/rank_step_plan.h"

namespace conclave::actors {

void apply_placement(engine_ptr self) {
  auto& st = self->state;
  st.applying = true;
  auto map = std::move(*st.next_placement);
  st.next_placement.reset();
  auto pending = std::make_shared<size_t>(st.opts.ranks.size());
  auto failed = std::make_shared<bool>(false);
  const uint64_t version = map.version;
  for (auto& r : st.opts.ranks) {
    self->request(r, st.opts.step_timeout, placement_atom::value, map)
        .then(
            [self, pending, failed, version](uint64_t) {
              if (*failed || --*pending > 0) return;
              auto& s = self->state;
              s.applying = false;
              s.opts.placement_version = version;
              spdlog::info("engine: replica {} switched to placement v{}", s.opts.replica, version);
              s.placement_promise.deliver(version);
              kick(self);
            },
            [self, failed](caf::error& err) {
              if (*failed) return;
              *failed = true;
              self->state.placement_promise.deliver(err);
              fail_step(self, err);
            });
  }
}

void send_to_ranks(engine_ptr self, std::shared_ptr<engine::pending_step> step,
                   std::chrono::steady_clock::time_point t0, serve::fault_kind fault) {
  auto& st = self->state;
  const int ranks = static_cast<int>(st.opts.ranks.size());
  struct fan_in {
    std::vector<engine::rank_batch> parts;
    std::vector<gpu::step_output> outputs;
    std::vector<std::vector<int64_t>> load;  ///< summed over ranks when asked for
    size_t pending = 0;
    bool failed = false;
  };
  auto f = std::make_shared<fan_in>();
  f->parts = engine::split_by_rank(step->batch, step->entry_rank, ranks);
  f->outputs.resize(static_cast<size_t>(ranks));
  f->pending = static_cast<size_t>(ranks);
  const uint64_t step_no = ++st.steps;
  if (fault == serve::fault_kind::crash_worker) {
    spdlog::warn("engine: injected crash of rank 0");
    self->send_exit(st.opts.ranks[0], caf::exit_reason::kill);
  }
  for (int r = 0; r < ranks; ++r) {
    auto msg =
        make_rank_step(f->parts[static_cast<size_t>(r)], step->transfer(r), st.opts.epoch, step_no,
                       st.opts.placement_version, st.opts.expert_group && step_no % 16 == 0);
    if (fault == serve::fault_kind::fail_step && r == 0) msg.epoch = ~uint64_t{0};
    self->request(st.opts.ranks[static_cast<size_t>(r)], st.opts.step_timeout,
                  rank_step_atom::value, std::move(msg))
        .then(
            [self, step, t0, f, r, step_no](rank_step_done& done) {
              if (f->failed) return;
              if (done.step != step_no) {
                f->failed = true;
                return fail_step(
                    self, caf::make_error(caf::sec::runtime_error, "a rank answered another step"));
              }
              f->outputs[static_cast<size_t>(r)] = rank_output(done);
              if (!done.expert_load.empty()) add_expert_load(f->load, done.expert_load);
              if (--f->pending > 0) return;
              if (!f->load.empty() && self->state.opts.expert_group)
                self->send(self->state.opts.expert_group, expert_load_atom::value,
                           std::move(f->load));
              gpu::step_output merged;
              try {
                engine::merge_rank_outputs(f->parts, f->outputs, merged);
              } catch (const std::exception& e) {
                f->failed = true;
                return fail_step(self, caf::make_error(caf::sec::runtime_error, e.what()));
              }
              finish_step(self, *step, merged, t0);
            },
            [self, f](caf::error& err) {
              if (f->failed) return;
              f->failed = true;
              fail_step(self, err);
            });
  }
}

}  // namespace conclave::actors
