// The NCCL communicator: device buffers, a non-blocking NCCL communicator so abort() can
// end a collective that waits on a lost peer, and every call checked (an NCCL failure
// throws collective_error naming the call and NCCL's last error).
#include "gpu/cuda/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "gpu/cuda/check.h"

namespace conclave::gpu {
namespace {

static_assert(NCCL_UNIQUE_ID_BYTES == 128, "nccl_unique_id() carries 128 bytes");

/// Closing one waits for what was issued: at most this long (or the timeout) before it
/// aborts.
constexpr int64_t kFinalizeMs = 10000;

/// NVLink multicast stays off (docs/cluster.md §5) and peers connect at init: set before
/// the first NCCL call, unless the environment says otherwise.
void nccl_environment() {
  static std::once_flag once;
  std::call_once(once, [] {
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    // Connect to every peer while the communicator forms (under its longer deadline), not
    // lazily in the first collective (under a collective's).
    setenv("NCCL_RUNTIME_CONNECT", "0", 0);
  });
}

[[noreturn]] void throw_nccl(ncclResult_t r, ncclComm_t comm, const char* what) {
  const char* last = comm != nullptr ? ncclGetLastError(comm) : nullptr;
  throw collective_error(fmt::format("NCCL error: {}: {}{}{}", what, ncclGetErrorString(r),
                                     last != nullptr && *last != 0 ? ": " : "",
                                     last != nullptr ? last : ""));
}

class nccl_communicator final : public communicator {
 public:
  nccl_communicator(int rank, int size, std::span<const char, 128> unique_id, int device,
                    void* stream, std::chrono::milliseconds timeout)
      : rank_(rank),
        size_(size),
        device_(device),
        stream_(static_cast<cudaStream_t>(stream)),
        timeout_(timeout) {
    if (size < 1 || rank < 0 || rank >= size)
      throw collective_error(fmt::format("nccl: rank {} of {}", rank, size));
    nccl_environment();
    CONCLAVE_CUDA_CHECK(cudaSetDevice(device));
    if (stream_ == nullptr) {
      CONCLAVE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      own_stream_ = true;
    }
    if (const cudaError_t e = cudaMalloc(&scratch_, sizeof(int32_t)); e != cudaSuccess) {
      release_stream();
      ::conclave::gpu::cuda::throw_cuda(e, "cudaMalloc", __FILE__, __LINE__);
    }
    ncclUniqueId id;
    std::memcpy(id.internal, unique_id.data(), NCCL_UNIQUE_ID_BYTES);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    const ncclResult_t r = ncclCommInitRankConfig(&comm_, size, id, rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) {
      cudaFree(scratch_);
      release_stream();
      throw_nccl(r, comm_, "ncclCommInitRankConfig");
    }
    try {
      const auto form = std::max(timeout_, kNcclFormTimeout);
      wait_ready("ncclCommInitRankConfig",
                 timeout_.count() > 0 ? clock::now() + form : clock::time_point::max());
    } catch (...) {
      if (comm_ != nullptr) ncclCommAbort(comm_);
      cudaFree(scratch_);
      release_stream();
      throw;
    }
  }

  ~nccl_communicator() override {
    cudaSetDevice(device_);  // cannot throw from a destructor
    if (!aborted_.load()) {
      // Finalize flushes what was issued (non-blocking: polled, for at most the timeout or
      // 10 s), then Destroy frees the rest; a finalize that does not end (a peer gone)
      // aborts instead. Failures are ignored: a destructor cannot throw.
      const auto until = clock::now() + std::max(timeout_, std::chrono::milliseconds(kFinalizeMs));
      ncclCommFinalize(comm_);
      ncclResult_t state = ncclInProgress;
      while (ncclCommGetAsyncError(comm_, &state) == ncclSuccess && state == ncclInProgress &&
             clock::now() < until)
        std::this_thread::yield();
      if (state == ncclSuccess) {
        ncclCommDestroy(comm_);
      } else {
        ncclCommAbort(comm_);
      }
    }
    cudaFree(scratch_);
    release_stream();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string_view kind() const override { return "nccl"; }
  bool device_buffers() const override { return true; }

  void all_to_all_v(const void* send, std::span<const int64_t> send_counts, void* recv,
                    std::span<const int64_t> recv_counts, size_t elem_bytes) override {
    if (send_counts.size() != static_cast<size_t>(size_) ||
        recv_counts.size() != static_cast<size_t>(size_))
      throw collective_error("nccl all_to_all_v: one count per rank");
    issue("all_to_all_v", [&] {
      check(ncclGroupStart(), "ncclGroupStart");
      try {
        size_t sent = 0, got = 0;
        for (int r = 0; r < size_; ++r) {
          const auto s = static_cast<size_t>(send_counts[static_cast<size_t>(r)]) * elem_bytes;
          const auto g = static_cast<size_t>(recv_counts[static_cast<size_t>(r)]) * elem_bytes;
          if (s > 0)
            check(ncclSend(static_cast<const char*>(send) + sent, s, ncclUint8, r, comm_, stream_),
                  "ncclSend");
          if (g > 0)
            check(ncclRecv(static_cast<char*>(recv) + got, g, ncclUint8, r, comm_, stream_),
                  "ncclRecv");
          sent += s;
          got += g;
        }
      } catch (...) {
        ncclGroupEnd();  // close the group this thread opened; the failure is what counts
        throw;
      }
      check(ncclGroupEnd(), "ncclGroupEnd");
    });
  }

  void all_gather(const void* send, void* recv, size_t bytes_per_rank) override {
    issue("all_gather", [&] {
      check(ncclAllGather(send, recv, bytes_per_rank, ncclUint8, comm_, stream_), "ncclAllGather");
    });
  }

  void all_reduce_sum(float* data, size_t n) override {
    issue("all_reduce_sum", [&] {
      check(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, comm_, stream_), "ncclAllReduce");
    });
  }

