// Least outstanding tokens, prefix affinity among equals, failover-aware.
#include "actors/router.h"

#include <spdlog/spdlog.h>

#include "serve/placement.h"

#include <algorithm>

namespace conclave::actors {

caf::behavior router_actor(caf::stateful_actor<router_state>* self,
                           std::vector<caf::actor> engines) {
  for (auto& e : engines) {
    self->monitor(e);
    self->state.engines.push_back({std::move(e), 0});
  }
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& e = self->state.engines;
    std::erase_if(e, [&](const router_entry& r) { return r.engine.address() == msg.source; });
    spdlog::warn("router: an engine went down ({} left)", e.size());
  });
  return {
      [self](add_engine_atom, caf::actor engine) {
        self->monitor(engine);
        self->state.engines.push_back({std::move(engine), 0});
      },
      [self](drain_atom a, const caf::actor& engine) {
        for (auto& r : self->state.engines) {
          if (r.engine == engine) r.draining = true;
        }
        return a;
      },
      [self](submit_atom a, engine_submit& m) -> caf::result<caf::message> {
        auto& st = self->state;
        std::vector<size_t> open;  // engines that take new requests
        std::vector<int64_t> load;
        int64_t skip = -1;
        for (size_t i = 0; i < st.engines.size(); ++i) {
          if (st.engines[i].draining) continue;
          if (m.avoid && st.engines[i].engine.address() == m.avoid)
            skip = static_cast<int64_t>(open.size());
          open.push_back(i);
          load.push_back(st.engines[i].outstanding);
        }
        if (open.empty())
          return caf::make_error(caf::sec::request_receiver_down, "no live model replica");
        size_t pick = open.size();
        // The choices of one prompt go where its first went (its prefill is shared there).
        const uint64_t group = m.params.prefill_group;
        if (group != 0) {
          if (auto it = st.groups.find(group); it != st.groups.end()) {
            for (size_t k = 0; k < open.size(); ++k) {
              if (st.engines[open[k]].engine.address() == it->second &&
                  static_cast<int64_t>(k) != skip)
                pick = k;
            }
          }
        }
        if (pick == open.size()) pick = serve::pick_engine(load, m.prompt, skip);
        router_entry& target = st.engines[open[pick]];
        if (group != 0) st.remember_group(group, target.engine.address());
        target.outstanding += serve::reservation(m.prompt.size(), m.params.max_tokens);
        return self->delegate(target.engine, a, std::move(m));
      },
      [self](finished_atom, const caf::actor_addr& engine, int64_t reserved) {
        for (auto& r : self->state.engines) {
          if (r.engine.address() == engine)
            r.outstanding = std::max<int64_t>(0, r.outstanding - reserved);
        }
      },
  };
}

}  // namespace conclave::actors
