// The communicator implementations: `self` and Gloo over loopback with ranks as threads.
// Every collective with uneven and zero counts, a rendezvous that never completes, and
// abort() freeing a rank blocked in a collective.
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <numeric>
#include <thread>

#include "gpu/collectives.h"
#include "tests/skip.h"

namespace {

using namespace conclave;
using namespace std::chrono_literals;

/// Runs fn(comm) on `n` Gloo ranks (threads); rethrows the first failure.
void on_gloo_ranks(int n, const std::function<void(gpu::communicator&)>& fn,
                   std::chrono::milliseconds timeout = 10s) {
  auto rv = gpu::make_local_rendezvous();
  std::vector<std::future<void>> done;
  for (int r = 0; r < n; ++r) {
    done.push_back(std::async(std::launch::async, [&, r] {
      auto comm = gpu::make_gloo_communicator(r, n, *rv, "test", "", timeout);
      fn(*comm);
    }));
  }
  for (auto& f : done) f.get();
}

}  // namespace

TEST_CASE("self communicator copies to itself and refuses after abort", "[collectives]") {
  auto comm = gpu::make_self_communicator();
  REQUIRE(comm->size() == 1);
  const std::vector<int32_t> send{1, 2, 3};
  std::vector<int32_t> recv(3);
  const std::vector<int64_t> counts{3};
  comm->all_to_all_v(send.data(), counts, recv.data(), counts, sizeof(int32_t));
  CHECK(recv == send);
  comm->abort();
  CHECK_THROWS_AS(comm->barrier(), gpu::collective_error);
}

TEST_CASE("gloo all_to_all_v moves uneven and empty parts to the right ranks", "[collectives]") {
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  const int n = 4;
  on_gloo_ranks(n, [&](gpu::communicator& comm) {
    const int me = comm.rank();
    // Rank s sends (s + d) % 3 values to rank d, each value 100 s + d; rank 1 sends nothing.
    std::vector<int64_t> send_counts(n), recv_counts(n);
    std::vector<int32_t> send;
    for (int d = 0; d < n; ++d) {
      send_counts[d] = me == 1 ? 0 : (me + d) % 3;
      for (int64_t i = 0; i < send_counts[d]; ++i) send.push_back(100 * me + d);
    }
    for (int s = 0; s < n; ++s) recv_counts[s] = s == 1 ? 0 : (s + me) % 3;
    std::vector<int32_t> recv(
        static_cast<size_t>(std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t{0})));
    comm.all_to_all_v(send.data(), send_counts, recv.data(), recv_counts, sizeof(int32_t));
    std::vector<int32_t> expect;
    for (int s = 0; s < n; ++s)
      for (int64_t i = 0; i < recv_counts[s]; ++i) expect.push_back(100 * s + me);
    CHECK(recv == expect);
  });
}

TEST_CASE("gloo all_gather, all_reduce and barrier agree on every rank", "[collectives]") {
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  const int n = 3;
  on_gloo_ranks(n, [&](gpu::communicator& comm) {
    const int64_t mine[2] = {comm.rank(), 10 * comm.rank()};
    std::vector<int64_t> all(2 * n);
    comm.all_gather(mine, all.data(), sizeof(mine));
    CHECK(all == std::vector<int64_t>{0, 0, 1, 10, 2, 20});
    std::vector<float> f{1.5f, float(comm.rank())};
    comm.all_reduce_sum(f.data(), f.size());
    CHECK(f == std::vector<float>{4.5f, 3.0f});
    std::vector<int64_t> i{comm.rank() + 1};
    comm.all_reduce_sum(i.data(), i.size());
    CHECK(i[0] == 6);
    comm.barrier();
    // Zero counts everywhere still completes.
    std::vector<int64_t> zero(n, 0);
    comm.all_to_all_v(nullptr, zero, nullptr, zero, 4);
  });
}

TEST_CASE("gloo rendezvous without all ranks fails within its timeout", "[collectives]") {
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  auto rv = gpu::make_local_rendezvous();
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(gpu::make_gloo_communicator(0, 2, *rv, "lonely", "", 500ms),
                  gpu::collective_error);
  CHECK(std::chrono::steady_clock::now() - t0 < 20s);
}

TEST_CASE("gloo abort fails the blocked collective by its timeout and every later one at once",
          "[collectives]") {
  if (!gpu::have_gloo()) CONCLAVE_SKIP("built without Gloo");
  auto rv = gpu::make_local_rendezvous();
  std::promise<gpu::communicator*> second;
  auto peer = std::async(std::launch::async, [&] {
    auto comm = gpu::make_gloo_communicator(1, 2, *rv, "abort", "", 2s);
    second.set_value(comm.get());
    std::this_thread::sleep_for(3s);  // never joins the barrier: rank 0 waits alone
    return comm;
  });
  auto comm = gpu::make_gloo_communicator(0, 2, *rv, "abort", "", 2s);
  second.get_future().get();
  auto blocked = std::async(std::launch::async, [&] { comm->barrier(); });
  std::this_thread::sleep_for(200ms);
  const auto t0 = std::chrono::steady_clock::now();
  comm->abort();
  CHECK_THROWS_AS(blocked.get(), gpu::collective_error);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  const auto t1 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(comm->barrier(), gpu::collective_error);
  CHECK(std::chrono::steady_clock::now() - t1 < 1s);
  peer.get();
}