  void all_reduce_sum(int64_t* data, size_t n) override {
    issue("all_reduce_sum", [&] {
      check(ncclAllReduce(data, data, n, ncclInt64, ncclSum, comm_, stream_), "ncclAllReduce");
    });
  }

  void barrier() override {
    issue("barrier", [&] {
      check(ncclAllReduce(scratch_, scratch_, 1, ncclInt32, ncclSum, comm_, stream_),
            "ncclAllReduce");
    });
  }

  void abort() override {
    std::lock_guard lock(mu_);
    abort_locked();
  }

 private:
  void release_stream() {
    if (own_stream_) cudaStreamDestroy(stream_);
    own_stream_ = false;
  }

  /// Aborts once (under mu_): ncclCommAbort frees the communicator and ends what waits
  /// on a lost peer; every later call throws.
  void abort_locked() {
    if (aborted_.exchange(true)) return;
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
  }

  void check(ncclResult_t r, const char* what) const {
    if (r != ncclSuccess && r != ncclInProgress) throw_nccl(r, comm_, what);
  }

  void throw_if_aborted() const {
    if (aborted_.load()) throw collective_error("communicator aborted");
  }

  using clock = std::chrono::steady_clock;
  /// When a call started now must have finished (the far future without a timeout).
  clock::time_point deadline() const {
    return timeout_.count() > 0 ? clock::now() + timeout_ : clock::time_point::max();
  }
  /// Past the deadline (under mu_): the communicator aborts (a peer is lost or stuck; no
  /// later call can trust it) and the call throws.
  void past(const char* what, clock::time_point until) {
    if (clock::now() < until) return;
    abort_locked();
    throw collective_error(
        fmt::format("NCCL {}: not done in time ({} ms a collective); "
                    "communicator aborted",
                    what, timeout_.count()));
  }

  static void pause(int spins) {
    if (spins < 1000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  /// Polls the communicator until a non-blocking call finished, taking mu_ only for each
  /// poll so that abort() from another thread gets in between (in the constructor no other
  /// thread has the communicator yet).
  void wait_ready(const char* what, clock::time_point until) {
    for (int spins = 0;; ++spins) {
      {
        std::lock_guard lock(mu_);
        throw_if_aborted();
        ncclResult_t state = ncclSuccess;
        check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
        if (state == ncclSuccess) return;
        if (state != ncclInProgress) throw_nccl(state, comm_, what);
        past(what, until);
      }
      pause(spins);
    }
  }

  /// Enqueues `fn`'s NCCL calls on the stream, then waits until they completed there,
  /// watching for an asynchronous NCCL error, the deadline and abort() from another
  /// thread. Any failure aborts the communicator: its state is unknown after it.
  template <class Fn>
  void issue(const char* what, Fn&& fn) {
    const auto until = deadline();
    try {
      {
        std::lock_guard lock(mu_);
        throw_if_aborted();
        CONCLAVE_CUDA_CHECK(cudaSetDevice(device_));
        fn();
      }
      wait_ready(what, until);
      for (int spins = 0;; ++spins) {
        {
          std::lock_guard lock(mu_);
          throw_if_aborted();
          const cudaError_t e = cudaStreamQuery(stream_);
          if (e == cudaSuccess) return;
          if (e != cudaErrorNotReady)
            ::conclave::gpu::cuda::throw_cuda(e, what, __FILE__, __LINE__);
          ncclResult_t state = ncclSuccess;
          check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
          if (state != ncclSuccess && state != ncclInProgress) throw_nccl(state, comm_, what);
          past(what, until);
        }
        pause(spins);
      }
    } catch (...) {
      std::lock_guard lock(mu_);
      abort_locked();
      throw;
    }
  }

  int rank_, size_, device_;
  cudaStream_t stream_;
  std::chrono::milliseconds timeout_;
  bool own_stream_ = false;
  ncclComm_t comm_ = nullptr;
  void* scratch_ = nullptr;
  std::mutex mu_;
  std::atomic<bool> aborted_{false};
};

}  // namespace

bool have_nccl() {
  return true;
}

std::array<char, 128> nccl_unique_id() {
  nccl_environment();
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) throw_nccl(r, nullptr, "ncclGetUniqueId");
  std::array<char, 128> out{};
  std::memcpy(out.data(), id.internal, NCCL_UNIQUE_ID_BYTES);
  return out;
}

std::unique_ptr<communicator> make_nccl_communicator(int rank, int size,
                                                     std::span<const char, 128> unique_id,
                                                     int device, void* stream,
                                                     std::chrono::milliseconds timeout) {
  return std::make_unique<nccl_communicator>(rank, size, unique_id, device, stream, timeout);
}

}  // namespace conclave::gpu
