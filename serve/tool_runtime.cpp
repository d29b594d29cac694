// [tools] -> a tool_runtime; running one call; tool metrics (see the header).
#include "serve/tool_runtime.h"

#include "serve/live_stats.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <random>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>
#include <stdexcept>

#include "model/tool_spec_json.h"
#include "serve/server_metrics.h"
#include "toolkit/browser_tool.h"
#include "toolkit/math_tool.h"
#include "toolkit/plugin_loader.h"
#include "toolkit/sandbox.h"
#include "toolkit/webhook_tool.h"

namespace conclave::serve {

tool_metrics::tool_metrics(prometheus::Registry& registry, std::shared_ptr<live_stats> live)
    : live_(std::move(live)) {
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
  // A cancelled call (its request went away) is neither a success nor a failure.
  if (live_ && r.status != toolkit::outcome::cancelled)
    live_->count_tool_call(r.status != toolkit::outcome::ok);
}

client_event tool_result_event(const tool_call_result& r) {
  client_event e;
  e.type = client_event::kind::tool_result;
  e.call_id = r.call_id;
  e.name = r.name;
  e.text = r.content;
  e.tool_outcome = toolkit::to_string(r.status);
  return e;
}

tool_call_result run_tool_call(const tool_runtime& rt, const tool_call_request& call,
                               std::shared_ptr<const toolkit::cancel_flag> cancel) {
  tool_call_result r;
  r.call_id = call.call_id;
  r.name = call.name;
  auto t = rt.tools->find(call.name);
  if (!t) {
    r.status = toolkit::outcome::error;
    r.content = "error: no server-side tool named '" + call.name + "'";
    return r;
  }
  std::function<double()> random = rt.random;
  if (!random) {
    random = [rng = std::make_shared<std::mt19937_64>(std::random_device{}())] {
      return static_cast<double>((*rng)() >> 11) * 0x1.0p-53;
    };
  }
  const auto inv =
      toolkit::invoke(*t, call.arguments, rt.retry, rt.sleep, random, std::move(cancel));
  r.content = inv.result.content;
  r.status = inv.result.status;
  r.attempts = inv.attempts;
  r.retries = inv.retries;
  r.seconds = inv.elapsed.count();
  return r;
}

std::shared_ptr<const tool_runtime> make_tool_runtime(
    const config::tools_config& cfg, const std::shared_ptr<server_metrics>& metrics) {
  auto rt = std::make_shared<tool_runtime>();
  rt->retry.base = std::chrono::milliseconds(cfg.retry_base_ms);
  rt->tools->add(std::make_shared<toolkit::math_tool>());
  toolkit::sandbox_limits limits;
  limits.wall = std::chrono::milliseconds(static_cast<int64_t>(cfg.sandbox_wall_s * 1000));
  limits.cpu_seconds = cfg.sandbox_cpu_s;
  limits.memory_bytes = static_cast<uint64_t>(cfg.sandbox_memory_mib) << 20;
  rt->tools->add(std::make_shared<toolkit::code_interpreter>(limits));
  if (!cfg.browser_allowed_hosts.empty()) {
    toolkit::browser_config b;
    b.allowed_hosts = cfg.browser_allowed_hosts;
    rt->tools->add(std::make_shared<toolkit::browser_tool>(b));
  }
  for (size_t i = 0; i < cfg.webhooks.size(); ++i) {
    const auto& w = cfg.webhooks[i];
    const std::string where = fmt::format("tools.webhooks[{}] ({})", i, w.name);
    toolkit::webhook_config hook;
    hook.def.name = w.name;
    hook.def.description = w.description;
    if (!w.parameters.empty()) {
      boost::system::error_code ec;
      const auto v = boost::json::parse(w.parameters, ec);
      if (ec || !v.is_object())
        throw std::invalid_argument(where + ": parameters must be a JSON object schema");
      model::set_parameters(hook.def, v.get_object());
    }
    hook.url = w.url;
    hook.timeout = std::chrono::milliseconds(static_cast<int64_t>(w.timeout_s * 1000));
    try {
      rt->tools->add(std::make_shared<toolkit::webhook_tool>(std::move(hook)));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where + ": " + e.what());
    }
  }
  for (size_t i = 0; i < cfg.plugins.size(); ++i) {
    const auto& p = cfg.plugins[i];
    const std::string where = fmt::format("tools.plugins[{}]", i);
    try {
      for (auto& t : toolkit::load_tool_plugin(p.path, p.config)) {
        spdlog::info("tool plugin {}: tool \"{}\"", p.path, t->definition().name);
        rt->tools->add(std::move(t));
      }
    } catch (const std::exception& e) {  // loading, or a bad or duplicate tool
      throw std::invalid_argument(where + ": " + e.what());
    }
  }
  if (metrics)
    rt->metrics = std::make_shared<tool_metrics>(metrics->registry(), metrics->live_ptr());
  return rt;
}

}  // namespace conclave::serve
