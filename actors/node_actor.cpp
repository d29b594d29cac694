// The node actor (see the header).
#include "actors/node_actor.h"

#include "model/checkpoint.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "actors/messages.h"
#include "model/checkpoint.h"

namespace conclave::actors {

caf::behavior node_actor(caf::event_based_actor* self, node_options opts) {
  auto o = std::make_shared<node_options>(std::move(opts));
  auto workers = std::make_shared<std::vector<caf::actor>>(o->slots.size());
  // The node's ranks end with it (a lost membership fences all of them).
  self->attach_functor([workers] {
    for (auto& w : *workers)
      if (w) caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
    workers->clear();
  });
  return {
      [self, o, workers](spawn_rank_atom, rank_spec& spec) -> caf::result<rank_ready> {
        if (spec.slot < 0 || static_cast<size_t>(spec.slot) >= o->slots.size())
          return caf::make_error(caf::sec::invalid_argument,
                                 fmt::format("this node has no rank slot {}", spec.slot));
        auto& current = (*workers)[static_cast<size_t>(spec.slot)];
        if (current) self->send_exit(current, caf::exit_reason::user_shutdown);
        spdlog::info("node: rank {} of replica {} (epoch {}) on slot {}", spec.rank, spec.replica,
                     spec.epoch, spec.slot);
        current = self->spawn<caf::detached>(
            rank_worker, spec, o->slots[static_cast<size_t>(spec.slot)], o->model_dir, o->host);
        auto rp = self->make_response_promise<rank_ready>();
        self->request(current, caf::infinite, start_atom::value)
            .then([rp](rank_ready& r) mutable { rp.deliver(std::move(r)); },
                  [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [](kill_node_atom) {
        spdlog::warn("node: killed by the coordinator (kill_node drill)");
        std::_Exit(137);
      },
  };
}

std::string checkpoint_fingerprint(const std::filesystem::path& model_dir) {
  XXH64_state_t* h = XXH64_createState();
  XXH64_reset(h, 0);
  const auto add = [&](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return;
    std::stringstream ss;
    ss << in.rdbuf();
    const auto s = ss.str();
    XXH64_update(h, s.data(), s.size());
  };
  add(model_dir / "config.json");
  add(model_dir / "model.safetensors.index.json");
  add(model_dir / model::kRandomWeightsFile);
  const auto v = XXH64_digest(h);
  XXH64_freeState(h);
  return fmt::format("{:016x}", v);
}

}  // namespace conclave::actors
