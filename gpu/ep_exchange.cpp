// ep_exchange (see the header).
#include "gpu/ep_exchange.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>

namespace conclave::gpu {

ep_exchange::ep_exchange(std::span<const int32_t> ids, std::span<const float> weights,
                         size_t tokens, size_t k, const expert_map& placement, int32_t layer,
                         communicator& comm, int64_t* routed)
    : comm_(comm) {
  const int32_t me = comm.rank();
  pairs_.reserve(tokens * k);
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t j = 0; j < k; ++j) {
      const int32_t e = ids[t * k + j];
      pairs_.push_back(
          {placement.route(layer, e, me, t), e, static_cast<uint32_t>(t), weights[t * k + j]});
      if (routed) ++routed[e];
    }
  }
  std::stable_sort(pairs_.begin(), pairs_.end(), [](const ep_pair& a, const ep_pair& b) {
    return a.dest != b.dest ? a.dest < b.dest : a.expert < b.expert;
  });
  send_counts_.assign(static_cast<size_t>(comm.size()), 0);
  for (const ep_pair& p : pairs_) ++send_counts_[static_cast<size_t>(p.dest)];
}

void ep_exchange::exchange_counts() {
  const size_t ranks = send_counts_.size();
  std::vector<int64_t> matrix(ranks * ranks);
  comm_.all_gather(send_counts_.data(), matrix.data(), ranks * sizeof(int64_t));
  take_counts(matrix);
}

void ep_exchange::take_counts(std::span<const int64_t> matrix) {
  const size_t ranks = send_counts_.size();
  const auto me = static_cast<size_t>(comm_.rank());
  if (matrix.size() != ranks * ranks)
    throw std::invalid_argument("ep_exchange: the gathered counts are not ranks x ranks");
  recv_counts_.resize(ranks);
  for (size_t r = 0; r < ranks; ++r) recv_counts_[r] = matrix[r * ranks + me];
  received_ =
      static_cast<size_t>(std::accumulate(recv_counts_.begin(), recv_counts_.end(), int64_t{0}));
}

uint64_t ep_exchange::dispatch(const void* rows, size_t row_bytes, int32_t* recv_expert,
                               void* recv_rows) {
  std::vector<int32_t> send_expert(pairs_.size());
  std::vector<char> send_rows(pairs_.size() * row_bytes);
  const auto* src = static_cast<const char*>(rows);
  for (size_t i = 0; i < pairs_.size(); ++i) {
    send_expert[i] = pairs_[i].expert;
    std::memcpy(send_rows.data() + i * row_bytes, src + pairs_[i].token * row_bytes, row_bytes);
  }
  comm_.all_to_all_v(send_expert.data(), send_counts_, recv_expert, recv_counts_, sizeof(int32_t));
  comm_.all_to_all_v(send_rows.data(), send_counts_, recv_rows, recv_counts_, row_bytes);
  return pairs_.size() * (sizeof(int32_t) + row_bytes);
}

uint64_t ep_exchange::combine(const void* results, size_t result_bytes, void* back) {
  comm_.all_to_all_v(results, recv_counts_, back, send_counts_, result_bytes);
  return received_ * result_bytes;
}

std::vector<size_t> ep_exchange::sum_order() const {
  std::vector<size_t> order(pairs_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return pairs_[a].expert != pairs_[b].expert ? pairs_[a].expert < pairs_[b].expert
                                                : pairs_[a].token < pairs_[b].token;
  });
  return order;
}

std::vector<size_t> ep_exchange::by_expert(std::span<const int32_t> recv_expert) {
  std::vector<size_t> order(recv_expert.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return recv_expert[a] < recv_expert[b]; });
  return order;
}

}  // namespace conclave::gpu
