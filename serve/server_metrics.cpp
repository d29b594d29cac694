// Prometheus metrics; bucket bounds chosen for token latencies (ms) and request times (s).
#include "serve/server_metrics.h"

#include "engine/llm_engine.h"
#include "serve/live_stats.h"
#include "serve/nvml.h"
#include "serve/process_memory.h"
#include "serve/replica_status.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace conclave::serve {

namespace {
const prometheus::Histogram::BucketBoundaries token_buckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0};
const prometheus::Histogram::BucketBoundaries request_buckets = {
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0};

/// One unlabelled counter series.
prometheus::Counter* counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}

/// One unlabelled histogram series.
prometheus::Histogram* histogram(prometheus::Registry& r, const std::string& name,
                                 const std::string& help,
                                 const prometheus::Histogram::BucketBoundaries& buckets) {
  return &prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, buckets);
}
}  // namespace

server_metrics::server_metrics()
    : registry_(std::make_shared<prometheus::Registry>()), live_(std::make_shared<live_stats>()) {
  using namespace prometheus;
  requests_ = &BuildCounter()
                   .Name("conclave_http_requests_total")
                   .Help("HTTP requests by route and status")
                   .Register(*registry_);
  cluster_refusals_ = &BuildCounter()
                           .Name("conclave_cluster_refusals_total")
                           .Help("Connections the cluster door refused, by reason")
                           .Register(*registry_);
  ttft_ = histogram(*registry_, "conclave_time_to_first_token_seconds", "Time to first token",
                    token_buckets);
  tpot_ = histogram(*registry_, "conclave_time_per_output_token_seconds",
                    "Mean time per output token after the first, per request", token_buckets);
  e2e_ = histogram(*registry_, "conclave_request_duration_seconds", "End-to-end request time",
                   request_buckets);
  queue_ = histogram(*registry_, "conclave_queue_time_seconds",
                     "Time from arrival to admission into the engine", request_buckets);
  auto& tokens = BuildCounter()
                     .Name("conclave_tokens_total")
                     .Help("Prompt and generated tokens")
                     .Register(*registry_);
  prompt_tokens_ = &tokens.Add({{"kind", "prompt"}});
  completion_tokens_ = &tokens.Add({{"kind", "completion"}});
  preemptions_ =
      counter(*registry_, "conclave_preemptions_total", "Sequences preempted for KV blocks");
  offload_swaps_ = counter(*registry_, "conclave_kv_offload_swaps_total",
                           "Preempted sequences offloaded to host memory instead of recomputed");
  auto& offload_blocks = BuildCounter()
                             .Name("conclave_kv_offload_blocks_total")
                             .Help("KV blocks copied between the device cache and host memory")
                             .Register(*registry_);
  offload_out_ = &offload_blocks.Add({{"direction", "to_host"}});
  offload_in_ = &offload_blocks.Add({{"direction", "to_device"}});
  window_released_ =
      counter(*registry_, "conclave_kv_window_released_blocks_total",
              "KV blocks released because every layer's sliding window had passed them");
  stall_bounded_ = counter(*registry_, "conclave_prefill_stall_bounded_chunks_total",
                           "Prompt chunks cut short by prefill_stall_pairs so that decoding "
                           "streams and waiting requests were not held up");
  paced_ = counter(*registry_, "conclave_prefill_paced_steps_total",
                   "Steps in which prompt chunks waited so that decoding streams kept the pace "
                   "decode_slowdown sets");
  auto& host_prefix = BuildCounter()
                          .Name("conclave_kv_host_prefix_blocks_total")
                          .Help(
                              "Prefix-cache blocks stored in the host tier, and prefix hits "
                              "copied back from it instead of recomputed")
                          .Register(*registry_);
  host_prefix_stored_ = &host_prefix.Add({{"event", "stored"}});
  host_prefix_hits_ = &host_prefix.Add({{"event", "hit"}});
  auto& prompt_work = BuildCounter()
                          .Name("conclave_prompt_tokens_total")
                          .Help(
                              "Prompt tokens the engines ran through the model (computed), and "
                              "those found in the prefix cache instead (cached)")
                          .Register(*registry_);
  prompt_computed_ = &prompt_work.Add({{"source", "computed"}});
  prompt_cached_ = &prompt_work.Add({{"source", "cached"}});
  failovers_ = counter(*registry_, "conclave_failovers_total",
                       "Requests moved to another replica after theirs failed");
  auto& seqs =
      BuildGauge().Name("conclave_sequences").Help("Sequences by state").Register(*registry_);
  running_ = &seqs.Add({{"state", "running"}});
  waiting_ = &seqs.Add({{"state", "waiting"}});
  auto& kv =
      BuildGauge().Name("conclave_kv_blocks").Help("KV-cache blocks by state").Register(*registry_);
  kv_used_ = &kv.Add({{"state", "used"}});
  kv_free_ = &kv.Add({{"state", "free"}});
  resident_ = &BuildGauge()
                   .Name("process_resident_memory_bytes")
                   .Help("Resident memory of the server process, read at each scrape")
                   .Register(*registry_)
                   .Add({});
  replicas_ = &BuildGauge()
                   .Name("conclave_replicas")
                   .Help(
                       "Model replicas by model and state (starting, up, restarting, dead, "
                       "stopped, draining, drained)")
                   .Register(*registry_);
  nodes_ = &BuildGauge()
                .Name("conclave_cluster_nodes")
                .Help("Nodes joined to this server's cluster")
                .Register(*registry_);
  node_losses_ = counter(*registry_, "conclave_cluster_node_losses_total",
                         "Nodes the cluster lost (their connection or heartbeats stopped)");
  auto gauge = [&](const char* name, const char* help) {
    return &BuildGauge().Name(name).Help(help).Register(*registry_);
  };
  gpu_util_ = gauge("conclave_gpu_utilization_ratio",
                    "Fraction of NVML's last sample period in which a kernel ran, per GPU");
  gpu_mem_used_ = gauge("conclave_gpu_memory_used_bytes", "GPU memory in use (all processes)");
  gpu_mem_total_ = gauge("conclave_gpu_memory_total_bytes", "GPU memory in all");
  gpu_temp_ = gauge("conclave_gpu_temperature_celsius", "GPU die temperature");
  gpu_power_ = gauge("conclave_gpu_power_watts", "GPU power draw");
  gpu_ecc_ = gauge("conclave_gpu_ecc_errors",
                   "ECC errors in the GPU's lifetime (NVML's aggregate counts), by type");
}

