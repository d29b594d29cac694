// muparser behind the `math` tool.
#include "toolkit/math_tool.h"

#include <muParser.h>
#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>
#include <cmath>

#include "model/tool_spec_json.h"

namespace conclave::toolkit {

tool_result evaluate_math(const std::string& expression) {
  if (expression.size() > 4096)
    return {outcome::error, "error: the expression is longer than 4096 characters"};
  try {
    mu::Parser p;
    p.SetExpr(expression);
    const double v = p.Eval();
    if (std::isnan(v)) return {outcome::error, "error: the result is not a number"};
    if (std::isinf(v)) return {outcome::error, "error: the result is infinite"};
    if (v == std::floor(v) && std::fabs(v) < 1e15)
      return {outcome::ok, fmt::format("{}", static_cast<int64_t>(v))};
    return {outcome::ok, fmt::format("{}", v)};
  } catch (const mu::Parser::exception_type& e) {
    return {outcome::error, fmt::format("error: {} (at position {})", e.GetMsg(), e.GetPos())};
  }
}

math_tool::math_tool() {
  def_.name = "math";
  def_.description = "Evaluate an arithmetic expression, e.g. (2+3)*sqrt(16)/2^3.";
  model::set_parameters(def_, boost::json::parse(R"({"type":"object","required":["expression"],
    "properties":{"expression":{"type":"string","description":"the expression"}}})")
                                  .as_object());
}

tool_result math_tool::run(const boost::json::object& args, const run_context&) {
  return evaluate_math(std::string(args.at("expression").as_string()));
}

}  // namespace conclave::toolkit
