// Round-robin over live engines; an engine's down message removes it.
#include "actors/router.h"

#include <spdlog/spdlog.h>

namespace conclave::actors {

caf::behavior router_actor(caf::stateful_actor<router_state>* self,
                           std::vector<caf::actor> engines) {
  for (auto& e : engines) {
    self->monitor(e);
    self->state.engines.push_back(std::move(e));
  }
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& e = self->state.engines;
    std::erase_if(e, [&](const caf::actor& a) { return a.address() == msg.source; });
    spdlog::warn("router: an engine went down ({} left)", e.size());
  });
  return {
      [self](add_engine_atom, caf::actor engine) {
        self->monitor(engine);
        self->state.engines.push_back(std::move(engine));
      },
      [self](submit_atom a, engine_submit& m) -> caf::result<caf::message> {
        auto& st = self->state;
        if (st.engines.empty())
          return caf::make_error(caf::sec::request_receiver_down, "no live model replica");
        const caf::actor& target = st.engines[st.next++ % st.engines.size()];
        return self->delegate(target, a, std::move(m));
      },
  };
}

}  // namespace conclave::actors
