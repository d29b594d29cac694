// The CPU backend keeps computing while other threads of the process fork (the tool
// sandbox starts its processes with fork): OpenBLAS's own thread server, whose fork
// handler could leave a running call waiting for ever, is not used. A regression here
// shows as this test never finishing (ctest's timeout).
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "gpu/backend.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"

using namespace conclave;

TEST_CASE("cpu backend: forward passes continue while another thread forks", "[forward]") {
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  config::backend_config b;
  b.num_kv_blocks = 64;
  b.threads = 2;
  std::vector<std::unique_ptr<gpu::backend>> backends;
  for (int i = 0; i < 2; ++i) backends.push_back(gpu::make_backend(ckpt, b));
  std::atomic<bool> done{false};
  std::atomic<int> forks{0};
  std::thread forker([&] {
    while (!done.load()) {
      const pid_t pid = ::fork();
      if (pid == 0) ::_exit(0);
      if (pid > 0) {
        ::waitpid(pid, nullptr, 0);
        ++forks;
      }
    }
  });
  std::vector<std::thread> workers;
  std::atomic<int> steps{0};
  for (auto& be : backends) {
    workers.emplace_back([&, backend = be.get()] {
      std::vector<int32_t> tokens(48);
      for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i * 37 % 1000);
      const std::vector<int32_t> table = {0, 1, 2, 3};
      for (int n = 0; n < 40; ++n) {
        gpu::step_sequence s{tokens, 0, table, false};
        gpu::step_output out;
        backend->forward({&s, 1}, out);
        ++steps;
      }
    });
  }
  for (auto& w : workers) w.join();
  done.store(true);
  forker.join();
  CHECK(steps.load() == 80);
  CHECK(forks.load() > 0);
}
