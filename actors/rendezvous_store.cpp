// The rendezvous store actor (see the header).
#include "actors/rendezvous_store.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <charconv>
#include <map>

#include "actors/cluster_messages.h"

namespace conclave::actors {
namespace {

struct store_state {
  std::map<std::string, std::vector<char>> values;
  std::map<std::string, uint64_t> newest_epoch;  ///< per "r<replica>": its newest epoch
  std::multimap<std::string, caf::response_promise> waiting;
};

/// Keys are "r<replica>/e<epoch>/...": once a replica's newer epoch meets, its older
/// epochs' keys are of no use to anyone (their ranks are fenced) and are dropped.
void forget_older_epochs(store_state& st, const std::string& key) {
  const size_t slash = key.find('/');
  if (key.empty() || key[0] != 'r' || slash == std::string::npos || key.size() < slash + 3 ||
      key[slash + 1] != 'e')
    return;
  const std::string replica = key.substr(0, slash);
  uint64_t epoch = 0;
  const char* p = key.data() + slash + 2;
  const char* end = key.data() + key.size();
  const auto [q, ec] = std::from_chars(p, end, epoch);
  if (ec != std::errc()) return;
  (void)q;
  auto& newest = st.newest_epoch[replica];
  if (epoch <= newest) return;
  newest = epoch;
  const std::string keep = replica + "/e" + std::to_string(epoch) + "/";
  const std::string family = replica + "/e";
  for (auto it = st.values.lower_bound(family);
       it != st.values.end() && it->first.compare(0, family.size(), family) == 0;) {
    if (it->first.compare(0, keep.size(), keep) != 0)
      it = st.values.erase(it);
    else
      ++it;
  }
}

}  // namespace

caf::behavior rendezvous_store(caf::event_based_actor* self, size_t max_keys) {
  auto st = std::make_shared<store_state>();
  return {
      [st, max_keys](rv_set_atom, const std::string& key, const std::vector<char>& value) {
        forget_older_epochs(*st, key);
        if (st->values.size() >= max_keys && !st->values.count(key)) {
          spdlog::warn("rendezvous: {} keys held; \"{}\" dropped", max_keys, key);
          return;
        }
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
