// The per-request actor: messages in, failover_machine steps out. Its text work runs on
// the actor scheduler's threads, never on the network threads.
#include "actors/request_session.h"

#include <spdlog/spdlog.h>

#include "actors/tool_invocation.h"
#include "serve/placement.h"

namespace conclave::actors {
namespace {

using session_ptr = caf::stateful_actor<session_state>*;
using serve::client_event;
using ev = serve::failover_event;

/// The message being handled comes from the engine the request runs on now.
bool from_engine(session_ptr self) {
  const auto& e = self->state.engine;
  return e && self->current_sender() == caf::actor_cast<caf::strong_actor_ptr>(e);
}

void submit(session_ptr self);

void end_session(session_ptr self) {
  if (self->state.engine) self->demonitor(self->state.engine);  // (it would keep this alive)
  self->quit();
}

/// Does what the machine decided, in the step's order; `last` (finished) goes out just
/// before the session ends.
void apply(session_ptr self, const serve::failover_step& s, std::optional<client_event> last = {}) {
  auto& st = self->state;
  if (s.cancel_sequence && st.engine && st.seq_id >= 0)
    self->send(st.engine, cancel_atom::value, st.seq_id);
  if (s.release) {
    st.sink->release();
    if (st.engine) self->demonitor(st.engine);
    st.engine = nullptr;
    st.seq_id = -1;
  }
  if (s.count_failover) {
    if (st.env->metrics) st.env->metrics->add_failover();
    spdlog::warn("request {}: {}; resuming after {} tokens on another replica (failover {})",
                 st.req.id, s.why, st.generated.size(), st.machine->failovers());
  }
  if (s.announce) {
    st.sink->push(st.stats->started());
    if (st.req.type == serve::generation_request::kind::completion && st.req.echo)
      st.text->echo(st.req.prompt, *st.sink);
  }
  if (s.submit) submit(self);
  if (s.retry_later) self->delayed_send(self, std::chrono::milliseconds(100), retry_atom::value);
  if (s.error) {
    st.env->counters->leave_queue(*st.queued);
    st.sink->push(*s.error);
  }
  if (last) st.sink->push(std::move(*last));
  if (s.end) end_session(self);
}

serve::failover_step on(session_ptr self, ev e) {
  auto& st = self->state;
  return st.machine->on_now(e, st.generated.size(), st.env->counters->stopping.load());
}

void handle(session_ptr self, ev e, std::optional<client_event> last = {}) {
  apply(self, on(self, std::move(e)), std::move(last));
}

void on_submit_reply(session_ptr self, const submit_reply& r) {
  auto& st = self->state;
  // The router counted it when it placed it: given back when it leaves this engine
  // (at once when the engine refused it).
  st.sink->reserve([router = st.router, engine = r.engine.address(),
                    n = serve::reservation(st.prompt.size(), st.req.sampling.max_tokens)] {
    caf::anon_send(router, finished_atom::value, engine, n);
  });
  if (!r.error.empty()) {
    st.sink->release();
    return handle(self, ev::of(ev::kind::submit_refused, true, r.error));
  }
  st.replica = r.replica;
  st.engine = r.engine;  // adopted, or the sequence to cancel should the client have left
  st.seq_id = r.seq_id;
  const auto step = on(self, ev::of(ev::kind::submit_ok));
  if (step.accept) {
    st.last_engine = r.engine.address();
    self->monitor(st.engine);  // if the replica goes away mid-request, the request moves
  }
  apply(self, step);
}

/// Submits (or resubmits after a failure) through the router.
void submit(session_ptr self) {
  auto& st = self->state;
  engine_submit sub{
      st.prompt, st.req.sampling, caf::actor_cast<caf::actor>(self), st.generated, {}};
  if (st.machine->avoid_last_engine()) sub.avoid = st.last_engine;
  self->request(st.router, caf::infinite, submit_atom::value, std::move(sub))
      .then([self](const submit_reply& r) { on_submit_reply(self, r); },
            [self](caf::error& err) {
              handle(self, ev::submit_failed(self->system().render(err),
                                             err == caf::sec::request_receiver_down));
            });
}

/// The request is over: its metrics first (a client that reads /metrics after its last
/// event sees its request), then its last event.
void complete(session_ptr self, std::string reason) {
  auto& st = self->state;
  auto done = st.stats->finished(std::move(reason), st.text->take_logprobs());
  done.replica = st.replica;
  handle(self, ev::of(ev::kind::generation_done), std::move(done));
}

void start_tool(session_ptr self, serve::tool_call_request call) {
  auto& st = self->state;
  auto actor =
      spawn_tool_invocation(self, st.env->tools.runtime, call, st.tool_cancel, st.env->tool_list);
  st.tool_actors.emplace(actor.address(), std::move(call));
}

/// The generation ended with `reason`: flush the text; run server-side calls or finish.
void finish(session_ptr self, std::string reason) {
  auto& st = self->state;
  reason = st.text->finish(std::move(reason), *st.sink);
  if (!st.rounds || !st.rounds->run_tools()) return complete(self, std::move(reason));
  handle(self, ev::of(ev::kind::tool_round_start));
  st.tool_actors.clear();
  st.restarts.clear();
  for (auto& call : st.rounds->calls()) start_tool(self, std::move(call));
}

void on_token(session_ptr self, const token_msg& t) {
  auto& st = self->state;
  const auto step = on(self, ev::token(from_engine(self) && t.seq_id == st.seq_id, t.finished));
  if (step.stop_stale && self->current_sender())  // a sequence a failover left behind
    self->send(caf::actor_cast<caf::actor>(self->current_sender()), cancel_atom::value, t.seq_id);
  if (!step.accept) return;
  if (st.stats->token(t.step_seconds)) st.env->counters->leave_queue(*st.queued);
  st.generated.push_back(t.token);
  // The token that stopped generation (eos / stop id) is not part of the text.
  const bool ends = t.finished && t.reason == engine::finish_reason::stop;
  if (st.text->push(t.token, ends, t.logprobs ? &*t.logprobs : nullptr, *st.sink)) {
    if (!t.finished) self->send(st.engine, cancel_atom::value, st.seq_id);
    return finish(self, "stop");
  }
  if (t.finished) finish(self, t.reason == engine::finish_reason::length ? "length" : "stop");
}

/// Every call of the round has its result: continue the conversation with them.
void next_round(session_ptr self) {
  auto& st = self->state;
  st.rounds->next_round(st.req.messages, st.req.tool_choice, st.req.tool_choice_name);
  if (auto err = serve::prepare_next_round(st.req, *st.env->text, st.prompt))
    return handle(self, ev::aborting(std::move(*err)));
  if (st.prompt.empty()) return complete(self, "length");  // no longer fits the context
  st.text->begin(st.req, &*st.rounds);
  st.stats->add_prompt(st.prompt.size());
  st.generated.clear();
  handle(self, ev::of(ev::kind::tool_round_end));
}

void on_tool_result(session_ptr self, serve::tool_call_result r) {
  auto& st = self->state;
  if (st.machine->phase() != serve::request_phase::tools) return;
  std::erase_if(st.tool_actors, [&](const auto& a) { return a.second.call_id == r.call_id; });
  st.sink->push(serve::tool_result_event(r));
  if (st.rounds->add_result(r)) next_round(self);
}

void on_down(session_ptr self, const caf::down_msg& msg) {
  auto& st = self->state;
  if (auto it = st.tool_actors.find(msg.source); it != st.tool_actors.end()) {
    auto call = std::move(it->second);
    st.tool_actors.erase(it);
    if (st.machine->phase() != serve::request_phase::tools) return;
    const std::string why = self->system().render(msg.reason);
    if (auto failed = st.restarts.on_down(call, why, st.req.id))
      return on_tool_result(self, *failed);
    return start_tool(self, std::move(call));
  }
  const bool current = st.engine && msg.source == st.engine.address();
  handle(self, ev::of(ev::kind::engine_down, current, "the model replica stopped"));
}

}  // namespace

caf::behavior request_session(session_ptr self, serve::generation_request req,
                              std::shared_ptr<serve::session_guard> sink,
                              std::shared_ptr<const session_env> env, caf::actor router) {
  auto& st = self->state;
  st.req = std::move(req);
  st.sink = std::move(sink);
  st.env = std::move(env);
  st.router = std::move(router);
  st.machine.emplace(st.env->failover);
  st.stats.emplace(st.env->metrics);
  st.text.emplace(st.env->text->tok, st.req.id);
  st.env->counters->enter();
  // However it ends: a last event for the client, out of the counts, its tools stopped.
  self->attach_functor([guard = st.sink, &sys = self->system(), env = st.env, queued = st.queued,
                        flag = st.tool_cancel](const caf::error& reason) {
    guard->on_exit(sys.render(reason));
    env->counters->leave(*queued);
    flag->cancel();
  });
  self->set_down_handler([self](caf::down_msg& msg) { on_down(self, msg); });

  serve::prepared_request prepared;
  if (auto err = serve::prepare_request(st.req, *st.env->text, st.env->tools, prepared)) {
    handle(self, ev::aborting(std::move(*err)));
    return {};
  }
  st.prompt = std::move(prepared.prompt);
  st.rounds = std::move(prepared.rounds);
  st.stats->add_prompt(st.prompt.size());
  st.text->begin(st.req, st.rounds ? &*st.rounds : nullptr);
  submit(self);

  return {
      [self](token_atom, const token_msg& t) {
        try {
          on_token(self, t);
        } catch (const std::exception& e) {
          // Never leave a client waiting: a failure here ends the request with a 500.
          spdlog::error("request {}: {}", self->state.req.id, e.what());
          const bool over = self->state.machine->ended();  // it failed on its way out
          handle(self, ev::aborting(client_event::error(
                           500, std::string("internal error: ") + e.what(), "internal_error")));
          if (over) end_session(self);
        }
      },
      [self](failed_atom, const failure_msg& f) {
        handle(self, ev::of(ev::kind::engine_down, from_engine(self), f.message));
      },
      [self](retry_atom) { handle(self, ev::of(ev::kind::retry_due)); },
      [self](end_request_atom, const std::string& why) {
        handle(self, ev::of(ev::kind::drain, true, why));
      },
      [self](tool_result_atom, serve::tool_call_result& r) { on_tool_result(self, std::move(r)); },
      [self](cancel_atom) {
        self->state.sink->client_left();
        self->state.env->counters->leave_queue(*self->state.queued);
        handle(self, ev::of(ev::kind::cancel));
      },
  };
}

}  // namespace conclave::actors
