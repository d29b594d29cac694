#include "model/load_progress.h"

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

using conclave::model::load_progress;

TEST_CASE("load progress counts bytes from many threads and draws a bar", "[progress]") {
  const size_t gib = size_t{1} << 30;
  load_progress p("loading weights", 4 * gib, false);
  CHECK(p.render().find("[                              ]   0%") != std::string::npos);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 256; ++i) p.advance(gib / 256);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(p.done_bytes() == 4 * gib);
  const std::string line = p.render();
  CHECK(line.find("100%") != std::string::npos);
  CHECK(line.find("4.00/4.00 GiB") != std::string::npos);
  CHECK(line.find(std::string(30, '#')) != std::string::npos);
  p.finish();
  p.finish();  // idempotent; the destructor calls it again
}

TEST_CASE("load progress past its total stays at 100%", "[progress]") {
  load_progress p("x", 100, false);
  p.advance(150);
  CHECK(p.render().find("100%") != std::string::npos);
  load_progress empty("nothing", 0, true);  // a zero total draws nothing
  empty.advance(5);
  CHECK(empty.render().find("100%") != std::string::npos);
}
