// The per-request actor. All text work (template, tokenizer, detokenizer, parser) runs
// here, on the actor scheduler's threads, never on the network threads.
#include "actors/request_session.h"

#include "actors/tool_constraints.h"

#include <set>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

namespace conclave::actors {
namespace {

using clock_type = std::chrono::steady_clock;
using self_ptr = caf::stateful_actor<session_state>*;

double since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

/// Quits. First stops watching its engine: a monitor left on a long-lived engine keeps
/// the ended session's memory alive (a weak reference) until that engine goes.
void end_session(self_ptr self) {
  if (self->state.engine) self->demonitor(self->state.engine);
  self->quit();
}

void leave_queue(session_state& st) {
  if (st.queued) {
    st.queued = false;
    --st.counters->queued;
  }
}

/// Tells the router the request no longer runs on its engine.
void release_reservation(self_ptr self) {
  self->state.sink->release();
}

void fail(self_ptr self, client_event e) {
  leave_queue(self->state);
  release_reservation(self);
  self->state.sink->push(std::move(e));
  end_session(self);
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
    if (st.rounds && !st.rounds->route(c)) continue;
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

void run_tools(self_ptr self);

void finish(self_ptr self, std::string reason) {
  auto& st = self->state;
  if (st.detok) {
    const auto r = st.stops->feed(st.detok->flush());
    emit_text(st, r.text);
  }
  emit_text(st, st.stops->finish());
  if (st.parser) {
    emit_parser_events(st, st.parser->finish());
    if (st.parser->any_calls() && (!st.rounds || st.rounds->client_calls())) reason = "tool_calls";
  }
  if (st.rounds && st.rounds->run_tools() && !st.cancelled) return run_tools(self);
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
  release_reservation(self);
  st.sink->push(std::move(done));
  end_session(self);
}

/// True when the message being handled comes from the engine the request runs on now:
/// an engine it left (a failover moved it while that one still ran) may still send.
bool from_current_engine(self_ptr self) {
  const auto& s = self->state;
  return s.engine && !s.moving &&
         self->current_sender() == caf::actor_cast<caf::strong_actor_ptr>(s.engine);
}

void on_token(self_ptr self, const token_msg& t) {
  auto& s = self->state;
  if (s.cancelled) return;
  if (!from_current_engine(self) || t.seq_id != s.seq_id) {
    // A sequence the request left behind (a failover moved it): stop it where it runs.
    if (!t.finished && self->current_sender())
      self->send(caf::actor_cast<caf::actor>(self->current_sender()), cancel_atom::value, t.seq_id);
    return;
  }
  if (s.tokens.completion_tokens == 0) {
    s.t_first = clock_type::now();
    leave_queue(s);
    if (s.metrics) s.metrics->observe_ttft(since(s.t_start));
  }
  ++s.tokens.completion_tokens;
  s.engine_seconds += t.step_seconds;
  s.generated.push_back(t.token);
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

void submit(self_ptr self);

/// The request looks for a replica from now until failover_timeout_s has passed.
void start_moving(session_state& s) {
  s.moving = true;
  s.move_deadline =
      clock_type::now() +
      std::chrono::milliseconds(static_cast<int64_t>(s.text->failover_timeout_s * 1000));
}

/// The replica running this request failed: resubmit the prompt and the tokens already
/// streamed through the router, so the stream continues on another replica (or on this
/// one once restarted) without repeats or gaps.
void fail_over(self_ptr self, const std::string& why) {
  auto& s = self->state;
  if (s.moving) return;  // the same failure, seen twice (failure message and down)
  if (s.text->stopping.load())
    return fail(self,
                client_event::error(503, "the server is shutting down", "service_unavailable"));
  // A request that made progress since its last move starts its count again: only one
  // that keeps failing replicas without producing a token runs out of attempts.
  if (s.generated.size() > s.generated_at_failover) s.failovers = 0;
  s.generated_at_failover = s.generated.size();
  if (s.failovers >= s.text->failover_attempts) {
    return fail(self,
                client_event::error(503, why + fmt::format(" (after {} failovers)", s.failovers),
                                    "service_unavailable"));
  }
  ++s.failovers;
  if (s.metrics) s.metrics->add_failover();
  spdlog::warn("request {}: {}; resuming after {} tokens on another replica (failover {})",
               s.req.id, why, s.generated.size(), s.failovers);
  release_reservation(self);
  if (s.engine) self->demonitor(s.engine);
  s.engine = nullptr;
  s.seq_id = -1;
  start_moving(s);
  submit(self);
}

/// Submits (or resubmits after a failure) through the router.
void submit(self_ptr self) {
  auto& st = self->state;
  engine_submit sub{
      st.prompt, st.req.sampling, caf::actor_cast<caf::actor>(self), st.generated, {}};
  if (st.moving && st.last_engine) sub.avoid = st.last_engine;
  st.submit_pending = true;
  self->request(st.router, caf::infinite, submit_atom::value, std::move(sub))
      .then(
          [self](const submit_reply& r) {
            auto& s = self->state;
            s.submit_pending = false;
            if (!r.error.empty())
              return fail(self, client_event::error(400, r.error, "invalid_request_error"));
            s.engine = r.engine;
            s.last_engine = r.engine.address();
            // (The router counted it when it placed the request; a session killed before
            // this reply leaves that count behind until the engine goes.)
            s.sink->reserve(s.router, s.last_engine,
                            reservation(s.prompt.size(), s.req.sampling.max_tokens));
            s.seq_id = r.seq_id;
            s.moving = false;
            // If the replica goes away mid-request, the request moves to another.
            self->monitor(s.engine);
            if (s.cancelled) {
              self->send(s.engine, cancel_atom::value, s.seq_id);
              release_reservation(self);
              return end_session(self);
            }
            if (s.started) return;
            s.started = true;
            client_event started;
            started.type = client_event::kind::started;
            started.tokens = s.tokens;
            s.sink->push(std::move(started));
            if (s.req.type == generation_request::kind::completion && s.req.echo)
              emit_text(s, s.req.prompt);
          },
          [self](caf::error& err) {
            auto& s = self->state;
            s.submit_pending = false;
            if (s.cancelled) return end_session(self);
            // The engine the router chose died before it took the request: a failover
            // like any other (the request had not started anywhere).
            if (!s.moving && err != caf::sec::request_receiver_down)
              return fail(self,
                          client_event::error(
                              503, "no model replica is available: " + self->system().render(err),
                              "service_unavailable"));
            if (!s.moving && !s.text->stopping.load() && s.failovers < s.text->failover_attempts) {
              ++s.failovers;
              start_moving(s);
            }
            // No live replica (yet): while moving, wait for one to come back.
            if (s.moving && clock_type::now() < s.move_deadline && !s.text->stopping.load()) {
              self->delayed_send(self, std::chrono::milliseconds(100), retry_atom::value);
              return;
            }
            fail(self, client_event::error(
                           503, "no model replica is available: " + self->system().render(err),
                           "service_unavailable"));
          });
}

std::optional<std::vector<int32_t>> build_prompt(session_state& st, client_event& error);

void start_tool(self_ptr self, tool_call_request call) {
  auto& st = self->state;
  auto actor = spawn_tool_invocation(self, st.text->tools, call, st.tool_cancel);
  st.tool_actors.emplace(actor.address(), std::move(call));
}

/// The generation ended with server-side calls only: run each in a tool_invocation actor.
void run_tools(self_ptr self) {
  auto& st = self->state;
  release_reservation(self);
  // The round's generation is over: its engine failing now is no reason to move.
  if (st.engine) self->demonitor(st.engine);
  st.engine = nullptr;
  st.seq_id = -1;
  st.tools_running = true;
  st.tool_actors.clear();
  st.tool_restarts.clear();
  for (auto& call : st.rounds->calls()) start_tool(self, std::move(call));
}

void on_tool_result(self_ptr self, tool_call_result r);

/// A tool invocation went down before its result came: start the call again, or after
/// max_tool_restarts give the model an error result for it.
void on_tool_down(self_ptr self, const caf::down_msg& msg) {
  auto& st = self->state;
  auto it = st.tool_actors.find(msg.source);
  if (it == st.tool_actors.end()) return;
  tool_call_request call = std::move(it->second);
  st.tool_actors.erase(it);
  if (st.cancelled || !st.tools_running) return;
  const std::string why = self->system().render(msg.reason);
  int& restarts = st.tool_restarts[call.call_id];
  if (restarts < max_tool_restarts) {
    ++restarts;
    spdlog::warn("request {}: tool {} ({}) stopped ({}); starting it again ({} of {})", st.req.id,
                 call.name, call.call_id, why, restarts, max_tool_restarts);
    return start_tool(self, std::move(call));
  }
  tool_call_result r;
  r.call_id = call.call_id;
  r.name = call.name;
  r.status = toolkit::outcome::retryable;  // retries used up: "failed"
  r.content = fmt::format("error: the tool stopped {} times ({})", restarts + 1, why);
  on_tool_result(self, std::move(r));
}

void on_down(self_ptr self, const caf::down_msg& msg) {
  auto& st = self->state;
  if (st.tool_actors.count(msg.source)) return on_tool_down(self, msg);
  if (st.cancelled) return end_session(self);
  if (!st.engine || msg.source != st.engine.address()) return;  // an old engine
  fail_over(self, "the model replica stopped");
}

/// Every call of the round has its result: continue the conversation with them.
void next_round(self_ptr self) {
  auto& st = self->state;
  st.tools_running = false;
  st.rounds->next_round(st.req.messages, st.req.tool_choice, st.req.tool_choice_name);
  client_event error;
  auto prompt = build_prompt(st, error);
  if (!prompt) return fail(self, std::move(error));
  const int64_t want = static_cast<int64_t>(prompt->size()) + st.req.sampling.max_tokens;
  if (want > st.text->max_model_len) return finish(self, "length");
  try {
    st.req.sampling.constraint = tool_constraint_for(st.req, st.text->tok, st.text->eos_ids);
  } catch (const std::exception& e) {
    return fail(self, client_event::error(400, std::string("tools: ") + e.what(),
                                          "invalid_request_error", "tools"));
  }
  if (st.req.tool_choice != tool_choice_mode::none) {
    st.parser.emplace(st.req.tools);
  } else {
    st.parser.reset();
  }
  st.detok.emplace(*st.text->tok);
  st.stops.emplace(st.req.stop);
  st.tokens.prompt_tokens += static_cast<int64_t>(prompt->size());
  st.prompt = std::move(*prompt);
  st.generated.clear();
  submit(self);
}

void on_tool_result(self_ptr self, tool_call_result r) {
  auto& st = self->state;
  if (st.cancelled || !st.rounds || !st.tools_running) return;
  std::erase_if(st.tool_actors, [&](const auto& a) { return a.second.call_id == r.call_id; });
  client_event e;
  e.type = client_event::kind::tool_result;
  e.call_id = r.call_id;
  e.name = r.name;
  e.text = r.content;
  e.tool_outcome = toolkit::to_string(r.status);
  st.sink->push(std::move(e));
  if (st.rounds->add_result(r)) next_round(self);
}

/// Enables the request's server-side tools: their definitions join the request's tools.
std::optional<client_event> enable_server_tools(session_state& st) {
  auto& req = st.req;
  if (req.server_tools.empty()) return std::nullopt;
  if (req.type != generation_request::kind::chat || !st.text->tools)
    return client_event::error(400, "this server has no server-side tools", "invalid_request_error",
                               "server_tools");
  std::set<std::string> names;
  for (size_t i = 0; i < req.server_tools.size(); ++i) {
    const auto& n = req.server_tools[i];
    auto t = st.text->tools->tools->find(n);
    const std::string param = fmt::format("server_tools[{}]", i);
    if (!t)
      return client_event::error(400, fmt::format("no server-side tool named '{}'", n),
                                 "invalid_request_error", param);
    for (const auto& c : req.tools) {
      if (c.name == n && !names.count(n))
        return client_event::error(400, fmt::format("'{}' is both a client and a server tool", n),
                                   "invalid_request_error", param);
    }
    if (!names.insert(n).second) continue;
    req.tools.push_back(t->definition());
  }
  for (size_t i = 0; i < req.server_tool_choices.size(); ++i) {
    const auto& c = req.server_tool_choices[i];
    bool known = c == "auto" || c == "none" || c == "required";
    for (const auto& t : req.tools) known = known || t.name == c;
    if (!known)
      return client_event::error(400, fmt::format("no tool named '{}'", c), "invalid_request_error",
                                 fmt::format("server_tool_choices[{}]", i));
  }
  st.rounds.emplace(std::move(names), st.text->max_tool_rounds, req.server_tool_choices);
  return std::nullopt;
}

/// The prompt as token ids, or an error event.
std::optional<std::vector<int32_t>> build_prompt(session_state& st, client_event& error) {
  const auto& req = st.req;
  try {
    if (req.type == generation_request::kind::chat) {
      const bool use_tools = req.tool_choice != tool_choice_mode::none && !req.tools.empty();
      const std::string text =
          chat::render(req.messages, use_tools ? req.tools : std::vector<model::tool_spec>{}, true);
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

void session_guard::push(client_event e) {
  if (e.type == client_event::kind::finished || e.type == client_event::kind::error) {
    if (ended_.exchange(true)) return;  // the request already ended
  } else if (ended_.load()) {
    return;
  }
  client_->push(std::move(e));
}

void session_guard::reserve(caf::actor router, caf::actor_addr engine, int64_t tokens) {
  release();
  router_ = std::move(router);
  engine_ = std::move(engine);
  reserved_ = tokens;
}

void session_guard::release() {
  if (!router_ || !engine_) return;
  caf::anon_send(router_, finished_atom::value, engine_, reserved_);
  engine_ = nullptr;
  reserved_ = 0;
}

void session_guard::on_exit(const std::string& reason) {
  release();
  router_ = nullptr;
  if (ended_.load()) return;
  spdlog::error("a request session stopped before its request ended ({})", reason);
  push(client_event::error(
      500, "the request was stopped on the server (its session ended: " + reason + ")",
      "server_error", {}, "session_stopped"));
}

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
                              std::shared_ptr<session_guard> sink,
                              std::shared_ptr<const text_resources> text, caf::actor router,
                              std::shared_ptr<server_metrics> metrics,
                              std::shared_ptr<session_counters> counters) {
  auto& st = self->state;
  st.req = std::move(req);
  st.sink = std::move(sink);
  self->attach_functor([guard = st.sink, &sys = self->system()](const caf::error& reason) {
    guard->on_exit(sys.render(reason));
  });
  self->set_down_handler([self](caf::down_msg& msg) { on_down(self, msg); });
  st.text = std::move(text);
  st.metrics = std::move(metrics);
  st.counters = std::move(counters);
  st.t_start = clock_type::now();
  ++st.counters->active;
  ++st.counters->queued;
  self->attach_functor([counters = st.counters] { --counters->active; });

  // Cancelling or ending the request stops its tools (and kills their processes).
  self->attach_functor([flag = st.tool_cancel] { flag->cancel(); });
  if (auto err = enable_server_tools(st)) {
    fail(self, std::move(*err));
    return {};
  }
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
    st.parser.emplace(st.req.tools);
  }
  try {
    st.req.sampling.constraint = tool_constraint_for(st.req, st.text->tok, st.text->eos_ids);
  } catch (const std::exception& e) {  // a schema too deep or too large to compile
    fail(self, client_event::error(400, std::string("tools: ") + e.what(), "invalid_request_error",
                                   "tools"));
    return {};
  }
  st.detok.emplace(*st.text->tok);
  st.stops.emplace(st.req.stop);

  st.prompt = std::move(*prompt);
  st.router = router;
  submit(self);

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
        if (self->state.cancelled) return end_session(self);
        if (!from_current_engine(self)) return;  // an engine it already left
        fail_over(self, f.message);
      },
      [self](retry_atom) { submit(self); },
      [self](end_request_atom, const std::string& why) {
        auto& s = self->state;
        if (s.engine && s.seq_id >= 0 && !s.moving)
          self->send(s.engine, cancel_atom::value, s.seq_id);
        fail(self, client_event::error(503, why, "service_unavailable"));
      },
      [self](tool_result_atom, tool_call_result& r) { on_tool_result(self, std::move(r)); },
      [self](cancel_atom) {
        auto& s = self->state;
        s.cancelled = true;
        s.sink->client_left();
        leave_queue(s);
        if (s.seq_id >= 0 && !s.moving) {
          self->send(s.engine, cancel_atom::value, s.seq_id);
          release_reservation(self);
          end_session(self);
        } else if (!s.submit_pending) {
          end_session(self);  // between replicas, waiting to retry: nothing runs anywhere
        }
        // else: a submit reply is pending; its handler cancels and quits.
      },
  };
}

}  // namespace conclave::actors
