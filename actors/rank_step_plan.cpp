#include "actors/rank_step_plan.h"

#include <stdexcept>

namespace conclave::actors {

rank_step make_rank_step(const engine::rank_batch& part, const gpu::kv_transfer& moves,
                         uint64_t epoch, uint64_t step, uint64_t placement_version,
                         bool want_load) {
  rank_step msg;
  msg.epoch = epoch;
  msg.step = step;
  msg.placement_version = placement_version;
  msg.want_load = want_load;
  for (const auto& seq : part.batch) {
    wire_sequence w;
    w.tokens.assign(seq.tokens.begin(), seq.tokens.end());
    w.num_cached = seq.num_cached;
    w.block_table.assign(seq.block_table.begin(), seq.block_table.end());
    w.all_logits = seq.all_logits;
    if (seq.sample != nullptr) to_wire(*seq.sample, w);
    msg.seqs.push_back(std::move(w));
  }
  for (const auto& c : moves.to_host)
    msg.to_host.insert(msg.to_host.end(), {c.device_block, c.host_block});
  for (const auto& c : moves.to_device)
    msg.to_device.insert(msg.to_device.end(), {c.device_block, c.host_block});
  return msg;
}

void add_expert_load(std::vector<std::vector<int64_t>>& total,
                     std::vector<std::vector<int64_t>>& part) {
  if (total.empty()) {
    total = std::move(part);
    return;
  }
  for (size_t l = 0; l < total.size() && l < part.size(); ++l)
    for (size_t e = 0; e < total[l].size() && e < part[l].size(); ++e) total[l][e] += part[l][e];
}

gpu::step_output rank_output(rank_step_done& done) {
  gpu::step_output out;
  out.vocab = done.vocab;
  out.logits = std::move(done.logits);
  out.row_begin.assign(done.row_begin.begin(), done.row_begin.end());
  out.sampled = std::move(done.sampled);
  return out;
}

void to_wire(const gpu::device_sampling& spec, wire_sequence& w) {
  w.sample = true;
  w.temperature = spec.temperature;
  w.top_k = spec.top_k;
  w.top_p = spec.top_p;
  w.min_p = spec.min_p;
  w.repetition_penalty = spec.repetition_penalty;
  w.u = spec.u;
  w.vocab_limit = spec.vocab_limit;
  w.penalty_tokens.clear();
  w.penalty_repeated.clear();
  w.penalty_subtract.clear();
  for (const auto& p : spec.penalties) {
    w.penalty_tokens.push_back(p.token);
    w.penalty_repeated.push_back(p.repeated);
    w.penalty_subtract.push_back(p.subtract);
  }
}

gpu::device_sampling from_wire(const wire_sequence& w, std::vector<gpu::penalty_entry>& penalties) {
  const size_t n = w.penalty_tokens.size();
  if (w.penalty_repeated.size() != n || w.penalty_subtract.size() != n)
    throw std::invalid_argument("rank step: a sequence's penalty lists differ in length");
  penalties.clear();
  for (size_t i = 0; i < n; ++i)
    penalties.push_back({w.penalty_tokens[i], w.penalty_repeated[i], w.penalty_subtract[i]});
  gpu::device_sampling d;
  d.temperature = w.temperature;
  d.top_k = w.top_k;
  d.top_p = w.top_p;
  d.min_p = w.min_p;
  d.repetition_penalty = w.repetition_penalty;
  d.u = w.u;
  d.vocab_limit = w.vocab_limit;
  d.penalties = penalties;
  return d;
}

}  // namespace conclave::actors
