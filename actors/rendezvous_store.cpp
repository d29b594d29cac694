// The rendezvous store actor (see the header).
#include "actors/rendezvous_store.h"

#include <spdlog/fmt/fmt.h>
#include <map>

#include "actors/cluster_messages.h"

namespace conclave::actors {
namespace {

struct store_state {
  std::map<std::string, std::vector<char>> values;
  std::multimap<std::string, caf::response_promise> waiting;
};

}  // namespace

caf::behavior rendezvous_store(caf::event_based_actor* self) {
  auto st = std::make_shared<store_state>();
  return {
      [st](rv_set_atom, const std::string& key, const std::vector<char>& value) {
        st->values[key] = value;
        auto [b, e] = st->waiting.equal_range(key);
        for (auto it = b; it != e; ++it) it->second.deliver(value);
        st->waiting.erase(b, e);
      },
      [self, st](rv_get_atom, const std::string& key,
                 int64_t timeout_ms) -> caf::result<std::vector<char>> {
        if (auto it = st->values.find(key); it != st->values.end()) return it->second;
        auto promise = self->make_response_promise();
        st->waiting.emplace(key, promise);
        (void)timeout_ms;  // the asking side's request timeout bounds the wait
        return promise;
      },
  };
}

gpu::rendezvous rendezvous_through(caf::actor_system& sys, caf::actor store) {
  gpu::rendezvous rv;
  rv.set = [&sys, store](const std::string& key, const std::vector<char>& value) {
    caf::scoped_actor self{sys};
    self->send(store, rv_set_atom::value, key, value);
  };
  rv.get = [&sys, store](const std::string& key, std::chrono::milliseconds timeout) {
    caf::scoped_actor self{sys};
    std::vector<char> out;
    std::string error;
    self->request(store, timeout, rv_get_atom::value, key, static_cast<int64_t>(timeout.count()))
        .receive([&](std::vector<char>& v) { out = std::move(v); },
                 [&](caf::error& err) { error = sys.render(err); });
    if (!error.empty())
      throw gpu::collective_error(fmt::format("rendezvous: \"{}\": {}", key, error));
    return out;
  };
  return rv;
}

}  // namespace conclave::actors
