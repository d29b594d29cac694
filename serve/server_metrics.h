// server_metrics: the Prometheus metrics of one server (thread-safe; prometheus-cpp).
// net/ counts requests by route and status; sessions observe latencies; engines
// publish their queue and KV-cache gauges after every step.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace conclave::engine {
struct engine_stats;
}  // namespace conclave::engine

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace conclave::serve {

class live_stats;
struct gpu_reading;
enum class replica_state;

class server_metrics {
 public:
  server_metrics();
  ~server_metrics();
  server_metrics(const server_metrics&) = default;
  server_metrics& operator=(const server_metrics&) = delete;

  /// The same metrics as seen by one model of a several-model server: counters and
  /// histograms are shared; its engines' gauges are kept apart from the other models'
  /// (the exported gauges are sums over every model's replicas).
  std::shared_ptr<server_metrics> scoped(const std::string& model) const;
  /// A model was unloaded: its engines' gauges leave the sums.
  void forget_scope(const std::string& model);

  void count_request(const std::string& route, int status);
  void observe_ttft(double seconds);
  void observe_tpot(double seconds);
  void observe_e2e(double seconds);
  void observe_queue_time(double seconds);
  void add_tokens(int64_t prompt, int64_t completion);
  void add_preemptions(uint64_t n);
  /// KV offload: sequences offloaded instead of recomputed, and blocks copied each way.
  void add_kv_offload(uint64_t swaps, uint64_t blocks_out, uint64_t blocks_in);
  /// KV blocks released behind sliding windows.
  void add_window_released(uint64_t blocks);
  /// The prefix cache's host tier: blocks stored there, prefix hits served from it.
  void add_host_prefix(uint64_t stored, uint64_t hits);
  void add_failover();
  /// A connection the cluster door refused, by reason (net/cluster_door.h's refusal::).
  void count_cluster_refusal(const std::string& reason);
  /// Engine gauges (summed over replicas by the caller when there are several).
  /// One replica's engine gauges; the exported values are the sums over replicas.
  void set_engine(int replica, size_t running, size_t waiting, int64_t kv_used, int64_t kv_free);
  /// An engine's state after a step: its gauges (set_engine), and its counters' growth
  /// since `before` (the stats it published last) as preemptions, offload, window and
  /// host-tier counts.
  void publish_engine(int replica, const engine::engine_stats& now,
                      const engine::engine_stats& before);

  /// Gauges the telemetry sampler sets each interval: replicas by model and state (every
  /// state listed, zeros included), the cluster's joined nodes and node losses so far,
  /// and one series per GPU and reading (a reading NVML does not give is left out).
  void set_replicas(const std::vector<std::pair<std::string, replica_state>>& replicas);
  void set_cluster(size_t nodes, uint64_t losses_so_far);
  void set_gpus(const std::vector<gpu_reading>& gpus);

  /// The sliding-window latencies, totals and events the dashboard and alerts read
  /// (shared by every scoped copy).
  live_stats& live() const { return *live_; }
  std::shared_ptr<live_stats> live_ptr() const { return live_; }

  /// Prometheus text exposition format.
  std::string serialize() const;
  /// The registry, for series defined elsewhere (tool_metrics).
  prometheus::Registry& registry() { return *registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* cluster_refusals_;
  prometheus::Histogram *ttft_, *tpot_, *e2e_, *queue_;
  prometheus::Counter *prompt_tokens_, *completion_tokens_, *preemptions_, *failovers_;
  prometheus::Counter *offload_swaps_, *offload_out_, *offload_in_;
  prometheus::Counter* window_released_;
  prometheus::Counter* stall_bounded_;
  prometheus::Counter* paced_;
  prometheus::Counter *host_prefix_stored_, *host_prefix_hits_;
  prometheus::Counter *prompt_computed_, *prompt_cached_;
  prometheus::Gauge *running_, *waiting_, *kv_used_, *kv_free_, *resident_;
  struct engine_gauges {
    double running = 0, waiting = 0, kv_used = 0, kv_free = 0;
  };
  struct engine_table {
    std::mutex mutex;
    std::map<std::pair<std::string, int>, engine_gauges> gauges;  ///< by (scope, replica)
  };
  void publish_totals(const engine_table& t);  ///< with t.mutex held
  std::shared_ptr<engine_table> engines_ = std::make_shared<engine_table>();
  std::shared_ptr<live_stats> live_;
  prometheus::Family<prometheus::Gauge>*replicas_, *nodes_, *gpu_util_, *gpu_mem_used_,
      *gpu_mem_total_, *gpu_temp_, *gpu_power_, *gpu_ecc_;
  prometheus::Counter* node_losses_;
  struct gauge_memo {  ///< last values set, to add deltas to the losses counter
    std::mutex mutex;
    uint64_t losses = 0;
  };
  std::shared_ptr<gauge_memo> memo_ = std::make_shared<gauge_memo>();
  std::string scope_;
};

}  // namespace conclave::serve
