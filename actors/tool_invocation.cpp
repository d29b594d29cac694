// The tool_invocation actor, tool metrics, and custom tools as actors.
#include "actors/tool_invocation.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>
#include <random>

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

caf::behavior invocation(caf::event_based_actor* self, std::shared_ptr<const tool_runtime> rt,
                         tool_call_request call,
                         std::shared_ptr<const toolkit::cancel_flag> request,
                         std::shared_ptr<const toolkit::cancel_flag> cancel, caf::actor parent) {
  tool_call_result r;
  r.call_id = call.call_id;
  r.name = call.name;
  if (auto t = rt->tools->find(call.name)) {
    std::function<double()> random = rt->random;
    if (!random) {
      random = [rng = std::make_shared<std::mt19937_64>(std::random_device{}())] {
        return static_cast<double>((*rng)() >> 11) * 0x1.0p-53;
      };
    }
    const auto inv = toolkit::invoke(*t, call.arguments, rt->retry, rt->sleep, random, cancel);
    r.content = inv.result.content;
    r.status = inv.result.status;
    r.attempts = inv.attempts;
    r.retries = inv.retries;
    r.seconds = inv.elapsed.count();
  } else {
    r.status = toolkit::outcome::error;
    r.content = "error: no server-side tool named '" + call.name + "'";
  }
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

tool_metrics::tool_metrics(prometheus::Registry& registry) {
  using namespace prometheus;
  calls_ = &BuildCounter()
                .Name("conclave_tool_calls_total")
                .Help("Server-side tool calls by tool and outcome")
                .Register(registry);
  latency_ = &BuildHistogram()
                  .Name("conclave_tool_call_duration_seconds")
                  .Help("Tool call time, all attempts and backoff waits included")
                  .Register(registry);
  retries_ = &BuildCounter()
                  .Name("conclave_tool_retries_total")
                  .Help("Tool call attempts repeated after a retryable failure")
                  .Register(registry);
}

void tool_metrics::observe(const tool_call_result& r) {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0};
  calls_->Add({{"tool", r.name}, {"outcome", toolkit::to_string(r.status)}}).Increment();
  latency_->Add({{"tool", r.name}}, buckets).Observe(r.seconds);
  if (r.retries > 0) retries_->Add({{"tool", r.name}}).Increment(r.retries);
}

caf::actor spawn_tool_invocation(caf::local_actor* parent,
                                 std::shared_ptr<const tool_runtime> runtime,
                                 tool_call_request call,
                                 std::shared_ptr<const toolkit::cancel_flag> cancel) {
  auto own = std::make_shared<toolkit::cancel_flag>(cancel);
  const std::string id = call.call_id;
  auto live = runtime->live;
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
