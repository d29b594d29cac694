// The autoscaling rule. Reasons are written for the log line an operator reads when the
// cluster changed size, or did not.
#include "serve/autoscale_policy.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <tuple>

namespace conclave::serve {

const char* to_string(autoscale_decision::action a) {
  switch (a) {
    case autoscale_decision::action::hold:
      return "hold";
    case autoscale_decision::action::scale_up:
      return "scale_up";
    case autoscale_decision::action::scale_down:
      return "scale_down";
  }
  return "unknown";
}

namespace {

autoscale_decision hold(std::string why) {
  return {autoscale_decision::action::hold, -1, std::move(why)};
}

/// Up, starting or restarting: a replica that serves or will.
bool live(replica_state s) {
  return s == replica_state::up || s == replica_state::starting || s == replica_state::restarting;
}

}  // namespace

autoscale_decision autoscale_policy::decide(const cluster_load& load, double now_s) {
  int32_t n_live = 0, n_up = 0;
  double util_sum = 0;
  const replica_load* changing = nullptr;  // a scaling step still under way
  for (const auto& r : load.replicas) {
    if (live(r.state)) ++n_live;
    if (r.state == replica_state::up) {
      ++n_up;
      util_sum += std::clamp(r.utilization, 0.0, 1.0);
    }
    if (r.state == replica_state::starting || r.state == replica_state::draining) changing = &r;
  }
  const bool cooling = acted_ && now_s - last_action_s_ < cfg_.cooldown_s;
  const auto act = [&](autoscale_decision d) {
    acted_ = true;
    last_action_s_ = now_s;
    up_streak_ = down_streak_ = 0;
    return d;
  };

  // Evidence counts only while the set of replicas stands still.
  if (changing != nullptr) {
    up_streak_ = down_streak_ = 0;
    return hold(fmt::format("replica {} is {}", changing->id, to_string(changing->state)));
  }
  if (n_live < cfg_.min_replicas) {
    if (cooling) return hold("below min_replicas, in cooldown");
    return act({autoscale_decision::action::scale_up, -1,
                fmt::format("{} live replicas, below min_replicas {}", n_live, cfg_.min_replicas)});
  }
  if (n_up == 0) {
    up_streak_ = down_streak_ = 0;
    return hold("no replica is up");
  }

  const double util = util_sum / n_up;
  const bool want_up = util > cfg_.scale_up_utilization && load.waiting > cfg_.scale_up_waiting;
  const bool want_down = util < cfg_.scale_down_utilization;
  up_streak_ = want_up ? up_streak_ + 1 : 0;
  down_streak_ = want_down ? down_streak_ + 1 : 0;
  const std::string figures =
      fmt::format("utilisation {:.0f} % over {} up, {} waiting", util * 100, n_up, load.waiting);

  if (want_up) {
    if (n_live >= cfg_.max_replicas)
      return hold(fmt::format("{}; at max_replicas {}", figures, cfg_.max_replicas));
    if (cooling) return hold(figures + "; in cooldown");
    if (up_streak_ < cfg_.sustain_intervals)
      return hold(fmt::format("{}; high for {} of {} intervals", figures, up_streak_,
                              cfg_.sustain_intervals));
    return act({autoscale_decision::action::scale_up, -1,
                fmt::format("{} > {:.0f} % with > {} waiting", figures,
                            cfg_.scale_up_utilization * 100, cfg_.scale_up_waiting)});
  }
  if (want_down) {
    if (n_live <= cfg_.min_replicas)
      return hold(fmt::format("{}; at min_replicas {}", figures, cfg_.min_replicas));
    if (n_up < 2) return hold(figures + "; no other replica up to take the load");
    // The same work on one replica fewer must stay below the scale-up threshold, or the
    // next interval would undo this one.
    const double after = util_sum / (n_up - 1);
    if (after > cfg_.scale_up_utilization)
      return hold(
          fmt::format("{}; on {} replicas it would be {:.0f} %", figures, n_up - 1, after * 100));
    if (cooling) return hold(figures + "; in cooldown");
    if (down_streak_ < cfg_.sustain_intervals)
      return hold(fmt::format("{}; low for {} of {} intervals", figures, down_streak_,
                              cfg_.sustain_intervals));
    // The least loaded up replica: least busy, then fewest sequences, then the newest.
    const replica_load* pick = nullptr;
    for (const auto& r : load.replicas) {
      if (r.state != replica_state::up) continue;
      const auto key = [](const replica_load& x) {
        return std::make_tuple(std::clamp(x.utilization, 0.0, 1.0), x.running + x.waiting, -x.id);
      };
      if (pick == nullptr || key(r) < key(*pick)) pick = &r;
    }
    return act({autoscale_decision::action::scale_down, pick->id,
                fmt::format("{} < {:.0f} %; draining replica {}, the least loaded", figures,
                            cfg_.scale_down_utilization * 100, pick->id)});
  }
  return hold(figures);
}

}  // namespace conclave::serve
