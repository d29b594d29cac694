#include "actors/rank_step_plan.h"

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
    msg.seqs.push_back({std::vector<int32_t>(seq.tokens.begin(), seq.tokens.end()), seq.num_cached,
                        std::vector<int32_t>(seq.block_table.begin(), seq.block_table.end()),
                        seq.all_logits});
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
  return out;
}

}  // namespace conclave::actors
