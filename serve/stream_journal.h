// stream_journal: the journal of resumable streams (docs/gateway.md, "Resumable
// streams"). A streamed request's header (its JSON body, id, `created`, sampling seed and
// API key) and the events it sent (numbered from 1) are kept in memory and written to the
// state store in batches (flush(), every gateway.journal_flush_s), never per token. A
// client whose connection dropped, or whose server was killed and restarted, asks for the
// events after the last it saw: the server runs the request again from its header (same
// seed, same id) and sends only what follows, after checking the events it regenerates
// against those stored. Entries expire gateway.resume_window_s after their last change.
// Plain C++; thread-safe. When the store fails, streams stay in memory (the log says so
// once) and are written by the next flush that succeeds.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "store/state_store.h"

namespace conclave::serve {

class stream_journal {
 public:
  /// `keep_s`: how long a stream stays resumable after its last change.
  stream_journal(std::shared_ptr<store::state_store> store, double keep_s);

  /// Starts journaling stream `header.id` (its events empty), or, for a stream already
  /// journaled (a resumed run), carries on with the events it has.
  void begin(store::journal_entry header);
  /// Event number `n` (from 1) of stream `id`. Kept only when it is the next one: two runs
  /// of one stream (two clients resuming it at once) never write an event twice.
  void append(const std::string& id, int64_t n, std::string event);
  /// Stream `id` ended. `complete`: its last event is journaled (it finished, or failed
  /// with an error the client saw); else it was cut (the client went away) and a resume
  /// runs it again.
  void end(const std::string& id, bool complete);

  /// Stream `id` as far as known: what this process holds (written or not), else what
  /// the store has. Throws store::store_error when only the store could say and it fails.
  std::optional<store::journal_entry> find(const std::string& id);

  /// Writes what changed since the last flush in one store write, drops ended streams
  /// that are written from memory, and expires old ones. On a store failure keeps
  /// everything for the next flush (logged once until one succeeds). True when nothing is
  /// left to write.
  bool flush(int64_t now_ms = unix_ms());
  /// Streams held in memory (running, or ended and not written yet).
  size_t held() const;

  static int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

 private:
  struct stream {
    store::journal_entry entry;  ///< every event this process knows
    size_t written = 0;          ///< events the store has
    bool header_written = false;
    bool ended = false;
    bool dirty = true;  ///< changed since the last write
  };

  const std::shared_ptr<store::state_store> store_;
  const int64_t keep_ms_;
  mutable std::mutex mutex_;
  std::map<std::string, stream> streams_;
  std::mutex flush_mutex_;  ///< one flush at a time (held while the store is written)
  bool failing_ = false;    ///< the last flush failed (logged once); under flush_mutex_
  int64_t last_expire_ = 0;
};

}  // namespace conclave::serve