server_metrics::~server_metrics() = default;

void server_metrics::count_request(const std::string& route, int status) {
  requests_->Add({{"route", route}, {"status", std::to_string(status)}}).Increment();
  if (route == "/v1/chat/completions" || route == "/v1/completions" || route == "/v1/ws")
    live_->count_request(status);
}
void server_metrics::count_cluster_refusal(const std::string& reason) {
  cluster_refusals_->Add({{"reason", reason}}).Increment();
}
void server_metrics::observe_ttft(double s) {
  ttft_->Observe(s);
  live_->observe(latency_kind::ttft, s);
}
void server_metrics::observe_tpot(double s) {
  tpot_->Observe(s);
  live_->observe(latency_kind::tpot, s);
}
void server_metrics::observe_e2e(double s) {
  e2e_->Observe(s);
  live_->observe(latency_kind::e2e, s);
}
void server_metrics::observe_queue_time(double s) {
  queue_->Observe(s);
}
void server_metrics::add_tokens(int64_t prompt, int64_t completion) {
  prompt_tokens_->Increment(static_cast<double>(prompt));
  completion_tokens_->Increment(static_cast<double>(completion));
  live_->count_tokens(prompt, completion);
}
void server_metrics::add_failover() {
  failovers_->Increment();
}
void server_metrics::add_preemptions(uint64_t n) {
  if (n > 0) preemptions_->Increment(static_cast<double>(n));
}
void server_metrics::add_kv_offload(uint64_t swaps, uint64_t blocks_out, uint64_t blocks_in) {
  if (swaps > 0) offload_swaps_->Increment(static_cast<double>(swaps));
  if (blocks_out > 0) offload_out_->Increment(static_cast<double>(blocks_out));
  if (blocks_in > 0) offload_in_->Increment(static_cast<double>(blocks_in));
}
void server_metrics::add_window_released(uint64_t blocks) {
  if (blocks > 0) window_released_->Increment(static_cast<double>(blocks));
}
void server_metrics::add_host_prefix(uint64_t stored, uint64_t hits) {
  if (stored > 0) host_prefix_stored_->Increment(static_cast<double>(stored));
  if (hits > 0) host_prefix_hits_->Increment(static_cast<double>(hits));
}
void server_metrics::publish_engine(int replica, const engine::engine_stats& s,
                                    const engine::engine_stats& before) {
  set_engine(replica, s.num_running, s.num_waiting, s.kv_blocks_total - s.kv_blocks_free,
             s.kv_blocks_free);
  add_preemptions(s.preemptions - before.preemptions);
  add_kv_offload(s.swap_outs - before.swap_outs, s.blocks_swapped_out - before.blocks_swapped_out,
                 s.blocks_swapped_in - before.blocks_swapped_in);
  add_window_released(s.blocks_released_behind_window - before.blocks_released_behind_window);
  if (const uint64_t n = s.stall_bounded_chunks - before.stall_bounded_chunks; n > 0)
    stall_bounded_->Increment(static_cast<double>(n));
  if (const uint64_t n = s.paced_steps - before.paced_steps; n > 0)
    paced_->Increment(static_cast<double>(n));
  add_host_prefix(s.host_prefix_stores - before.host_prefix_stores,
                  s.host_prefix_hits - before.host_prefix_hits);
  if (const uint64_t n = s.prompt_tokens_computed - before.prompt_tokens_computed; n > 0)
    prompt_computed_->Increment(static_cast<double>(n));
  if (const uint64_t n = s.prefix_hit_tokens - before.prefix_hit_tokens; n > 0)
    prompt_cached_->Increment(static_cast<double>(n));
}

