// The tool_invocation actor, and custom tools as actors.
#include "actors/tool_invocation.h"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

namespace conclave::actors {
namespace {

/// A toolkit::tool that forwards to a tool_actor and waits for its answer.
class actor_tool final : public toolkit::tool {
 public:
  actor_tool(caf::actor_system& system, model::tool_spec def, tool_actor actor,
             std::chrono::milliseconds timeout)
      : system_(system), def_(std::move(def)), actor_(std::move(actor)), timeout_(timeout) {}
  const model::tool_spec& definition() const override { return def_; }
  std::chrono::milliseconds timeout() const override { return timeout_; }
  toolkit::tool_result run(const boost::json::object& args,
                           const toolkit::run_context& ctx) override {
    caf::scoped_actor self{system_};
    toolkit::tool_result out{toolkit::outcome::retryable, "no answer"};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        ctx.deadline - toolkit::clock_type::now());
    self->request(actor_, caf::duration{std::max(left, std::chrono::milliseconds(1))},
                  run_tool_atom::value, boost::json::serialize(args))
        .receive(
            [&](bool ok, std::string& text) {
              out = {ok ? toolkit::outcome::ok : toolkit::outcome::error, std::move(text)};
            },
            [&](caf::error& err) {
              out = {toolkit::outcome::retryable, "the tool actor failed: " + system_.render(err)};
            });
    return out;
  }

 private:
  caf::actor_system& system_;
  model::tool_spec def_;
  tool_actor actor_;
  std::chrono::milliseconds timeout_;
};

caf::behavior invocation(caf::event_based_actor* self,
                         std::shared_ptr<const serve::tool_runtime> rt,
                         serve::tool_call_request call,
                         std::shared_ptr<const toolkit::cancel_flag> request,
                         std::shared_ptr<const toolkit::cancel_flag> cancel, caf::actor parent) {
  auto r = serve::run_tool_call(*rt, call, cancel);
  if (cancel->cancelled() && !request->cancelled()) {
    // Killed (its own flag, not the request's): no result; the parent sees it go down.
    spdlog::warn("tool {} ({}): invocation killed", r.name, r.call_id);
    self->quit(caf::exit_reason::kill);
    return {};
  }
  if (rt->metrics) rt->metrics->observe(r);
  spdlog::debug("tool {} ({}): {} after {} attempts", r.name, r.call_id,
                toolkit::to_string(r.status), r.attempts);
  self->send(parent, tool_result_atom::value, std::move(r));
  self->quit();
  return {};
}

}  // namespace

caf::actor spawn_tool_invocation(caf::local_actor* parent,
                                 std::shared_ptr<const serve::tool_runtime> runtime,
                                 serve::tool_call_request call,
                                 std::shared_ptr<const toolkit::cancel_flag> cancel,
                                 const std::shared_ptr<live_actors>& live) {
  auto own = std::make_shared<toolkit::cancel_flag>(cancel);
  const std::string id = call.call_id;
  auto actor = parent->spawn<caf::detached + caf::monitored>(
      invocation, std::move(runtime), std::move(call), std::move(cancel), own,
      caf::actor_cast<caf::actor>(parent));
  if (live) live->add(actor, id, std::move(own));
  return actor;
}

void register_actor_tool(toolkit::registry& tools, caf::actor_system& system, model::tool_spec def,
                         tool_actor actor, std::chrono::milliseconds timeout) {
  tools.add(std::make_shared<actor_tool>(system, std::move(def), std::move(actor), timeout));
}

}  // namespace conclave::actors
