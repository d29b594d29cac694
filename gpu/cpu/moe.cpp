// MoE on the CPU. Grouping tokens per expert turns k GEMVs per token into one GEMM per
// routed expert, which is what makes prefill fast; experts with no tokens cost nothing.
// The expert-parallel form moves rows between ranks around the same per-expert body and
// sums a token's expert outputs in the same order, so it differs from one rank only in
// how the GEMMs block their rows.
#include "gpu/cpu/moe.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <chrono>
#include <numeric>
#include <stdexcept>

#include "gpu/collectives.h"
#include "gpu/cpu/ops.h"
#include "gpu/ep_exchange.h"
#include "gpu/expert_map.h"

namespace conclave::gpu::cpu {
namespace {

/// o += d * w over one hidden row: the one place a token's expert outputs are summed.
inline void add_weighted(float* o, const float* d, float w, size_t hidden) {
  for (size_t j = 0; j < hidden; ++j) o[j] += d[j] * w;
}

/// The router: top-k expert ids and weights per token.
void route(const cpu_layer& layer, const model::model_config& c, const float* h, size_t tokens,
           std::vector<int32_t>& ids, std::vector<float>& weights, thread_pool* pool) {
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t experts = static_cast<size_t>(c.num_experts);
  const size_t k = static_cast<size_t>(c.num_experts_per_tok);
  ids.resize(tokens * k);
  weights.resize(tokens * k);
  if (tokens == 0) return;
  std::vector<float> logits(tokens * experts);
  linear(h, layer.router.data(), nullptr, logits.data(), tokens, experts, hidden, pool);
  router_topk(logits.data(), tokens, experts, k, c.norm_topk_prob, ids.data(), weights.data());
}

using ep_clock = std::chrono::steady_clock;
double since(ep_clock::time_point t0) {
  return std::chrono::duration<double>(ep_clock::now() - t0).count();
}

}  // namespace

void run_expert(const cpu_layer& layer, const model::model_config& c, size_t e, const float* x,
                size_t n, float* y, thread_pool* pool) {
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t m = static_cast<size_t>(c.moe_intermediate_size);
  if (e >= layer.expert_gate_up.size() || layer.expert_gate_up[e].empty() ||
      layer.expert_down[e].empty())
    throw std::logic_error(fmt::format("expert {} was routed to a rank that does not hold it", e));
  std::vector<float> gate_up(n * 2 * m), act(n * m);
  linear(x, layer.expert_gate_up[e].data(), nullptr, gate_up.data(), n, 2 * m, hidden, pool);
  swiglu(gate_up.data(), act.data(), n, m);
  linear(act.data(), layer.expert_down[e].data(), nullptr, y, n, hidden, m, pool);
}

void moe_forward(const cpu_layer& layer, const model::model_config& c, const float* h, float* out,
                 size_t tokens, thread_pool* pool) {
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t experts = static_cast<size_t>(c.num_experts);
  const size_t k = static_cast<size_t>(c.num_experts_per_tok);

  std::vector<int32_t> ids;
  std::vector<float> weights;
  route(layer, c, h, tokens, ids, weights, pool);

  // Bucket (token, weight) pairs by expert, tokens in ascending order within a bucket.
  std::vector<std::vector<std::pair<uint32_t, float>>> routed(experts);
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t j = 0; j < k; ++j) {
      routed[static_cast<size_t>(ids[t * k + j])].emplace_back(static_cast<uint32_t>(t),
                                                               weights[t * k + j]);
    }
  }

  std::fill(out, out + tokens * hidden, 0.0f);
  std::vector<float> x, down;
  for (size_t e = 0; e < experts; ++e) {
    const auto& list = routed[e];
    if (list.empty()) continue;
    const size_t n = list.size();
    x.resize(n * hidden);
    for (size_t i = 0; i < n; ++i)
      std::copy_n(h + list[i].first * hidden, hidden, x.data() + i * hidden);
    down.resize(n * hidden);
    run_expert(layer, c, e, x.data(), n, down.data(), pool);
    for (size_t i = 0; i < n; ++i)
      add_weighted(out + list[i].first * hidden, down.data() + i * hidden, list[i].second, hidden);
  }
}

void moe_forward_ep(const cpu_layer& layer, const model::model_config& c, communicator& comm,
                    const expert_map& placement, int32_t layer_index, const float* h, float* out,
                    size_t tokens, thread_pool* pool, int64_t* routed, ep_stats* stats) {
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t k = static_cast<size_t>(c.num_experts_per_tok);
  const size_t row_bytes = hidden * sizeof(float);
  ep_stats local;
  ep_stats& st = stats ? *stats : local;
  ++st.layers;

  auto t0 = ep_clock::now();
  std::vector<int32_t> ids;
  std::vector<float> weights;
  route(layer, c, h, tokens, ids, weights, pool);
  ep_exchange ex(ids, weights, tokens, k, placement, layer_index, comm, routed);
  st.expert_s += since(t0);

  // Dispatch: every rank learns what it receives from whom, then the ids and the rows.
  t0 = ep_clock::now();
  ex.exchange_counts();
  const size_t received = ex.received();
  std::vector<int32_t> recv_expert(received);
  std::vector<float> recv_rows(received * hidden);
  st.bytes_sent += ex.dispatch(h, row_bytes, recv_expert.data(), recv_rows.data());
  st.dispatch_s += since(t0);

  // Compute: received rows grouped per expert (source rank order kept within one).
  t0 = ep_clock::now();
  const auto order = ep_exchange::by_expert(recv_expert);
  std::vector<float> results(received * hidden), x, y;
  for (size_t begin = 0; begin < received;) {
    size_t end = begin;
    const int32_t e = recv_expert[order[begin]];
    while (end < received && recv_expert[order[end]] == e) ++end;
    const size_t n = end - begin;
    x.resize(n * hidden);
    y.resize(n * hidden);
    for (size_t i = 0; i < n; ++i)
      std::copy_n(recv_rows.data() + order[begin + i] * hidden, hidden, x.data() + i * hidden);
    run_expert(layer, c, static_cast<size_t>(e), x.data(), n, y.data(), pool);
    for (size_t i = 0; i < n; ++i)
      std::copy_n(y.data() + i * hidden, hidden, results.data() + order[begin + i] * hidden);
    begin = end;
  }
  st.expert_s += since(t0);

  // Combine: the results go back to where their rows came from, in send order.
  t0 = ep_clock::now();
  const auto& pairs = ex.pairs();
  std::vector<float> back(pairs.size() * hidden);
  st.bytes_sent += ex.combine(results.data(), row_bytes, back.data());
  st.combine_s += since(t0);

  // Sum each token's expert outputs in ascending expert id, as moe_forward does.
  t0 = ep_clock::now();
  std::fill(out, out + tokens * hidden, 0.0f);
  for (size_t i : ex.sum_order())
    add_weighted(out + pairs[i].token * hidden, back.data() + i * hidden, pairs[i].weight, hidden);
  st.expert_s += since(t0);
}

void dense_mlp_forward(const cpu_layer& layer, const model::model_config& c, const float* h,
                       float* out, size_t tokens, thread_pool* pool) {
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t m = static_cast<size_t>(c.intermediate_size);
  std::vector<float> gate_up(tokens * 2 * m), act(tokens * m);
  linear(h, layer.mlp_gate_up.data(), nullptr, gate_up.data(), tokens, 2 * m, hidden, pool);
  swiglu(gate_up.data(), act.data(), tokens, m);
  linear(act.data(), layer.mlp_down.data(), nullptr, out, tokens, hidden, m, pool);
}

}  // namespace conclave::gpu::cpu
