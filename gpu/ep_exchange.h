// ep_exchange: the host side of one expert-parallel MoE layer on one rank, shared by the
// cpu and cuda backends. From the router's choice (top-k expert ids and weights per
// token) it forms the (token, expert) pairs, grouped by the rank that runs them, then by
// expert, then by token; exchanges counts, expert ids and rows with the other ranks; sends
// the results back; and gives the order in which a token's results are summed (ascending
// expert id: the one-rank order, so only GEMM blocking can differ from one rank).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "gpu/collectives.h"
#include "gpu/expert_map.h"

namespace conclave::gpu {

struct ep_pair {
  int32_t dest = 0;  ///< the rank that runs it
  int32_t expert = 0;
  uint32_t token = 0;  ///< the row on this rank
  float weight = 0;
};

class ep_exchange {
 public:
  /// ids, weights: [tokens, k]. `routed` (size experts, may be null) counts the pairs this
  /// rank routes to each expert.
  ep_exchange(std::span<const int32_t> ids, std::span<const float> weights, size_t tokens, size_t k,
              const expert_map& placement, int32_t layer, communicator& comm, int64_t* routed);

  /// The pairs this rank sends, in send order.
  const std::vector<ep_pair>& pairs() const { return pairs_; }
  /// Rows this rank receives (after exchange_counts()).
  size_t received() const { return received_; }

  /// Every rank learns what it receives from whom (an all_gather of the send counts).
  /// Host buffers; a communicator of device buffers gathers send_counts() itself and hands
  /// the result to take_counts().
  void exchange_counts();
  /// Pairs this rank sends to each rank (in rank order).
  const std::vector<int64_t>& send_counts() const { return send_counts_; }
  /// Rows this rank receives from each rank (after exchange_counts() or take_counts()).
  const std::vector<int64_t>& recv_counts() const { return recv_counts_; }
  /// Takes every rank's send_counts(), gathered in rank order (ranks x ranks).
  void take_counts(std::span<const int64_t> matrix);
  /// Sends each pair's row (`rows` holds this rank's token rows, `row_bytes` each) and its
  /// expert id; fills recv_expert[received()] and recv_rows[received() * row_bytes], in
  /// arrival order (by source rank, then as sent). Returns the bytes this rank sent.
  uint64_t dispatch(const void* rows, size_t row_bytes, int32_t* recv_expert, void* recv_rows);
  /// Sends the results of the received rows (arrival order, `result_bytes` each) back;
  /// `back` gets pairs().size() results in send order. Returns the bytes sent.
  uint64_t combine(const void* results, size_t result_bytes, void* back);

  /// Pair indices in the order a token's results are summed: by expert, then token.
  std::vector<size_t> sum_order() const;
  /// Received row indices grouped by expert (arrival order kept within one).
  static std::vector<size_t> by_expert(std::span<const int32_t> recv_expert);

 private:
  communicator& comm_;
  std::vector<ep_pair> pairs_;
  std::vector<int64_t> send_counts_, recv_counts_;
  size_t received_ = 0;
};

}  // namespace conclave::gpu
