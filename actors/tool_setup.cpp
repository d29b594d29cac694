// [tools] -> a tool_runtime (see the header).
#include "actors/tool_setup.h"

#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>
#include <stdexcept>

#include "model/tool_spec_json.h"
#include "toolkit/browser_tool.h"
#include "toolkit/math_tool.h"
#include "toolkit/sandbox.h"
#include "toolkit/webhook_tool.h"

namespace conclave::actors {

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
  if (metrics) rt->metrics = std::make_shared<tool_metrics>(metrics->registry());
  return rt;
}

}  // namespace conclave::actors
