// The Gloo communicator: CPU ranks (and GPU ranks sharing one device, host-staged) over
// Gloo's TCP transport. Every rank publishes its address in the rendezvous under a
// prefix that names the replica and its epoch, then connects to all others. Gloo's own
// exceptions become collective_error so callers see one error type.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoallv.h>
#include <gloo/barrier.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <spdlog/fmt/fmt.h>
#include <atomic>

#include "gpu/collectives.h"

namespace conclave::gpu {
namespace {

/// Gloo's Store over our rendezvous functions.
class rendezvous_store final : public gloo::rendezvous::Store {
 public:
  rendezvous_store(rendezvous rv, std::chrono::milliseconds timeout)
      : rv_(std::move(rv)), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { rv_.set(key, data); }
  std::vector<char> get(const std::string& key) override { return rv_.get(key, timeout_); }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    for (const auto& k : keys) (void)rv_.get(k, timeout);
  }

 private:
  rendezvous rv_;
  std::chrono::milliseconds timeout_;
};

template <class F>
void guarded(const char* what, const std::atomic<bool>& aborted, F&& f) {
  if (aborted) throw collective_error(fmt::format("{}: communicator aborted", what));
  try {
    f();
  } catch (const collective_error&) {
    throw;
  } catch (const std::exception& e) {
    throw collective_error(
        fmt::format("{} failed{}: {}", what, aborted ? " (communicator aborted)" : "", e.what()));
  }
}

class gloo_communicator final : public communicator {
 public:
  gloo_communicator(int rank, int size, rendezvous rv, const std::string& prefix,
                    const std::string& iface, std::chrono::milliseconds timeout)
      : timeout_(timeout) {
    guarded("gloo rendezvous", aborted_, [&] {
      gloo::transport::tcp::attr attr;
      if (!iface.empty()) {
        attr.iface = iface;
      } else {
        attr.hostname = "127.0.0.1";
      }
      auto device = gloo::transport::tcp::CreateDevice(attr);
      rendezvous_store store(std::move(rv), timeout);
      gloo::rendezvous::PrefixStore prefixed(prefix, store);
      auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, size);
      ctx->setTimeout(timeout);
      ctx->connectFullMesh(prefixed, device);
      context_ = std::move(ctx);
    });
  }
  ~gloo_communicator() override = default;

  int rank() const override { return context_->rank; }
  int size() const override { return context_->size; }
  std::string_view kind() const override { return "gloo"; }

  void all_to_all_v(const void* send, std::span<const int64_t> send_counts, void* recv,
                    std::span<const int64_t> recv_counts, size_t elem_bytes) override {
    guarded("gloo all_to_all_v", aborted_, [&] {
      // Gloo works in elements of one type: bytes, so any element size goes through.
      std::vector<int64_t> in(send_counts.begin(), send_counts.end());
      std::vector<int64_t> out(recv_counts.begin(), recv_counts.end());
      for (auto& v : in) v *= static_cast<int64_t>(elem_bytes);
      for (auto& v : out) v *= static_cast<int64_t>(elem_bytes);
      // Gloo wants non-null buffers even when every count is zero.
      static char empty_in = 0, empty_out = 0;
      gloo::AlltoallvOptions opts(context_);
      opts.setInput(send ? static_cast<char*>(const_cast<void*>(send)) : &empty_in, std::move(in));
      opts.setOutput(recv ? static_cast<char*>(recv) : &empty_out, std::move(out));
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::alltoallv(opts);
    });
  }

  void all_gather(const void* send, void* recv, size_t bytes_per_rank) override {
    guarded("gloo all_gather", aborted_, [&] {
      gloo::AllgatherOptions opts(context_);
      opts.setInput(static_cast<char*>(const_cast<void*>(send)), bytes_per_rank);
      opts.setOutput(static_cast<char*>(recv), bytes_per_rank * static_cast<size_t>(size()));
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::allgather(opts);
    });
  }

  void all_reduce_sum(float* data, size_t n) override { reduce(data, n); }
  void all_reduce_sum(int64_t* data, size_t n) override { reduce(data, n); }

  void barrier() override {
    guarded("gloo barrier", aborted_, [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
  }

  void abort() override {
    // Only the flag: Gloo cannot interrupt a wait (closeConnections does not free a blocked
    // collective), and closing pairs from a thread being torn down was seen to hang node
    // shutdown. A blocked collective ends at its timeout; every later one throws at once.
    aborted_ = true;
  }

 private:
  template <class T>
  void reduce(T* data, size_t n) {
    guarded("gloo all_reduce", aborted_, [&] {
      if (n == 0) return;
      gloo::AllreduceOptions opts(context_);
      opts.setInput(data, n);
      opts.setOutput(data, n);
      opts.setReduceFunction(
          static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<T>));
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::allreduce(opts);
    });
  }
  /// Every rank calls collectives in the same order, so a counter gives matching tags
  /// and keeps a late message of one collective out of the next.
  uint32_t next_tag() { return tag_++; }

  std::chrono::milliseconds timeout_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  std::atomic<bool> aborted_{false};
  uint32_t tag_ = 0;
};

}  // namespace

bool have_gloo() {
  return true;
}

std::unique_ptr<communicator> make_gloo_communicator(int rank, int size, rendezvous rv,
                                                     const std::string& prefix,
                                                     const std::string& iface,
                                                     std::chrono::milliseconds timeout) {
  if (size < 1 || rank < 0 || rank >= size)
    throw collective_error(fmt::format("gloo: rank {} of {} is not a rank", rank, size));
  return std::make_unique<gloo_communicator>(rank, size, std::move(rv), prefix, iface, timeout);
}

}  // namespace conclave::gpu
