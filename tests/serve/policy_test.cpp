// serve/'s replica policies without actors: restart backoff, placement, the health
// verdict. (Moved from the actor tests when the rules moved to serve/.)
#include <catch2/catch.hpp>

#include "config/server_config.h"
#include "serve/health_tracker.h"
#include "serve/placement.h"
#include "serve/restart_policy.h"

using namespace conclave;
using namespace conclave::serve;
using namespace std::chrono_literals;

TEST_CASE("restart backoff doubles from 0.5 s to 30 s", "[serve]") {
  CHECK(restart_backoff(0) == 500ms);
  CHECK(restart_backoff(1) == 1000ms);
  CHECK(restart_backoff(2) == 2000ms);
  CHECK(restart_backoff(5) == 16000ms);
  CHECK(restart_backoff(6) == 30000ms);
  CHECK(restart_backoff(60) == 30000ms);
}

TEST_CASE(
    "restart tracker: backoff per consecutive failure, reset after a long run, gives up "
    "past max_restarts within the window",
    "[serve]") {
  restart_tracker t(/*max_restarts=*/3, /*window_s=*/60, /*backoff_s=*/0.5, /*backoff_max_s=*/30,
                    /*reset_after_s=*/60);
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  auto d = t.failed(t0);  // a bring-up that failed
  CHECK((!d.give_up && d.delay == 500ms && d.attempt == 1 && d.failures_in_window == 1));
  d = t.failed(t0 + 1s);
  CHECK((d.delay == 1000ms && d.attempt == 2));
  t.came_up(t0 + 3s);
  t.went_down(t0 + 10s);  // up for 7 s: no reset
  d = t.failed(t0 + 10s);
  CHECK((d.delay == 2000ms && d.attempt == 3 && d.failures_in_window == 3));
  d = t.failed(t0 + 20s);  // a fourth within 60 s
  CHECK((d.give_up && d.failures_in_window == 4));

  restart_tracker u(3, 60, 0.5, 30, 60);
  u.failed(t0);
  u.failed(t0 + 1s);
  u.came_up(t0 + 2s);
  u.went_down(t0 + 2s + 61s);  // served over a minute: the backoff starts over
  d = u.failed(t0 + 63s);
  CHECK((!d.give_up && d.delay == 500ms && d.attempt == 1));
  CHECK(d.failures_in_window == 1);  // the first two left the 60 s window
}

TEST_CASE("restart backoff follows replicas.restart_backoff_s and restart_backoff_max_s",
          "[serve]") {
  CHECK(restart_backoff(0, 0.1, 2.0) == 100ms);
  CHECK(restart_backoff(3, 0.1, 2.0) == 800ms);
  CHECK(restart_backoff(5, 0.1, 2.0) == 2000ms);
  CHECK(restart_backoff(1000, 0.1, 2.0) == 2000ms);
  CHECK(restart_backoff(4, 0.0, 0.0) == 0ms);  // restart at once
  config::replica_config rc;
  CHECK(rc.validate().empty());
  rc.restart_backoff_s = 40.0;  // above the 30 s default maximum
  CHECK(rc.validate() == "restart_backoff_max_s must be >= restart_backoff_s");
  rc.restart_backoff_s = -1.0;
  CHECK(rc.validate() == "restart_backoff_s must be >= 0");
}

TEST_CASE("router placement: least outstanding tokens, prefix affinity among equals", "[serve]") {
  const std::vector<int32_t> p1{1, 2, 3, 4}, p2{9, 9, 9, 9};
  const std::vector<int64_t> busy{100, 20, 50};
  CHECK(pick_engine(busy, p1, -1) == 1);
  CHECK(pick_engine(busy, p1, 1) == 2);  // a failed engine is skipped...
  const std::vector<int64_t> one{7};
  CHECK(pick_engine(one, p1, 0) == 0);  // ...unless it is the only one
  const std::vector<int64_t> idle{0, 0, 0, 0};
  const size_t a = pick_engine(idle, p1, -1);
  CHECK(pick_engine(idle, p1, -1) == a);  // the same prefix, the same replica
  std::vector<int32_t> longer = p1;
  longer.push_back(5);
  CHECK(pick_engine(idle, std::vector<int32_t>(65, 1), -1) ==
        pick_engine(idle, std::vector<int32_t>(80, 1), -1));  // only the first 64 count
  bool spread = false;  // different prefixes do not all land on one replica
  for (int32_t t = 0; t < 16; ++t) {
    const std::vector<int32_t> p{t, t + 1};
    spread |= pick_engine(idle, p, -1) != a;
  }
  CHECK(spread);
  (void)p2;
}

TEST_CASE("health tracker: consecutive failures, reset by any success", "[serve][health]") {
  health_tracker t(3);
  CHECK(!t.record(false));
  CHECK(!t.record(false));
  CHECK(!t.record(true));
  CHECK(t.consecutive_failures() == 0);
  CHECK(!t.record(false));
  CHECK(!t.record(false));
  CHECK(t.record(false));
  CHECK(t.consecutive_failures() == 0);  // counted again from zero after the verdict
}
