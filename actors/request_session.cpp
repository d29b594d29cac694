// The per-request actor. All text work (template, tokenizer, detokenizer, parser) runs
// here, on the actor scheduler's threads, never on the network threads.
#include "actors/request_session.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

namespace conclave::actors {
namespace {

using clock_type = std::chrono::steady_clock;
using self_ptr = caf::stateful_actor<session_state>*;

double since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

void leave_queue(session_state& st) {
  if (st.queued) {
    st.queued = false;
    --st.counters->queued;
  }
}

void fail(self_ptr self, client_event e) {
  leave_queue(self->state);
  self->state.sink->push(std::move(e));
  self->quit();
}

/// A token's raw bytes, or nothing for an id the tokenizer does not know (a padded
/// embedding row never sampled when sampling_vocab_size is set, but logits may rank it).
std::string token_text(const tokenizer::tokenizer& tok, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size()) return {};
  try {
    return std::string(tok.token_bytes(id));
  } catch (const std::invalid_argument&) {
    return {};
  }
}

logprob_entry logprob_entry_of(const tokenizer::tokenizer& tok, int32_t id,
                               const engine::token_logprobs& lp) {
  logprob_entry e{token_text(tok, id), lp.logprob, {}};
  e.top.reserve(lp.top.size());
  for (const auto& [alt, v] : lp.top) e.top.push_back({token_text(tok, alt), v});
  return e;
}

/// Parser events -> client events.
void emit_parser_events(session_state& st, const std::vector<toolcall::event>& events) {
  for (const auto& ev : events) {
    client_event c;
    switch (ev.type) {
      case toolcall::event::kind::content:
        c.type = client_event::kind::content;
        c.text = ev.text;
        c.logprobs = std::exchange(st.pending_logprobs, {});
        break;
      case toolcall::event::kind::tool_call_start:
        c.type = client_event::kind::tool_call_start;
        c.index = ev.index;
        c.call_id = ev.id;
        c.name = ev.name;
        break;
      case toolcall::event::kind::tool_call_arguments:
        c.type = client_event::kind::tool_call_arguments;
        c.index = ev.index;
        c.text = ev.text;
        break;
      case toolcall::event::kind::tool_call_end:
        c.type = client_event::kind::tool_call_end;
        c.index = ev.index;
        break;
      case toolcall::event::kind::rejected_tool:
        spdlog::info("request {}: model called unknown tool \"{}\"", st.req.id, ev.name);
        continue;
    }
    st.sink->push(std::move(c));
  }
}

/// Text that passed the stop-string filter, to the parser or straight to the client.
void emit_text(session_state& st, const std::string& text) {
  if (text.empty()) return;
  if (st.parser) {
    emit_parser_events(st, st.parser->feed(text));
  } else {
    client_event c;
    c.type = client_event::kind::content;
    c.text = text;
    c.logprobs = std::exchange(st.pending_logprobs, {});
    st.sink->push(std::move(c));
  }
}

void finish(self_ptr self, std::string reason) {
  auto& st = self->state;
  if (st.detok) {
    const auto r = st.stops->feed(st.detok->flush());
    emit_text(st, r.text);
  }
  emit_text(st, st.stops->finish());
  if (st.parser) {
    emit_parser_events(st, st.parser->finish());
    if (st.parser->any_calls()) reason = "tool_calls";
  }
  if (st.metrics) {
    st.metrics->observe_e2e(since(st.t_start));
    st.metrics->add_tokens(st.tokens.prompt_tokens, st.tokens.completion_tokens);
    if (st.tokens.completion_tokens > 1) {
      st.metrics->observe_tpot(
          std::chrono::duration<double>(clock_type::now() - st.t_first).count() /
          static_cast<double>(st.tokens.completion_tokens - 1));
    }
  }
  // Metrics first: a client that reads /metrics after its last event sees its request.
  client_event done;
  done.type = client_event::kind::finished;
  done.finish_reason = std::move(reason);
  done.tokens = st.tokens;
  done.logprobs = std::exchange(st.pending_logprobs, {});
  done.engine_seconds = st.engine_seconds;
  st.sink->push(std::move(done));
  self->quit();
}

void on_token(self_ptr self, const token_msg& t) {
  auto& s = self->state;
  if (s.cancelled) return;
  if (s.tokens.completion_tokens == 0) {
    s.t_first = clock_type::now();
    leave_queue(s);
    if (s.metrics) s.metrics->observe_ttft(since(s.t_start));
  }
  ++s.tokens.completion_tokens;
  s.engine_seconds += t.step_seconds;
  if (t.logprobs)
    s.pending_logprobs.push_back(logprob_entry_of(*s.text->tok, t.token, *t.logprobs));
  // The token that stopped generation (eos / stop id) is not part of the text.
  const bool stop_token = t.finished && t.reason == engine::finish_reason::stop;
  if (!stop_token && !s.text->tok->is_special(t.token)) {
    const auto r = s.stops->feed(s.detok->push(t.token));
    emit_text(s, r.text);
    if (r.stopped) {
      if (!t.finished) self->send(s.engine, cancel_atom::value, s.seq_id);
      return finish(self, "stop");
    }
  }
  if (t.finished) finish(self, t.reason == engine::finish_reason::length ? "length" : "stop");
}

/// The prompt as token ids, or an error event.
std::optional<std::vector<int32_t>> build_prompt(session_state& st, client_event& error) {
  const auto& req = st.req;
  try {
    if (req.type == generation_request::kind::chat) {
      const bool use_tools = req.tool_choice != tool_choice_mode::none && !req.tools.empty();
      const std::string text =
          chat::render(req.messages, use_tools ? req.tools : std::vector<chat::tool>{}, true);
      return st.text->tok->encode(text, true);
    }
    if (!req.prompt_ids.empty()) return req.prompt_ids;
    return st.text->tok->encode(req.prompt, true);
  } catch (const chat::chat_error& e) {
    error = client_event::error(400, e.what(), "invalid_request_error", e.param());
  } catch (const std::invalid_argument& e) {
    error = client_event::error(400, e.what(), "invalid_request_error", "messages");
  }
  return std::nullopt;
}

}  // namespace

