// The expert-parallel MoE layer on the device; its exchange is host-staged (Gloo) or on
// device buffers (NCCL). The steps and the order rules
// are moe_forward_ep's (gpu/cpu/moe.cpp): pairs grouped by destination rank, then expert,
// then token; the received rows run through the one-rank kernels as a step of k = 1 whose
// "experts" are this rank's slots; the k results of a token are summed in ascending expert
// id by moe_combine (its slot_row and weights given in that order).
#include "gpu/cuda/cuda_moe_ep.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <utility>

#include "gpu/cuda/check.h"
#include "gpu/cuda/gemm.h"
#include "gpu/cuda/moe_combine.h"
#include "gpu/cuda/moe_experts.h"
#include "gpu/cuda/moe_permute.h"
#include "gpu/ep_exchange.h"
#include "model/checkpoint.h"

namespace conclave::gpu::cuda {
namespace {

using ep_clock = std::chrono::steady_clock;
double since(ep_clock::time_point t0) {
  return std::chrono::duration<double>(ep_clock::now() - t0).count();
}

/// Steps of at most this many received rows run the grouped GEMV (as the one-rank path's
/// kGroupedGemvMaxTokens); larger ones per-slot cuBLAS GEMMs.
constexpr size_t kGroupedGemvMaxRows = 128;

template <class T>
T* grow(pinned_buffer& b, size_t n) {
  return static_cast<T*>(b.ensure(std::max<size_t>(n, 1) * sizeof(T)));
}

}  // namespace

moe_ep::moe_ep(const model::model_config& c, elem t, stream_t stream, blas& blas, rank_context rank)
    : c_(c), t_(t), stream_(stream), blas_(blas), rank_(std::move(rank)) {
  load_.resize(static_cast<size_t>(c.num_layers));
  slot_tables_.resize(load_.size());
  for (size_t l = 0; l < load_.size(); ++l)
    if (c.is_moe_layer(static_cast<int64_t>(l)))
      load_[l].assign(static_cast<size_t>(c.num_experts), 0);
  spdlog::info("cuda backend: rank {} of {} ({}, {}), placement v{}", rank_.rank(), rank_.size(),
               rank_.comm->kind(), rank_.comm->device_buffers() ? "device buffers" : "host-staged",
               rank_.placement->version);
}

moe_ep::~moe_ep() = default;

cuda_expert_filter moe_ep::holds_filter() const {
  return [p = rank_.placement, me = rank_.rank()](int64_t l, int64_t e) {
    return p->holds(static_cast<int32_t>(l), static_cast<int32_t>(e), me);
  };
}

void moe_ep::forward(const cuda_layer& L, size_t layer, const void* hn, const int32_t* ids,
                     const float* wts, size_t rows, bool fast, float* out) {
  communicator& comm = *rank_.comm;
  const expert_map& placement = *rank_.placement;
  const size_t h = static_cast<size_t>(c_.hidden_size);
  const size_t k = static_cast<size_t>(c_.num_experts_per_tok);
  const size_t es = elem_size(t_);
  const size_t row_bytes = h * es;             // token rows travel in the weight dtype
  const size_t res_bytes = h * sizeof(float);  // results in fp32, as the one-rank path sums
  const bool on_device = comm.device_buffers();
  ++stats_.layers;

  // Route: the router's ids and weights come to the host (and, host-staged, the token
  // rows). The sync also frees every pinned buffer the previous layer's copies used.
  auto t0 = ep_clock::now();
  int32_t* h_ids = grow<int32_t>(h_ids_, rows * k);
  float* h_wts = grow<float>(h_wts_, rows * k);
  char* h_rows = on_device ? nullptr : grow<char>(h_rows_, rows * row_bytes);
  if (rows > 0) {
    CONCLAVE_CUDA_CHECK(
        cudaMemcpyAsync(h_ids, ids, rows * k * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    CONCLAVE_CUDA_CHECK(
        cudaMemcpyAsync(h_wts, wts, rows * k * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    if (!on_device)
      CONCLAVE_CUDA_CHECK(
          cudaMemcpyAsync(h_rows, hn, rows * row_bytes, cudaMemcpyDeviceToHost, stream_));
  }
  CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));

  ep_exchange ex({h_ids, rows * k}, {h_wts, rows * k}, rows, k, placement,
                 static_cast<int32_t>(layer), comm, load_[layer].data());
  stats_.expert_s += since(t0);

  // Dispatch: every rank learns what it receives from whom, then the expert ids and the
  // rows, which land in x_ (on the device) either way.
  t0 = ep_clock::now();
  if (on_device) {
    stats_.bytes_sent += dispatch_on_device(L, layer, ex, hn, row_bytes);
  } else {
    ex.exchange_counts();
    const size_t received = ex.received();
    std::vector<int32_t> recv_expert(received);
    char* recv_rows = grow<char>(h_recv_rows_, received * row_bytes);
    stats_.bytes_sent += ex.dispatch(h_rows, row_bytes, recv_expert.data(), recv_rows);
    x_.ensure(received * row_bytes);
    slot_ids_.ensure(received * sizeof(int32_t));
    if (received > 0) {
      // Each received row's slot: where its expert sits among this rank's.
      const auto& table = slot_table(L, layer);
      int32_t* slots = grow<int32_t>(h_slots_, received);
      for (size_t i = 0; i < received; ++i)
        slots[i] = slot_on(table, layer, comm.rank(), recv_expert[i]);
      CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(x_.get(), recv_rows, received * row_bytes,
                                          cudaMemcpyHostToDevice, stream_));
      CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(slot_ids_.get(), slots, received * sizeof(int32_t),
                                          cudaMemcpyHostToDevice, stream_));
    }
  }
  stats_.dispatch_s += since(t0);

  // Compute: the received rows (x_, their slots in slot_ids_) are a step of k = 1 over this
  // rank's slots; res_ gets their results in arrival order.
  t0 = ep_clock::now();
  run_received(L, ex.received(), fast);
  stats_.expert_s += since(t0);

  // Combine: the results go back to where their rows came from, in send order.
  t0 = ep_clock::now();
  const auto& items = ex.pairs();
  back_.ensure(items.size() * res_bytes);
  if (on_device) {
    CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));  // res_ written
    comm.all_to_all_v(res_.get(), ex.recv_counts(), back_.get(), ex.send_counts(), res_bytes);
    stats_.bytes_sent += ex.received() * res_bytes;
  } else {
    float* results = grow<float>(h_results_, ex.received() * h);
    if (ex.received() > 0)
      CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(results, res_.get(), ex.received() * res_bytes,
                                          cudaMemcpyDeviceToHost, stream_));
    CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    float* back = grow<float>(h_back_, items.size() * h);
    stats_.bytes_sent += ex.combine(results, res_bytes, back);
    if (!items.empty())
      CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(back_.get(), back, items.size() * res_bytes,
                                          cudaMemcpyHostToDevice, stream_));
  }
  stats_.combine_s += since(t0);

  // Sum each token's results in ascending expert id: moe_combine reads token t's k
  // (row, weight) pairs in the order given, so give them sorted by expert.
  t0 = ep_clock::now();
  if (rows > 0) {
    combine_.ensure(rows * k * (sizeof(int32_t) + sizeof(float)));
    auto* order = grow<int32_t>(h_combine_, rows * k * 2);
    auto* slot_row = order;
    auto* weight = reinterpret_cast<float*>(order + rows * k);
    std::vector<size_t> filled(rows, 0);
    for (size_t i : ex.sum_order()) {
      const size_t tok = items[i].token;
      slot_row[tok * k + filled[tok]] = static_cast<int32_t>(i);
      weight[tok * k + filled[tok]] = items[i].weight;
      ++filled[tok];
    }
    CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(combine_.get(), order,
                                        rows * k * (sizeof(int32_t) + sizeof(float)),
                                        cudaMemcpyHostToDevice, stream_));
    moe_combine(back_.as<float>(), combine_.as<int32_t>(),
                reinterpret_cast<const float*>(combine_.as<int32_t>() + rows * k), rows, k, h, out,
                stream_);
  }
  stats_.expert_s += since(t0);
}

