// POST the arguments, classify the answer (see the header).
#include "toolkit/webhook_tool.h"

#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>
#include <stdexcept>

#include "toolkit/http_fetch.h"

namespace conclave::toolkit {

webhook_tool::webhook_tool(webhook_config cfg) : cfg_(std::move(cfg)) {
  std::string err;
  if (!parse_http_url(cfg_.url, err))
    throw std::invalid_argument(fmt::format("webhook tool {}: url: {}", cfg_.def.name, err));
}

tool_result webhook_tool::run(const boost::json::object& args, const run_context& ctx) {
  const auto r = http_request("POST", cfg_.url, boost::json::serialize(args), "application/json",
                              cfg_.max_bytes, ctx);
  if (r.cancelled) return {outcome::cancelled, "cancelled"};
  if (r.timed_out)
    return {outcome::retryable, fmt::format("timed out after {} ms", cfg_.timeout.count())};
  if (r.status == 0) return {outcome::retryable, r.error};
  if (r.status >= 200 && r.status < 300) return {outcome::ok, r.body};
  if (r.status >= 500)
    return {outcome::retryable, fmt::format("HTTP {}: {}", r.status, r.body.substr(0, 200))};
  return {outcome::error, fmt::format("HTTP {}: {}", r.status, r.body.substr(0, 200))};
}

}  // namespace conclave::toolkit