client_event client_event::error(int status, std::string message, std::string type,
                                 std::string param, std::string code) {
  client_event e;
  e.type = kind::error;
  e.status = status;
  e.text = std::move(message);
  e.error_type = std::move(type);
  e.error_param = std::move(param);
  e.error_code = std::move(code);
  return e;
}

caf::behavior request_session(self_ptr self, generation_request req,
                              std::shared_ptr<client_sink> sink,
                              std::shared_ptr<const text_resources> text, caf::actor router,
                              std::shared_ptr<server_metrics> metrics,
                              std::shared_ptr<session_counters> counters) {
  auto& st = self->state;
  st.req = std::move(req);
  st.sink = std::move(sink);
  st.text = std::move(text);
  st.metrics = std::move(metrics);
  st.counters = std::move(counters);
  st.t_start = clock_type::now();
  ++st.counters->active;
  ++st.counters->queued;
  self->attach_functor([counters = st.counters] { --counters->active; });

  client_event error;
  auto prompt = build_prompt(st, error);
  if (!prompt) {
    fail(self, std::move(error));
    return {};
  }
  const int64_t max_len = st.text->max_model_len;
  if (st.req.sampling.max_tokens == 0) {  // not given: the rest of the context
    st.req.sampling.max_tokens =
        static_cast<int32_t>(std::max<int64_t>(max_len - static_cast<int64_t>(prompt->size()), 1));
  }
  const int64_t want = static_cast<int64_t>(prompt->size()) + st.req.sampling.max_tokens;
  if (want > max_len) {
    fail(self, client_event::error(
                   400,
                   fmt::format("This model's maximum context length is {} tokens. However, you "
                               "requested {} tokens ({} in the messages, {} in the completion). "
                               "Please reduce the length of the messages or completion.",
                               max_len, want, prompt->size(), st.req.sampling.max_tokens),
                   "invalid_request_error", "max_tokens", "context_length_exceeded"));
    return {};
  }
  st.tokens.prompt_tokens = static_cast<int64_t>(prompt->size());
  if (st.req.type == generation_request::kind::chat &&
      st.req.tool_choice != tool_choice_mode::none && !st.req.tools.empty()) {
    std::vector<toolcall::tool_schema> schemas;
    for (const auto& t : st.req.tools) schemas.push_back({t.name, t.parameters});
    st.parser.emplace(std::move(schemas));
  }
  st.detok.emplace(*st.text->tok);
  st.stops.emplace(st.req.stop);

  engine_submit sub{std::move(*prompt), st.req.sampling, caf::actor_cast<caf::actor>(self)};
  self->request(router, caf::infinite, submit_atom::value, std::move(sub))
      .then(
          [self](const submit_reply& r) {
            auto& s = self->state;
            if (!r.error.empty())
              return fail(self, client_event::error(400, r.error, "invalid_request_error"));
            s.engine = r.engine;
            s.seq_id = r.seq_id;
            // If the replica goes away mid-request, the client hears about it.
            self->monitor(s.engine);
            self->set_down_handler([self](caf::down_msg&) {
              if (self->state.cancelled) return self->quit();
              fail(self,
                   client_event::error(503, "the model replica stopped", "service_unavailable"));
            });
            if (s.cancelled) {
              self->send(s.engine, cancel_atom::value, s.seq_id);
              return self->quit();
            }
            client_event started;
            started.type = client_event::kind::started;
            started.tokens = s.tokens;
            s.sink->push(std::move(started));
            if (s.req.type == generation_request::kind::completion && s.req.echo)
              emit_text(s, s.req.prompt);
          },
          [self](caf::error& err) {
            fail(self, client_event::error(
                           503, "no model replica is available: " + self->system().render(err),
                           "service_unavailable"));
          });

  return {
      [self](token_atom, const token_msg& t) {
        try {
          on_token(self, t);
        } catch (const std::exception& e) {
          // Never leave a client waiting: a failure here ends the request with a 500.
          auto& s = self->state;
          spdlog::error("request {}: {}", s.req.id, e.what());
          if (!t.finished && s.seq_id >= 0) self->send(s.engine, cancel_atom::value, s.seq_id);
          fail(self, client_event::error(500, std::string("internal error: ") + e.what(),
                                         "internal_error"));
        }
      },

      [self](failed_atom, const failure_msg& f) {
        if (self->state.cancelled) return self->quit();
        fail(self, client_event::error(503, f.message, "service_unavailable"));
      },
      [self](cancel_atom) {
        auto& s = self->state;
        s.cancelled = true;
        leave_queue(s);
        if (s.seq_id >= 0) {
          self->send(s.engine, cancel_atom::value, s.seq_id);
          self->quit();
        }
        // else: the submit reply has not arrived; its handler cancels and quits.
      },
  };
}

}  // namespace conclave::actors
