// The expert-parallel MoE layer of the CUDA backend: moe_forward_ep (gpu/cpu/moe.cpp) with
// the router, the experts and the weighted sum on the device. The exchange takes the
// communicator's buffers: a communicator of host buffers (Gloo; ranks sharing one device
// included) gets the rows and results staged through pinned memory, one of device
// buffers (NCCL) gets them where they are, and only the routing (ids, weights, counts,
// expert ids: a few bytes a pair) crosses to the host. Plain C++ header (no CUDA
// includes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "gpu/backend.h"
#include "gpu/cuda/cuda_weights.h"
#include "gpu/cuda/device_buffer.h"

namespace conclave::gpu::cuda {

class blas;
}  // namespace conclave::gpu::cuda

namespace conclave::gpu {
class ep_exchange;
}

namespace conclave::gpu::cuda {

/// One rank's MoE layers: the exchange buffers, the load per expert and the time spent.
class moe_ep {
 public:
  /// `rank` must be expert-parallel (checked_rank_context); `blas` runs on `stream`.
  moe_ep(const model::model_config& c, elem t, stream_t stream, blas& blas, rank_context rank);
  ~moe_ep();
  moe_ep(const moe_ep&) = delete;
  moe_ep& operator=(const moe_ep&) = delete;

  /// The filter that loads this rank's experts.
  cuda_expert_filter holds_filter() const;

  /// out[t] = sum over t's top-k (ids, wts: [rows, k] on the device, from router_topk) of
  /// weight * expert(hn[t]), the experts run on the ranks holding them and the k results
  /// summed in ascending expert id. hn: [rows, hidden] of t; out: [rows, hidden] fp32.
  /// Every rank calls it for every MoE layer in order, rows = 0 when it has no tokens.
  /// `fast`: the grouped GEMV for up to 128 received rows, else per-expert cuBLAS GEMMs.
  void forward(const cuda_layer& L, size_t layer, const void* hn, const int32_t* ids,
               const float* wts, size_t rows, bool fast, float* out);

  /// Switches to `placement`, reloading the experts of `w` this rank gains or loses.
  void apply_placement(const model::checkpoint& ckpt, cuda_weights& w,
                       std::shared_ptr<const expert_map> placement);
  uint64_t placement_version() const { return rank_.placement->version; }
  std::vector<std::vector<int64_t>> take_expert_load();
  ep_stats take_stats();

 private:
  /// The device dispatch: counts gathered, each pair's row gathered into the send buffer
  /// and sent with its expert's slot on the receiver; the received rows land in x_, their
  /// slots in slot_ids_. Returns the bytes sent.
  uint64_t dispatch_on_device(const cuda_layer& L, size_t layer, ep_exchange& ex, const void* hn,
                              size_t row_bytes);
  /// [rank * experts + expert]: the expert's slot on that rank under the current placement,
  /// -1 where the rank does not hold it. Built once per layer and placement, after checking
  /// that this rank's slots of `L` are the placement's.
  const std::vector<int32_t>& slot_table(const cuda_layer& L, size_t layer);
  /// The slot of `expert` on `rank` in `table`; std::logic_error where the rank does not
  /// hold it (a routing the placement does not allow).
  int32_t slot_on(const std::vector<int32_t>& table, size_t layer, int32_t rank,
                  int32_t expert) const;
  /// The `received` rows of x_ (their slots in slot_ids_) through this rank's experts; res_
  /// gets their fp32 results in arrival order.
  void run_received(const cuda_layer& L, size_t received, bool fast);

  model::model_config c_;
  elem t_;
  stream_t stream_;
  blas& blas_;
  rank_context rank_;
  std::vector<std::vector<int64_t>> load_;  ///< [layer][expert] pairs routed since taken
  ep_stats stats_;
  std::vector<std::vector<int32_t>> slot_tables_;  ///< [layer]: slot_table(), empty: not built

  // Host side (pinned where copies to or from the device use it).
  pinned_buffer h_ids_, h_wts_, h_rows_, h_recv_rows_, h_slots_, h_results_, h_back_, h_offsets_,
      h_combine_, h_counts_, h_pairs_;
  // Device side, grown to the largest layer call seen.
  device_buffer dq_;  ///< a quantized slot dequantized for cuBLAS
  device_buffer x_, slot_ids_, offsets_, row_token_, slot_row_, active_, xs_, gu_, act_, dn_, res_,
      back_, combine_;
  // Device buffers of a device exchange: counts, pair tokens and receiver slots, sent rows.
  device_buffer d_counts_, d_pairs_, send_rows_;
};

}  // namespace conclave::gpu::cuda