int32_t moe_ep::slot_on(const std::vector<int32_t>& table, size_t layer, int32_t rank,
                        int32_t expert) const {
  const int32_t slot = table[static_cast<size_t>(rank) * static_cast<size_t>(c_.num_experts) +
                             static_cast<size_t>(expert)];
  if (slot < 0)
    throw std::logic_error(
        fmt::format("expert {} of layer {} was routed to rank {}, which does not hold it", expert,
                    layer, rank));
  return slot;
}

const std::vector<int32_t>& moe_ep::slot_table(const cuda_layer& L, size_t layer) {
  auto& table = slot_tables_[layer];
  if (!table.empty()) return table;
  const expert_map& placement = *rank_.placement;
  const auto E = static_cast<size_t>(c_.num_experts);
  const int32_t ranks = rank_.size(), me = rank_.rank();
  const auto l = static_cast<int32_t>(layer);
  // This rank's slots must be what its peers compute from the shared placement.
  if (placement.experts_on(l, me) != L.experts)
    throw std::logic_error(
        fmt::format("rank {}: the experts of layer {} are not the placement's (v{})", me, layer,
                    placement.version));
  table.assign(static_cast<size_t>(ranks) * E, -1);
  for (int32_t r = 0; r < ranks; ++r) {
    const auto on = placement.experts_on(l, r);
    for (size_t i = 0; i < on.size(); ++i)
      table[static_cast<size_t>(r) * E + static_cast<size_t>(on[i])] = static_cast<int32_t>(i);
  }
  return table;
}

