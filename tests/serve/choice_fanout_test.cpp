// choice_fanout: n choices' events merged into one response — started once, every event
// tagged with its choice, a choice_end per choice then one finished with the usage of
// all; the first error ends it and stops the others; seeds per choice.
#include <catch2/catch.hpp>
#include <mutex>
#include <set>

#include "serve/choice_fanout.h"

using namespace conclave;
using kind = serve::client_event::kind;

namespace {

struct recorder final : serve::client_sink {
  std::mutex mu;
  std::vector<serve::client_event> events;
  void push(serve::client_event e) override {
    std::lock_guard lock(mu);
    events.push_back(std::move(e));
  }
};

serve::client_event event(kind k, std::string text = {}) {
  serve::client_event e;
  e.type = k;
  e.text = std::move(text);
  return e;
}

serve::client_event finished(int64_t prompt, int64_t completion, const char* reason) {
  auto e = event(kind::finished);
  e.tokens = {prompt, completion};
  e.finish_reason = reason;
  return e;
}

}  // namespace

TEST_CASE("choice_fanout merges the choices' events into one response", "[serve][choices]") {
  auto client = std::make_shared<recorder>();
  auto fan = std::make_shared<serve::choice_fanout>(client, 2);
  auto a = fan->member(0), b = fan->member(1);
  auto started = event(kind::started);
  started.tokens.prompt_tokens = 9;
  a->push(started);
  b->push(started);
  b->push(event(kind::content, "B"));
  a->push(event(kind::content, "A"));
  b->push(finished(9, 3, "stop"));
  CHECK_FALSE(fan->ended());
  a->push(finished(9, 5, "length"));
  CHECK(fan->ended());
  a->push(event(kind::content, "late"));  // after the end: dropped

  const auto& ev = client->events;
  REQUIRE(ev.size() == 6);
  CHECK(ev[0].type == kind::started);
  CHECK(ev[1].choice == 1);
  CHECK(ev[1].text == "B");
  CHECK(ev[2].choice == 0);
  CHECK(ev[3].type == kind::choice_end);
  CHECK(ev[3].choice == 1);
  CHECK(ev[3].finish_reason == "stop");
  CHECK(ev[4].type == kind::choice_end);
  CHECK(ev[4].choice == 0);
  CHECK(ev[4].finish_reason == "length");
  CHECK(ev[5].type == kind::finished);
  CHECK(ev[5].tokens.prompt_tokens == 9);      // once
  CHECK(ev[5].tokens.completion_tokens == 8);  // summed
}

TEST_CASE("choice_fanout: the first error ends the response and stops the others",
          "[serve][choices]") {
  auto client = std::make_shared<recorder>();
  auto fan = std::make_shared<serve::choice_fanout>(client, 3);
  int stopped = 0;
  fan->on_failure([&] { ++stopped; });
  fan->member(0)->push(event(kind::started));
  fan->member(2)->push(serve::client_event::error(503, "replica lost", "server_error"));
  fan->member(1)->push(serve::client_event::error(500, "second", "server_error"));
  fan->member(0)->push(finished(1, 1, "stop"));
  CHECK(stopped == 1);
  REQUIRE(client->events.size() == 2);
  CHECK(client->events[1].type == kind::error);
  CHECK(client->events[1].text == "replica lost");
  CHECK_THROWS_AS(fan->member(3), std::out_of_range);
  CHECK_THROWS_AS(serve::choice_fanout(client, 0), std::invalid_argument);
}

TEST_CASE("choice_request: choice 0 keeps the seed, the others get their own", "[serve][choices]") {
  serve::generation_request req;
  req.n = 4;
  req.sampling.seed = 42;
  std::set<uint64_t> seeds;
  for (size_t i = 0; i < 4; ++i) {
    const auto m = serve::choice_request(req, i, 99);
    CHECK(m.n == 1);
    CHECK(m.sampling.prefill_group == 99);
    REQUIRE(m.sampling.seed.has_value());
    seeds.insert(*m.sampling.seed);
    if (i == 0) CHECK(*m.sampling.seed == 42);
  }
  CHECK(seeds.size() == 4);
  req.sampling.seed.reset();
  CHECK_FALSE(serve::choice_request(req, 2, 99).sampling.seed.has_value());
}

TEST_CASE("choice_handles cancels every choice", "[serve][choices]") {
  struct counting final : serve::request_handle {
    int* n;
    explicit counting(int* c) : n(c) {}
    void cancel() override { ++*n; }
  };
  int cancelled = 0;
  serve::choice_handles h;
  for (int i = 0; i < 3; ++i) h.add(std::make_shared<counting>(&cancelled));
  h.add(nullptr);  // a choice refused at once has no handle
  h.cancel();
  CHECK(cancelled == 3);
}
