// Resumable streams on the wire (see the header).
#include "net/stream_resume.h"

#include <random>

#include "net/server_context.h"

namespace conclave::net {

stream_tap::stream_tap(std::shared_ptr<serve::stream_journal> journal, std::string id,
                       int64_t after, std::vector<std::string> journaled)
    : journal_(std::move(journal)),
      id_(std::move(id)),
      after_(after),
      journaled_(std::move(journaled)) {}

stream_tap::step stream_tap::next(const std::string& payload) {
  step s;
  s.n = ++n_;
  s.send = s.n > after_;
  const auto known = static_cast<int64_t>(journaled_.size());
  if (s.n <= known) {
    s.diverged = journaled_[static_cast<size_t>(s.n - 1)] != payload;
  } else if (journal_) {
    journal_->append(id_, s.n, payload);
  }
  return s;
}

void stream_tap::end(bool complete) {
  if (ended_) return;
  ended_ = true;
  if (journal_) journal_->end(id_, complete);
}

std::optional<std::pair<std::string, int64_t>> parse_event_id(std::string_view v) {
  const auto colon = v.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == v.size()) return std::nullopt;
  int64_t n = 0;
  for (const char c : v.substr(colon + 1)) {
    if (c < '0' || c > '9' || n > (INT64_MAX - 9) / 10) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return std::make_pair(std::string(v.substr(0, colon)), n);
}

std::variant<resume_plan, api_error> plan_resume(server_context& ctx, const std::string& id,
                                                 int64_t after, const std::string& key_id) {
  if (!ctx.journal)
    return api_error{400,
                     "this server does not journal streams (gateway.resume_window_s = 0)",
                     "invalid_request_error",
                     {},
                     "resume_unavailable"};
  if (after < 0) return api_error{400, "'after' must be >= 0", "invalid_request_error", "after"};
  std::optional<store::journal_entry> entry;
  try {
    entry = ctx.journal->find(id);
  } catch (const store::store_error& e) {
    return api_error{503, std::string("the stream journal cannot be read: ") + e.what(),
                     "service_unavailable"};
  }
  if (!entry || entry->key_id != key_id)
    return api_error{404, "no resumable stream " + id + " (unknown, expired, or another key's)",
                     "invalid_request_error", "id", "stream_not_found"};
  const bool chat = entry->route == "chat";
  auto decoded = chat ? decode_chat_request(entry->body, ctx.proto)
                      : decode_completion_request(entry->body, ctx.proto);
  if (auto* err = std::get_if<api_error>(&decoded)) {
    // The body was accepted once; a model unloaded since is the likely cause.
    err->message = "stream " + id + " cannot run again: " + err->message;
    return *err;
  }
  resume_plan p;
  p.d = std::move(std::get<decoded_request>(decoded));
  p.d.req.id = entry->id;
  p.d.req.sampling.seed = entry->seed;
  p.d.stream = true;
  p.chat = chat;
  p.created = entry->created;
  p.after = after;
  p.journaled = std::move(entry->events);
  return p;
}

stream_tap begin_journal(server_context& ctx, decoded_request& d, bool chat, std::string body,
                         int64_t created, const std::string& key_id) {
  if (!ctx.journal) return stream_tap(nullptr, d.req.id);
  if (!d.req.sampling.seed) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    d.req.sampling.seed = rng();
  }
  store::journal_entry e;
  e.id = d.req.id;
  e.key_id = key_id;
  e.route = chat ? "chat" : "completion";
  e.body = std::move(body);
  e.seed = *d.req.sampling.seed;
  e.created = created;
  ctx.journal->begin(std::move(e));
  return stream_tap(ctx.journal, d.req.id);
}

api_error diverged_error(const std::string& request_id) {
  return {500,
          "the resumed stream " + request_id +
              " does not match its journal (this server's generation is not reproducible); "
              "start the request again",
          "server_error",
          {},
          "resume_diverged"};
}

}  // namespace conclave::net
