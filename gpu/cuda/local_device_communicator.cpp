// The local device communicator: make_local_device_communicator (gpu/collectives.h).
#include "gpu/collectives.h"

#include <cuda_runtime.h>
#include <spdlog/fmt/fmt.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <span>
#include <vector>

#include "gpu/cuda/check.h"

namespace conclave::gpu {

/// One rank's part of the collective in progress.
struct posted {
  const void* send = nullptr;
  void* recv = nullptr;
  std::vector<int64_t> send_counts;  ///< all_to_all_v only
  size_t bytes = 0;                  ///< all_gather, all_reduce: bytes of this rank's buffer
  int device = 0;
};

class local_device_group {
 public:
  local_device_group(int size, std::chrono::milliseconds timeout)
      : size_(size), timeout_(timeout), posts_(static_cast<size_t>(size)) {}

  int size() const { return size_; }

  /// Publishes this rank's part and waits for every rank's.
  void post(int rank, posted p) {
    std::unique_lock lock(mu_);
    posts_[static_cast<size_t>(rank)] = std::move(p);
    arrive(lock);
  }
  /// Every rank's part (valid between post() and done()).
  const posted& of(int rank) const { return posts_[static_cast<size_t>(rank)]; }
  /// Waits until every rank finished reading its peers' buffers.
  void done() {
    std::unique_lock lock(mu_);
    arrive(lock);
  }
  void abort() {
    std::lock_guard lock(mu_);
    aborted_ = true;
    cv_.notify_all();
  }
  bool aborted() const {
    std::lock_guard lock(mu_);
    return aborted_;
  }

