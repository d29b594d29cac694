// `browser`: fetches a web page (GET, Beast client) and returns its readable text. Only
// hosts on the allowlist are fetched; every redirect is checked against it again; the
// response is bounded in size and time. HTML loses its tags, scripts, styles and
// comments; block elements become line breaks; common entities are decoded.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "toolkit/tool.h"

namespace conclave::toolkit {

struct browser_config {
  std::vector<std::string> allowed_hosts;  ///< exact host names (case-insensitive)
  std::chrono::milliseconds timeout{10000};
  size_t max_bytes = 1 << 20;  ///< of the response body
  size_t max_text = 16384;     ///< of the text returned to the model
  int max_redirects = 5;
};

/// Readable text of an HTML document (plain text passes through, whitespace tidied).
std::string html_to_text(std::string_view html);

class browser_tool : public tool {
 public:
  explicit browser_tool(browser_config cfg);
  const model::tool_spec& definition() const override { return def_; }
  tool_result run(const boost::json::object& args, const run_context& ctx) override;
  std::chrono::milliseconds timeout() const override { return cfg_.timeout; }

 private:
  bool allowed(const std::string& host) const;
  model::tool_spec def_;
  browser_config cfg_;
};

}  // namespace conclave::toolkit
