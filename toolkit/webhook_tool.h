// Webhook tools from the configuration: name, description, JSON schema, URL. A call is a
// POST of the arguments as JSON; the response body (up to `max_bytes`) is the result.
// 2xx: the answer; 5xx, a timeout or a failed connection: retryable; other statuses:
// a definite error.
#pragma once

#include <chrono>
#include <string>

#include "toolkit/tool.h"

namespace conclave::toolkit {

struct webhook_config {
  model::tool_spec def;
  std::string url;
  std::chrono::milliseconds timeout{10000};
  size_t max_bytes = 65536;
};

class webhook_tool : public tool {
 public:
  /// Throws std::invalid_argument for a URL that is not http://host[:port][/path].
  explicit webhook_tool(webhook_config cfg);
  const model::tool_spec& definition() const override { return cfg_.def; }
  tool_result run(const boost::json::object& args, const run_context& ctx) override;
  std::chrono::milliseconds timeout() const override { return cfg_.timeout; }

 private:
  webhook_config cfg_;
};

}  // namespace conclave::toolkit