 private:
  void arrive(std::unique_lock<std::mutex>& lock) {
    if (aborted_) throw collective_error("communicator aborted");
    const uint64_t gen = generation_;
    if (++arrived_ == size_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    if (!cv_.wait_for(lock, timeout_, [&] { return generation_ != gen || aborted_; })) {
      // This rank leaves the barrier half met: no later collective of the group can be
      // trusted, so the group aborts, as a timed-out NCCL communicator does.
      aborted_ = true;
      cv_.notify_all();
      throw collective_error(
          fmt::format("local device communicator: a peer did not arrive within {} ms; group "
                      "aborted",
                      timeout_.count()));
    }
    if (generation_ == gen) throw collective_error("communicator aborted");
  }

  const int size_;
  const std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  bool aborted_ = false;
  std::vector<posted> posts_;
};

namespace {

class local_device_communicator final : public communicator {
 public:
  local_device_communicator(std::shared_ptr<local_device_group> group, int rank, int device)
      : group_(std::move(group)), rank_(rank), device_(device) {
    if (!group_ || rank < 0 || rank >= group_->size())
      throw collective_error(fmt::format("local device communicator: rank {} of {}", rank,
                                         group_ ? group_->size() : 0));
    CONCLAVE_CUDA_CHECK(cudaSetDevice(device_));
    CONCLAVE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~local_device_communicator() override {
    cudaSetDevice(device_);  // cannot throw from a destructor
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  std::string_view kind() const override { return "local"; }
  bool device_buffers() const override { return true; }

  void all_to_all_v(const void* send, std::span<const int64_t> send_counts, void* recv,
                    std::span<const int64_t> recv_counts, size_t elem_bytes) override {
    const auto n = static_cast<size_t>(size());
    if (send_counts.size() != n || recv_counts.size() != n)
      throw collective_error("local all_to_all_v: one count per rank");
    posted p{send, recv, {send_counts.begin(), send_counts.end()}, 0, device_};
    run(std::move(p), [&] {
      size_t got = 0;
      for (int r = 0; r < size(); ++r) {
        const posted& peer = group_->of(r);
        if (peer.send_counts.size() != n)
          throw collective_error(
              fmt::format("local all_to_all_v: rank {} is in another collective", r));
        size_t offset = 0;
        for (size_t d = 0; d < static_cast<size_t>(rank_); ++d)
          offset += static_cast<size_t>(peer.send_counts[d]);
        const int64_t count = peer.send_counts[static_cast<size_t>(rank_)];
        if (count != recv_counts[static_cast<size_t>(r)])
          throw collective_error(fmt::format(
              "local all_to_all_v: rank {} sends {} elements to rank {}, which expects {}", r,
              count, rank_, recv_counts[static_cast<size_t>(r)]));
        copy(static_cast<char*>(recv) + got * elem_bytes,
             static_cast<const char*>(peer.send) + offset * elem_bytes, peer.device,
             static_cast<size_t>(count) * elem_bytes);
        got += static_cast<size_t>(count);
      }
    });
  }

  void all_gather(const void* send, void* recv, size_t bytes_per_rank) override {
    run({send, recv, {}, bytes_per_rank, device_}, [&] {
      for (int r = 0; r < size(); ++r) {
        const posted& peer = group_->of(r);
        if (peer.bytes != bytes_per_rank)
          throw collective_error("local all_gather: ranks disagree on the size");
        copy(static_cast<char*>(recv) + static_cast<size_t>(r) * bytes_per_rank, peer.send,
             peer.device, bytes_per_rank);
      }
    });
  }

  void all_reduce_sum(float* data, size_t n) override { reduce(data, n); }
  void all_reduce_sum(int64_t* data, size_t n) override { reduce(data, n); }

  void barrier() override {
    run({}, [] {});
  }

  void abort() override { group_->abort(); }

 private:
  /// Posts `p`, runs this rank's reads of its peers' buffers (`reads`, copies on stream_),
  /// waits for them, then for every rank's. A failed read still meets the second barrier,
  /// so no peer waits for this rank until its timeout.
  template <class Reads>
  void run(posted p, Reads&& reads) {
    CONCLAVE_CUDA_CHECK(cudaSetDevice(device_));
    group_->post(rank_, std::move(p));
    std::exception_ptr failed;
    try {
      reads();
      CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    } catch (...) {
      failed = std::current_exception();
      cudaStreamSynchronize(stream_);  // copies queued before the failure end before peers go on
    }
    group_->done();
    if (failed) std::rethrow_exception(failed);
  }

  void copy(void* dst, const void* src, int src_device, size_t bytes) {
    if (bytes == 0) return;
    CONCLAVE_CUDA_CHECK(cudaMemcpyPeerAsync(dst, device_, src, src_device, bytes, stream_));
  }

  /// Every rank reads every rank's values to the host and sums them in rank order (the
  /// same order, so the same result, on every rank); the sum is written back after the
  /// second barrier, once no peer reads this rank's buffer any more.
  template <class T>
  void reduce(T* data, size_t n) {
    std::vector<T> sum(n, T{}), part(n);
    run({data, data, {}, n * sizeof(T), device_}, [&] {
      for (int r = 0; r < size(); ++r) {
        const posted& peer = group_->of(r);
        if (peer.bytes != n * sizeof(T))
          throw collective_error("local all_reduce_sum: ranks disagree on the size");
        if (n == 0) continue;
        // Unified addressing: the copy finds the peer's device from the pointer.
        CONCLAVE_CUDA_CHECK(cudaMemcpy(part.data(), peer.send, n * sizeof(T), cudaMemcpyDefault));
        for (size_t i = 0; i < n; ++i) sum[i] += part[i];
      }
    });
    if (n > 0) CONCLAVE_CUDA_CHECK(cudaMemcpy(data, sum.data(), n * sizeof(T), cudaMemcpyDefault));
  }

  std::shared_ptr<local_device_group> group_;
  const int rank_, device_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::shared_ptr<local_device_group> make_local_device_group(int size,
                                                            std::chrono::milliseconds timeout) {
  if (size < 1) throw collective_error("local device communicator: a group of at least one rank");
  return std::make_shared<local_device_group>(size, timeout);
}

std::unique_ptr<communicator> make_local_device_communicator(
    std::shared_ptr<local_device_group> group, int rank, int device) {
  return std::make_unique<local_device_communicator>(std::move(group), rank, device);
}

}  // namespace conclave::gpu
