// `math`: evaluates an arithmetic expression with muparser (Debian's libmuparser):
// + - * / ^, parentheses, sin cos tan asin acos atan sinh cosh tanh log2 log10 ln exp
// sqrt sign rint abs min max sum avg, constants _pi and _e. Errors are messages.
#pragma once

#include <string>

#include "toolkit/tool.h"

namespace conclave::toolkit {

/// The value of `expression` as text ("42", "0.5", "1e+100"), or an error message
/// starting with "error:". Never throws.
tool_result evaluate_math(const std::string& expression);

class math_tool : public tool {
 public:
  math_tool();
  const model::tool_spec& definition() const override { return def_; }
  tool_result run(const boost::json::object& args, const run_context& ctx) override;
  std::chrono::milliseconds timeout() const override { return std::chrono::seconds(1); }

 private:
  model::tool_spec def_;
};

}  // namespace conclave::toolkit