uint64_t moe_ep::dispatch_on_device(const cuda_layer& L, size_t layer, ep_exchange& ex,
                                    const void* hn, size_t row_bytes) {
  communicator& comm = *rank_.comm;
  const auto ranks = static_cast<size_t>(comm.size());
  const size_t h = static_cast<size_t>(c_.hidden_size);
  // Counts: this rank's row goes up, every rank's comes back (ranks x ranks).
  auto* counts = grow<int64_t>(h_counts_, ranks + ranks * ranks);
  std::copy(ex.send_counts().begin(), ex.send_counts().end(), counts);
  d_counts_.ensure((ranks + ranks * ranks) * sizeof(int64_t));
  auto* d_counts = d_counts_.as<int64_t>();
  CONCLAVE_CUDA_CHECK(
      cudaMemcpyAsync(d_counts, counts, ranks * sizeof(int64_t), cudaMemcpyHostToDevice, stream_));
  CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  comm.all_gather(d_counts, d_counts + ranks, ranks * sizeof(int64_t));
  CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(counts + ranks, d_counts + ranks,
                                      ranks * ranks * sizeof(int64_t), cudaMemcpyDeviceToHost,
                                      stream_));
  CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  ex.take_counts({counts + ranks, ranks * ranks});
  const size_t received = ex.received();

  // The send buffer: each pair's token row, gathered on the device in send order, and the
  // slot its expert has on the receiving rank (from the placement every rank shares), so
  // the received slots go straight to the permutation without a trip to the host.
  const auto& items = ex.pairs();
  const size_t sent = items.size();
  const auto& table = slot_table(L, layer);
  auto* meta = grow<int32_t>(h_pairs_, 2 * sent);
  for (size_t i = 0; i < sent; ++i) {
    meta[i] = static_cast<int32_t>(items[i].token);
    meta[sent + i] = slot_on(table, layer, items[i].dest, items[i].expert);
  }
  d_pairs_.ensure(2 * sent * sizeof(int32_t));
  send_rows_.ensure(sent * row_bytes);
  slot_ids_.ensure(received * sizeof(int32_t));
  x_.ensure(received * row_bytes);
  if (sent > 0) {
    CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(d_pairs_.get(), meta, 2 * sent * sizeof(int32_t),
                                        cudaMemcpyHostToDevice, stream_));
    gather_rows(hn, t_, d_pairs_.as<int32_t>(), sent, h, send_rows_.get(), stream_);
  }
  CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the send buffers are written
  comm.all_to_all_v(d_pairs_.as<int32_t>() + sent, ex.send_counts(), slot_ids_.get(),
                    ex.recv_counts(), sizeof(int32_t));
  comm.all_to_all_v(send_rows_.get(), ex.send_counts(), x_.get(), ex.recv_counts(), row_bytes);
  return sent * (sizeof(int32_t) + row_bytes);
}

