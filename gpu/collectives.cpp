// collectives: the one-rank communicator, the in-process rendezvous, and the answers
// where Gloo or NCCL was not built.
#include "gpu/collectives.h"

#include <spdlog/fmt/fmt.h>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>

namespace conclave::gpu {
namespace {

class self_communicator final : public communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string_view kind() const override { return "self"; }

  void all_to_all_v(const void* send, std::span<const int64_t> send_counts, void* recv,
                    std::span<const int64_t> recv_counts, size_t elem_bytes) override {
    check();
    if (send_counts.size() != 1 || recv_counts.size() != 1 || send_counts[0] != recv_counts[0])
      throw collective_error("self all_to_all_v: counts must be one equal pair");
    if (send_counts[0] > 0)
      std::memmove(recv, send, static_cast<size_t>(send_counts[0]) * elem_bytes);
  }
  void all_gather(const void* send, void* recv, size_t bytes_per_rank) override {
    check();
    if (bytes_per_rank > 0) std::memmove(recv, send, bytes_per_rank);
  }
  void all_reduce_sum(float*, size_t) override { check(); }
  void all_reduce_sum(int64_t*, size_t) override { check(); }
  void barrier() override { check(); }
  void abort() override { aborted_ = true; }

 private:
  void check() const {
    if (aborted_) throw collective_error("communicator aborted");
  }
  std::atomic<bool> aborted_{false};
};

struct local_store {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::vector<char>> values;
};

}  // namespace

std::shared_ptr<rendezvous> make_local_rendezvous() {
  auto store = std::make_shared<local_store>();
  auto rv = std::make_shared<rendezvous>();
  rv->set = [store](const std::string& key, const std::vector<char>& value) {
    {
      std::lock_guard lock(store->mu);
      store->values[key] = value;
    }
    store->cv.notify_all();
  };
  rv->get = [store](const std::string& key, std::chrono::milliseconds timeout) {
    std::unique_lock lock(store->mu);
    if (!store->cv.wait_for(lock, timeout, [&] { return store->values.count(key) > 0; }))
      throw collective_error(
          fmt::format("rendezvous: no value for \"{}\" within {} ms", key, timeout.count()));
    return store->values[key];
  };
  return rv;
}

std::unique_ptr<communicator> make_self_communicator() {
  return std::make_unique<self_communicator>();
}

#ifndef CONCLAVE_HAVE_GLOO
bool have_gloo() {
  return false;
}

std::unique_ptr<communicator> make_gloo_communicator(int, int, rendezvous, const std::string&,
                                                     const std::string&,
                                                     std::chrono::milliseconds) {
  throw std::runtime_error(
      "this conclave was built without Gloo (libgloo-dev); CPU ranks cannot talk to each other");
}
#endif

#ifndef CONCLAVE_HAVE_CUDA
std::shared_ptr<local_device_group> make_local_device_group(int, std::chrono::milliseconds) {
  throw std::runtime_error("this conclave was built without the cuda backend: no device buffers");
}

std::unique_ptr<communicator> make_local_device_communicator(std::shared_ptr<local_device_group>,
                                                             int, int) {
  throw std::runtime_error("this conclave was built without the cuda backend: no device buffers");
}
#endif

#ifndef CONCLAVE_HAVE_NCCL
bool have_nccl() {
  return false;
}

std::array<char, 128> nccl_unique_id() {
  throw std::runtime_error("this conclave was built without NCCL (the cuda backend and nccl.h)");
}

std::unique_ptr<communicator> make_nccl_communicator(int, int, std::span<const char, 128>, int,
                                                     void*, std::chrono::milliseconds) {
  throw std::runtime_error("this conclave was built without NCCL (the cuda backend and nccl.h)");
}
#endif

}  // namespace conclave::gpu
