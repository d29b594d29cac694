// stream_resume: resumable streams on the wire (docs/gateway.md, "Resumable streams").
// Every streamed request's chunks are numbered from 1 and journaled
// (serve/stream_journal.h): SSE sends `id: <request id>:<n>` before each chunk, WebSocket
// chunk frames carry "n". A client that lost its stream asks for the chunks after the
// last it saw (SSE: the same POST with `Last-Event-ID: <request id>:<n>`; WebSocket:
// {"type":"resume","id":"<request id>","after":n}); the request runs again from its
// journaled body under the same id, seed and `created`, the chunks the client has are
// dropped, and those that were journaled are checked to be the same again.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "net/openai_protocol.h"
#include "serve/stream_journal.h"

namespace conclave::net {

struct server_context;

/// One stream's chunks: numbered, journaled, and (in a resumed run) filtered and checked.
class stream_tap {
 public:
  /// `journal` may be null (journaling off): chunks are numbered only. A resumed run
  /// sends the chunks after `after` and checks its first chunks against `journaled`.
  stream_tap(std::shared_ptr<serve::stream_journal> journal, std::string id, int64_t after = 0,
             std::vector<std::string> journaled = {});

  struct step {
    int64_t n = 0;          ///< the chunk's number
    bool send = true;       ///< false: the client has it already
    bool diverged = false;  ///< it differs from the journaled chunk n
  };
  /// The stream's next chunk.
  step next(const std::string& payload);
  /// The stream ended; `complete`: with its last chunk (else a resume runs it again).
  void end(bool complete);

 private:
  std::shared_ptr<serve::stream_journal> journal_;
  std::string id_;
  int64_t after_ = 0, n_ = 0;
  std::vector<std::string> journaled_;
  bool ended_ = false;
};

/// A stream to resume, turned back into its request.
struct resume_plan {
  decoded_request d;  ///< d.req.id, the seed and stream = true restored
  bool chat = true;
  int64_t created = 0;
  int64_t after = 0;
  std::vector<std::string> journaled;
};

/// Parses "<request id>:<n>" (a Last-Event-ID). Nothing when malformed.
std::optional<std::pair<std::string, int64_t>> parse_event_id(std::string_view v);

/// Looks stream `id` up for a client holding `key_id` ("" without keys) that has its
/// chunks up to `after`: 404 when unknown or expired, 404 too when another key started
/// it (ids are not secrets to probe), 400 for a negative `after`, 503 when the journal
/// cannot be read.
std::variant<resume_plan, api_error> plan_resume(server_context& ctx, const std::string& id,
                                                 int64_t after, const std::string& key_id);

/// A new streamed request: gives it a seed when it has none (so that a resume
/// regenerates it), starts its journal entry and returns its tap (numbering only when
/// journaling is off).
stream_tap begin_journal(server_context& ctx, decoded_request& d, bool chat, std::string body,
                         int64_t created, const std::string& key_id);

/// The error that ends a resumed run whose chunks differ from the journaled ones (HTTP and
/// WebSocket alike).
api_error diverged_error(const std::string& request_id);

}  // namespace conclave::net
