// Registration of the cluster wire types (see cluster_messages.h).
#include "actors/cluster_messages.h"

namespace conclave::actors {

void add_cluster_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<gpu::expert_map>("conclave.expert_map");
  cfg.add_message_type<node_hello>("conclave.node_hello");
  cfg.add_message_type<node_welcome>("conclave.node_welcome");
  cfg.add_message_type<rank_spec>("conclave.rank_spec");
  cfg.add_message_type<rank_ready>("conclave.rank_ready");
  cfg.add_message_type<wire_sequence>("conclave.wire_sequence");
  cfg.add_message_type<std::vector<wire_sequence>>("conclave.wire_sequences");
  cfg.add_message_type<rank_step>("conclave.rank_step");
  cfg.add_message_type<rank_step_done>("conclave.rank_step_done");
  cfg.add_message_type<std::vector<char>>("conclave.bytes");
  cfg.add_message_type<std::vector<std::vector<std::vector<int32_t>>>>("conclave.holders");
  cfg.add_message_type<std::vector<std::vector<int64_t>>>("conclave.expert_load");
}

}  // namespace conclave::actors
