// collectives: the ranks of one replica talking to each other. One plain interface with
// three implementations: `self` (one rank; memcpy), Gloo (CPU ranks and GPU ranks that
// share a device, host buffers, TCP) and NCCL (GPU ranks, device buffers). No CAF here:
// rendezvous data (Gloo's store keys, NCCL's unique id) is handed in by the actor shell.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace conclave::gpu {

/// A collective that failed: a peer gone, a timeout, or abort() from another thread.
class collective_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One replica's ranks. Every rank calls every collective in the same order; a rank with
/// nothing to send still calls with zero counts. Buffers are host memory (self, gloo) or
/// device memory on the backend's stream (nccl).
class communicator {
 public:
  virtual ~communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string_view kind() const = 0;  ///< "self", "gloo", "nccl"
  /// Whether the buffers of every collective are device memory (nccl) rather than host
  /// memory (self, gloo). A device communicator's collectives read their send buffers
  /// only after the call began, so the caller finishes writing them (synchronizes the
  /// stream that wrote them) first; they return once the receive buffers are written.
  virtual bool device_buffers() const { return false; }
  /// send_counts[r] elements of elem_bytes go to rank r (the send buffer grouped by rank,
  /// in rank order); recv_counts[r] elements arrive from rank r, in rank order.
  virtual void all_to_all_v(const void* send, std::span<const int64_t> send_counts, void* recv,
                            std::span<const int64_t> recv_counts, size_t elem_bytes) = 0;
  /// recv = the bytes_per_rank bytes of every rank, in rank order.
  virtual void all_gather(const void* send, void* recv, size_t bytes_per_rank) = 0;
  virtual void all_reduce_sum(float* data, size_t n) = 0;
  virtual void all_reduce_sum(int64_t* data, size_t n) = 0;
  virtual void barrier() = 0;
  /// Callable from another thread: every later collective throws collective_error at once;
  /// one blocked now throws when its timeout ends (Gloo cannot interrupt a wait; NCCL's
  /// ncclCommAbort can). How a fenced rank is freed.
  virtual void abort() = 0;
};

/// What the expert-parallel MoE layers of a rank cost since the stats were last taken.
struct ep_stats {
  double expert_s = 0;    ///< routing, permuting, the experts' GEMMs, the weighted sum
  double dispatch_s = 0;  ///< exchanging counts, expert ids and rows (waiting for peers included)
  double combine_s = 0;   ///< sending the results back
  uint64_t bytes_sent = 0;
  uint64_t layers = 0;  ///< MoE layer calls counted

  ep_stats& operator+=(const ep_stats& o) {
    expert_s += o.expert_s;
    dispatch_s += o.dispatch_s;
    combine_s += o.combine_s;
    bytes_sent += o.bytes_sent;
    layers += o.layers;
    return *this;
  }
};

/// Key/value access for a Gloo rendezvous: `set` publishes, `get` waits up to the timeout
/// for a key and throws collective_error when it does not come.
struct rendezvous {
  std::function<void(const std::string&, const std::vector<char>&)> set;
  std::function<std::vector<char>(const std::string&, std::chrono::milliseconds)> get;
};

/// An in-process rendezvous for ranks that are threads of one process (tests, benches).
std::shared_ptr<rendezvous> make_local_rendezvous();

/// The one-rank communicator (no peers; all_to_all_v copies to itself).
std::unique_ptr<communicator> make_self_communicator();

/// Whether this build has Gloo (CONCLAVE_HAVE_GLOO).
bool have_gloo();

/// Connects rank `rank` of `size` over Gloo's TCP transport: every rank publishes its
/// address under `prefix` and connects to all others. `iface` names the network
/// interface to bind ("" = the host name's address; "lo" for loopback). Each collective
/// gives up after `timeout`. Throws collective_error when the mesh does not form, and
/// std::runtime_error where Gloo was not built.
std::unique_ptr<communicator> make_gloo_communicator(int rank, int size, rendezvous rv,
                                                     const std::string& prefix,
                                                     const std::string& iface,
                                                     std::chrono::milliseconds timeout);

/// What the ranks of one in-process device group share (made once, handed to each rank).
class local_device_group;

/// A group of `size` ranks that are threads of this process, whose collectives give up
/// after `timeout` (collective_error). Throws std::runtime_error where CUDA was not built.
std::shared_ptr<local_device_group> make_local_device_group(int size,
                                                            std::chrono::milliseconds timeout);

/// Rank `rank` of `group`, its buffers device memory on CUDA device `device`: the device
/// exchange of an expert-parallel replica without NCCL, for tests and benches on one GPU
/// (NCCL refuses two ranks on one device) or several (peer copies). Every collective meets
/// at a barrier, each rank copies what it receives out of its peers' buffers, and a second
/// barrier keeps the send buffers alive until every peer has read them. kind() "local",
/// device_buffers() true; abort() fails every rank's current and later collectives
/// (gpu/cuda/local_device_communicator.cpp).
std::unique_ptr<communicator> make_local_device_communicator(
    std::shared_ptr<local_device_group> group, int rank, int device);

/// How long forming an NCCL communicator may wait for every rank to arrive, at least
/// (make_nccl_communicator), and so how long a rank waits for rank 0's unique id.
inline constexpr std::chrono::milliseconds kNcclFormTimeout{120000};

/// Whether this build has NCCL (the CUDA backend built and nccl.h found).
bool have_nccl();

/// A fresh NCCL unique id (ncclGetUniqueId): rank 0 makes it, every rank gets a copy.
/// Throws std::runtime_error where NCCL was not built, collective_error when NCCL fails.
std::array<char, 128> nccl_unique_id();

/// Rank `rank` of `size` over NCCL on CUDA device `device`: every buffer is device memory,
/// and every collective runs on `stream` (a cudaStream_t; null: a non-blocking stream the
/// communicator makes and owns) and returns once it completed there. A non-blocking
/// communicator, so that abort() (ncclCommAbort) frees a rank waiting on a lost peer. Only
/// one rank per device. `timeout` (0: none) bounds each collective, and forming the
/// communicator (every rank must arrive) to at least 2 minutes; past it the communicator
/// aborts and the call throws collective_error, as Gloo's do. Throws collective_error when the
/// communicator cannot form, std::runtime_error where NCCL was not built
/// (gpu/cuda/nccl_communicator.cpp).
std::unique_ptr<communicator> make_nccl_communicator(
    int rank, int size, std::span<const char, 128> unique_id, int device, void* stream,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

}  // namespace conclave::gpu
