// serve/'s plain rules without actors: admission, the replica pool, the context limit,
// tool restarts, the memory-growth watch and the session guard's last-event promise.
#include <catch2/catch.hpp>

#include "serve/admission.h"
#include "serve/process_memory.h"
#include "serve/replica_pool.h"
#include "serve/request_setup.h"
#include "serve/session_guard.h"

using namespace conclave::serve;

TEST_CASE("admission: draining, then loading, then a full queue", "[serve]") {
  CHECK_FALSE(admission_error(false, true, 3, 4));
  auto drain = admission_error(true, false, 10, 4);
  REQUIRE(drain);
  CHECK(drain->status == 503);
  CHECK(drain->text == "the server is shutting down");
  auto loading = admission_error(false, false, 10, 4);
  REQUIRE(loading);
  CHECK(loading->status == 503);
  CHECK(loading->text == "the model is still loading; retry shortly");
  auto full = admission_error(false, true, 4, 4);
  REQUIRE(full);
  CHECK(full->status == 429);
  CHECK(full->error_code == "queue_full");
}

TEST_CASE("replica pool: cuda replicas take the lowest free device", "[serve]") {
  replica_pool pool;
  auto a = pool.add(true, 2);
  auto b = pool.add(true, 2);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->id == 0);
  CHECK(a->device == 2);
  CHECK(b->device == 3);
  // A drained replica gives its device back; a dead one keeps it.
  a->status->set_state(replica_state::drained);
  b->status->set_state(replica_state::dead);
  auto c = pool.add(true, 2);
  REQUIRE(c);
  CHECK(c->device == 2);
  CHECK(pool.add(false, 0)->device == -1);
  CHECK(pool.size() == 4);
  pool.stop();
  CHECK_FALSE(pool.add(true, 2));
}

TEST_CASE("replica pool: admitted once a replica was up, loaded while one serves", "[serve]") {
  replica_pool pool;
  auto r = pool.add(false, 0);
  CHECK_FALSE(pool.accepting());  // still loading
  CHECK_FALSE(pool.loaded());
  r->status->set_state(replica_state::up);
  r->status->set_healthy(true);
  CHECK(pool.accepting());
  CHECK(pool.loaded());
  // Restarting after a failure: requests wait for it instead of failing.
  r->status->count_restart();
  r->status->set_state(replica_state::restarting);
  CHECK(pool.accepting());
  CHECK_FALSE(pool.loaded());
}

TEST_CASE("context limit: the configured length, never above the model's", "[serve]") {
  CHECK(context_limit(0, 40960) == 40960);
  CHECK(context_limit(4096, 40960) == 4096);
  CHECK(context_limit(100000, 40960) == 40960);
}

TEST_CASE("tool restarts: twice per call, then an error result for the model", "[serve]") {
  tool_restarts r;
  const tool_call_request call{"call_1", "math", "{}"};
  CHECK_FALSE(r.on_down(call, "killed"));
  CHECK_FALSE(r.on_down(call, "killed"));
  CHECK(r.restarts("call_1") == max_tool_restarts);
  auto failed = r.on_down(call, "killed");
  REQUIRE(failed);
  CHECK(failed->call_id == "call_1");
  CHECK(failed->status == conclave::toolkit::outcome::retryable);
  CHECK(failed->content == "error: the tool stopped 3 times (killed)");
  r.clear();  // a new round starts its counts again
  CHECK_FALSE(r.on_down(call, "killed"));
}

TEST_CASE("memory watch: steady growth over ten readings is flagged", "[serve]") {
  memory_growth_watch w;
  for (int i = 0; i < 9; ++i) CHECK_FALSE(w.record(100 + i * 2));
  auto finding = w.record(120);
  REQUIRE(finding);
  CHECK(finding->find("100 -> 120 MiB") != std::string::npos);
  memory_growth_watch flat;
  for (int i = 0; i < 12; ++i) CHECK_FALSE(flat.record(i % 2 ? 100 : 101));
  CHECK_FALSE(flat.record(0));  // no reading
  CHECK(resident_mib() > 0);
}

namespace {
struct collecting_sink final : client_sink {
  std::vector<client_event> events;
  void push(client_event e) override { events.push_back(std::move(e)); }
};
}  // namespace

TEST_CASE("session guard: one last event, the reservation given back once", "[serve]") {
  auto client = std::make_shared<collecting_sink>();
  session_guard g(client);
  int given_back = 0;
  g.reserve([&] { ++given_back; });
  g.reserve([&] { given_back += 10; });  // a new engine: the old reservation goes back
  CHECK(given_back == 1);
  client_event done;
  done.type = client_event::kind::finished;
  g.push(done);
  g.push(client_event::error(500, "late", "server_error"));  // dropped: already ended
  g.on_exit("normal");
  CHECK(given_back == 11);
  g.release();
  CHECK(given_back == 11);
  REQUIRE(client->events.size() == 1);
  CHECK(client->events[0].type == client_event::kind::finished);

  // A session that dies before its last event: the client hears of it.
  auto other = std::make_shared<collecting_sink>();
  session_guard killed(other);
  killed.on_exit("killed");
  REQUIRE(other->events.size() == 1);
  CHECK(other->events[0].status == 500);
  CHECK(other->events[0].error_code == "session_stopped");
}

TEST_CASE("session counters: a request leaves the queue once, however it ends", "[serve]") {
  session_counters c;
  std::atomic<bool> a{true}, b{true};
  c.enter();
  c.enter();
  CHECK(c.active == 2);
  CHECK(c.queued == 2);
  c.leave_queue(a);  // its first token
  c.leave_queue(a);  // (a second time changes nothing)
  CHECK(c.queued == 1);
  c.leave(a);  // it ends
  c.leave(b);  // killed before its first token: still in the queue until now
  CHECK(c.active == 0);
  CHECK(c.queued == 0);
}

TEST_CASE("replica pool: a fault goes only to a replica that is up", "[serve]") {
  replica_pool pool;
  auto r = pool.add(false, 0);
  CHECK_FALSE(pool.inject(0, fault_kind::fail_step));  // starting: nothing held for later
  CHECK(r->status->take_fault() == fault_kind::none);
  r->status->set_state(replica_state::up);
  CHECK(pool.inject(0, fault_kind::crash_worker));
  CHECK(r->status->take_fault() == fault_kind::crash_worker);
  CHECK_THROWS_AS(pool.inject(1, fault_kind::fail_step), std::out_of_range);
  CHECK_THROWS_AS(pool.inject(-1, fault_kind::fail_step), std::out_of_range);
  REQUIRE(pool.snapshots().size() == 1);
  CHECK(pool.snapshots()[0].state == replica_state::up);
}
