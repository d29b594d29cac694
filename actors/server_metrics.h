// server_metrics: the Prometheus metrics of one server (thread-safe; prometheus-cpp).
// net/ counts requests by route and status; sessions observe latencies; engines
// publish their queue and KV-cache gauges after every step.
#pragma once

#include <memory>
#include <string>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace conclave::actors {

class server_metrics {
 public:
  server_metrics();
  ~server_metrics();

  void count_request(const std::string& route, int status);
  void observe_ttft(double seconds);
  void observe_tpot(double seconds);
  void observe_e2e(double seconds);
  void observe_queue_time(double seconds);
  void add_tokens(int64_t prompt, int64_t completion);
  void add_preemptions(uint64_t n);
  /// Engine gauges (summed over replicas by the caller when there are several).
  void set_engine(size_t running, size_t waiting, int64_t kv_used, int64_t kv_free);

  /// Prometheus text exposition format.
  std::string serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Histogram *ttft_, *tpot_, *e2e_, *queue_;
  prometheus::Counter *prompt_tokens_, *completion_tokens_, *preemptions_;
  prometheus::Gauge *running_, *waiting_, *kv_used_, *kv_free_;
};

}  // namespace conclave::actors