void moe_ep::run_received(const cuda_layer& L, size_t received, bool fast) {
  if (received == 0) return;
  const size_t h = static_cast<size_t>(c_.hidden_size);
  const size_t m = static_cast<size_t>(c_.moe_intermediate_size);
  const size_t es = elem_size(t_);
  const size_t row_bytes = h * es;
  const size_t res_bytes = h * sizeof(float);
  const size_t slots = L.experts.size();
  offsets_.ensure((slots + 1) * sizeof(int32_t));
  row_token_.ensure(received * sizeof(int32_t));
  slot_row_.ensure(received * sizeof(int32_t));
  active_.ensure(slots * sizeof(int32_t));
  xs_.ensure(received * row_bytes);
  gu_.ensure(received * 2 * m * sizeof(float));
  act_.ensure(received * m * es);
  dn_.ensure(received * res_bytes);
  res_.ensure(received * res_bytes);
  const bool grouped = fast && received <= kGroupedGemvMaxRows;
  moe_permute(slot_ids_.as<int32_t>(), received, 1, slots, offsets_.as<int32_t>(),
              row_token_.as<int32_t>(), slot_row_.as<int32_t>(),
              grouped ? active_.as<int32_t>() : nullptr, stream_);
  expert_rows x;
  x.gate_up = &L.gate_up;
  x.down = &L.down;
  x.t = t_;
  x.x = x_.get();
  x.row_token = row_token_.as<int32_t>();
  x.offsets = offsets_.as<int32_t>();
  x.active = active_.as<int32_t>();
  x.experts = slots;
  x.rows = received;
  x.max_rows = received;
  x.h = h;
  x.m = m;
  x.gu = gu_.as<float>();
  x.act = act_.get();
  x.dn = dn_.as<float>();
  if (grouped) {
    grouped_experts(x, received, false, false, stream_);
  } else {
    // Quantized slots dequantize one at a time into dq_ (no graphs here: growing is fine).
    if (L.gate_up.quantized() || L.down.quantized()) dq_.ensure(2 * m * h * es);
    gemm_experts(x, blas_, grow<int32_t>(h_offsets_, slots + 1), xs_.get(), dq_, stream_);
  }
  // Back to arrival order: received row i's result is permuted row slot_row[i].
  gather_rows(dn_.get(), elem::f32, slot_row_.as<int32_t>(), received, h, res_.get(), stream_);
}

void moe_ep::apply_placement(const model::checkpoint& ckpt, cuda_weights& w,
                             std::shared_ptr<const expert_map> placement) {
  if (!placement) throw std::invalid_argument("apply_placement: no placement");
  if (const auto why = placement->check(static_cast<int32_t>(c_.num_layers),
                                        static_cast<int32_t>(c_.num_experts));
      !why.empty())
    throw std::invalid_argument("apply_placement: " + why);
  if (placement->ranks != rank_.size())
    throw std::invalid_argument("apply_placement: the placement is for another replica size");
  CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  const int32_t me = rank_.rank();
  for (size_t l = 0; l < w.layers.size(); ++l) {
    if (!w.layers[l].moe) continue;
    reload_cuda_experts(ckpt, w, l, placement->experts_on(static_cast<int32_t>(l), me));
  }
  // Experts made on the device (random weights) are filled on the default stream; the
  // next forward runs on stream_, which does not wait for it.
  CONCLAVE_CUDA_CHECK(cudaDeviceSynchronize());
  rank_.placement = std::move(placement);
  for (auto& table : slot_tables_) table.clear();  // rebuilt from the new placement
}

std::vector<std::vector<int64_t>> moe_ep::take_expert_load() {
  auto out = load_;
  for (auto& layer : load_) std::fill(layer.begin(), layer.end(), 0);
  return out;
}

ep_stats moe_ep::take_stats() {
  return std::exchange(stats_, ep_stats{});
}

}  // namespace conclave::gpu::cuda
