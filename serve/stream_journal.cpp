// The journal of resumable streams (see the header).
#include "serve/stream_journal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

namespace conclave::serve {
namespace {

// How often the store is asked to forget expired streams.
constexpr int64_t kExpireEveryMs = 60'000;

}  // namespace

stream_journal::stream_journal(std::shared_ptr<store::state_store> store, double keep_s)
    : store_(std::move(store)), keep_ms_(static_cast<int64_t>(keep_s * 1000)) {}

void stream_journal::begin(store::journal_entry header) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(header.id);
  if (it != streams_.end()) {  // a resumed run of a stream this process still holds
    it->second.ended = false;
    it->second.entry.finished = false;
    it->second.dirty = true;
    return;
  }
  stream s;
  // Events given come from the store (a resumed run after a restart): written already.
  s.written = header.events.size();
  header.finished = false;
  s.entry = std::move(header);
  streams_.emplace(s.entry.id, std::move(s));
}

void stream_journal::append(const std::string& id, int64_t n, std::string event) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  if (n != static_cast<int64_t>(it->second.entry.events.size()) + 1) return;
  it->second.entry.events.push_back(std::move(event));
  it->second.dirty = true;
}

void stream_journal::end(const std::string& id, bool complete) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  it->second.ended = true;
  it->second.entry.finished = complete;
  it->second.dirty = true;
}

std::optional<store::journal_entry> stream_journal::find(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = streams_.find(id); it != streams_.end()) return it->second.entry;
  }
  return store_->journal(id);
}

size_t stream_journal::held() const {
  std::lock_guard lock(mutex_);
  return streams_.size();
}

bool stream_journal::flush(int64_t now_ms) {
  // One flush at a time; appends go on while the store is written.
  std::lock_guard flush_lock(flush_mutex_);
  struct taken {
    std::string id;
    size_t events;  ///< the stream's event count in this write
    bool ended;
  };
  std::vector<store::journal_update> updates;
  std::vector<taken> what;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, s] : streams_) {
      if (!s.dirty) continue;
      store::journal_update u;
      u.is_new = !s.header_written;
      u.first = static_cast<int64_t>(s.written) + 1;
      u.entry.id = s.entry.id;
      u.entry.key_id = s.entry.key_id;
      u.entry.route = s.entry.route;
      if (u.is_new) u.entry.body = s.entry.body;
      u.entry.seed = s.entry.seed;
      u.entry.created = s.entry.created;
      u.entry.finished = s.ended && s.entry.finished;
      u.entry.expires_ms = now_ms + keep_ms_;
      u.entry.events.assign(s.entry.events.begin() + static_cast<std::ptrdiff_t>(s.written),
                            s.entry.events.end());
      what.push_back({id, s.entry.events.size(), s.ended});
      updates.push_back(std::move(u));
    }
  }
  try {
    if (!updates.empty()) store_->write_journal(updates);
    if (now_ms - last_expire_ >= kExpireEveryMs) {
      store_->expire_journal(now_ms);
      last_expire_ = now_ms;
    }
  } catch (const store::store_error& e) {
    if (!failing_) {
      spdlog::warn(
          "stream journal: cannot write to the state store ({}); resumable streams "
          "are kept in memory until it works again",
          e.what());
    }
    failing_ = true;
    // Streams that ended and could not be written for longer than they are kept: gone.
    std::lock_guard lock(mutex_);
    std::erase_if(streams_, [&](const auto& kv) {
      return kv.second.ended && kv.second.entry.expires_ms != 0 &&
             kv.second.entry.expires_ms < now_ms;
    });
    for (auto& [id, s] : streams_) {
      if (s.ended && s.entry.expires_ms == 0) s.entry.expires_ms = now_ms + keep_ms_;
    }
    return false;
  }
  if (failing_) spdlog::info("stream journal: writing to the state store again");
  failing_ = false;
  std::lock_guard lock(mutex_);
  for (const auto& t : what) {
    auto it = streams_.find(t.id);
    if (it == streams_.end()) continue;
    stream& s = it->second;
    s.header_written = true;
    s.written = std::max(s.written, t.events);
    s.dirty = s.entry.events.size() > s.written || s.ended != t.ended;
    if (s.ended && !s.dirty) streams_.erase(it);  // the store has all of it
  }
  return true;
}

}  // namespace conclave::serve
