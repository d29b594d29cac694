// The journal of resumable streams (serve/stream_journal.h): batched writes, a run
// resumed from the store, and a store that fails for a while.
#include <catch2/catch.hpp>

#include "serve/stream_journal.h"
#include "tests/store/flaky_store.h"

using namespace conclave;
using conclave::test::flaky_store;

namespace {

store::journal_entry header(const std::string& id) {
  store::journal_entry e;
  e.id = id;
  e.key_id = "key-1";
  e.route = "chat";
  e.body = R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true})";
  e.seed = 42;
  e.created = 1700000000;
  return e;
}

}  // namespace

TEST_CASE("stream journal: events are written in batches, and a written ended stream leaves memory",
          "[journal]") {
  auto backing = std::make_shared<flaky_store>();
  serve::stream_journal j(backing, 600);
  const int64_t now = 1'800'000'000'000;
  j.begin(header("s1"));
  for (int i = 1; i <= 50; ++i) j.append("s1", i, "chunk " + std::to_string(i));
  j.append("s1", 50, "chunk 50 again");  // a second run of the stream: not kept twice
  j.append("s1", 52, "a gap");
  CHECK(backing->journal_writes == 0);       // nothing per event
  CHECK(j.find("s1")->events.size() == 50);  // memory has them before any flush
  REQUIRE(j.flush(now));
  CHECK(backing->journal_writes == 1);  // one write for all 50
  auto stored = backing->inner->journal("s1");
  REQUIRE(stored);
  CHECK(stored->events.size() == 50);
  CHECK(stored->events.back() == "chunk 50");
  CHECK_FALSE(stored->finished);
  CHECK(stored->body == header("s1").body);
  CHECK(stored->expires_ms == now + 600'000);
  CHECK(j.flush(now));  // nothing changed: no write
  CHECK(backing->journal_writes == 1);

  j.append("s1", 51, "chunk 51");
  j.end("s1", true);
  REQUIRE(j.flush(now + 1000));
  stored = backing->inner->journal("s1");
  CHECK(stored->events.size() == 51);
  CHECK(stored->events.back() == "chunk 51");
  CHECK(stored->finished);
  CHECK(j.held() == 0);                      // all of it is in the store
  CHECK(j.find("s1")->events.size() == 51);  // found there
}

TEST_CASE("stream journal: a run resumed from the store carries on its events", "[journal]") {
  auto backing = std::make_shared<flaky_store>();
  {
    serve::stream_journal first(backing, 600);
    first.begin(header("s2"));
    first.append("s2", 1, "a");
    first.append("s2", 2, "b");
    REQUIRE(first.flush());
    first.append("s2", 3, "c");  // never written: the process dies here
  }
  serve::stream_journal after_restart(backing, 600);
  auto found = after_restart.find("s2");
  REQUIRE(found);
  CHECK(found->events == std::vector<std::string>{"a", "b"});
  CHECK_FALSE(found->finished);
  after_restart.begin(*found);
  after_restart.append("s2", 3, "c");
  after_restart.append("s2", 4, "d");
  after_restart.end("s2", true);
  REQUIRE(after_restart.flush());
  CHECK(backing->inner->journal("s2")->events == std::vector<std::string>{"a", "b", "c", "d"});
}

TEST_CASE("stream journal: a store that fails keeps the streams in memory until it works again",
          "[journal]") {
  auto backing = std::make_shared<flaky_store>();
  serve::stream_journal j(backing, 600);
  const int64_t now = 1'800'000'000'000;
  backing->down = true;
  j.begin(header("s3"));
  j.append("s3", 1, "x");
  j.end("s3", true);
  CHECK_FALSE(j.flush(now));
  CHECK(j.held() == 1);
  CHECK(j.find("s3")->events == std::vector<std::string>{"x"});  // from memory
  backing->down = false;
  REQUIRE(j.flush(now + 1000));
  CHECK(j.held() == 0);
  CHECK(backing->inner->journal("s3")->finished);

  // Down for longer than streams are kept: an ended stream is dropped from memory.
  backing->down = true;
  j.begin(header("s4"));
  j.end("s4", false);
  CHECK_FALSE(j.flush(now));
  CHECK_FALSE(j.flush(now + 601'000));
  CHECK(j.held() == 0);
  CHECK_THROWS_AS(j.find("s4"), store::store_error);  // only the store could say, and it fails
}