void server_metrics::set_engine(int replica, size_t running, size_t waiting, int64_t kv_used,
                                int64_t kv_free) {
  std::lock_guard lock(engines_->mutex);
  engines_->gauges[{scope_, replica}] = {static_cast<double>(running), static_cast<double>(waiting),
                                         static_cast<double>(kv_used),
                                         static_cast<double>(kv_free)};
  publish_totals(*engines_);
}

void server_metrics::publish_totals(const engine_table& t) {
  engine_gauges total;
  for (const auto& [key, g] : t.gauges) {
    total.running += g.running;
    total.waiting += g.waiting;
    total.kv_used += g.kv_used;
    total.kv_free += g.kv_free;
  }
  running_->Set(total.running);
  waiting_->Set(total.waiting);
  kv_used_->Set(total.kv_used);
  kv_free_->Set(total.kv_free);
}

void server_metrics::set_replicas(
    const std::vector<std::pair<std::string, replica_state>>& replicas) {
  constexpr replica_state all[] = {replica_state::starting,   replica_state::up,
                                   replica_state::restarting, replica_state::dead,
                                   replica_state::stopped,    replica_state::draining,
                                   replica_state::drained};
  std::map<std::string, std::map<replica_state, int>> counts;
  for (const auto& [model, state] : replicas) ++counts[model][state];
  for (const auto& [model, by_state] : counts)
    for (const auto state : all) {
      const auto it = by_state.find(state);
      replicas_->Add({{"model", model}, {"state", to_string(state)}})
          .Set(it == by_state.end() ? 0 : it->second);
    }
}

void server_metrics::set_cluster(size_t nodes, uint64_t losses_so_far) {
  nodes_->Add({}).Set(static_cast<double>(nodes));
  std::lock_guard lock(memo_->mutex);
  if (losses_so_far > memo_->losses) {
    node_losses_->Increment(static_cast<double>(losses_so_far - memo_->losses));
    memo_->losses = losses_so_far;
  }
}

void server_metrics::set_gpus(const std::vector<gpu_reading>& gpus) {
  for (const auto& g : gpus) {
    const std::string dev = std::to_string(g.index);
    auto set = [&](prometheus::Family<prometheus::Gauge>* f, const auto& v,
                   prometheus::Labels extra = {}) {
      if (!v) return;
      extra["device"] = dev;
      f->Add(extra).Set(static_cast<double>(*v));
    };
    set(gpu_util_, g.utilization);
    set(gpu_mem_used_, g.memory_used_bytes);
    set(gpu_mem_total_, g.memory_total_bytes);
    set(gpu_temp_, g.temperature_c);
    set(gpu_power_, g.power_w);
    set(gpu_ecc_, g.ecc_corrected, {{"type", "corrected"}});
    set(gpu_ecc_, g.ecc_uncorrected, {{"type", "uncorrected"}});
  }
}

std::shared_ptr<server_metrics> server_metrics::scoped(const std::string& model) const {
  auto m = std::make_shared<server_metrics>(*this);
  m->scope_ = model;
  return m;
}

void server_metrics::forget_scope(const std::string& model) {
  std::lock_guard lock(engines_->mutex);
  std::erase_if(engines_->gauges, [&](const auto& e) { return e.first.first == model; });
  publish_totals(*engines_);
}

std::string server_metrics::serialize() const {
  resident_->Set(resident_mib() * 1024.0 * 1024.0);
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace conclave::serve
