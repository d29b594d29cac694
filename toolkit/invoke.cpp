// One tool call with schema check and retries (see the header).
#include "toolkit/invoke.h"

#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>
#include <cmath>
#include <thread>

#include "model/tool_spec_json.h"
#include "toolkit/schema_check.h"

namespace conclave::toolkit {

const char* to_string(outcome o) {
  switch (o) {
    case outcome::ok:
      return "ok";
    case outcome::invalid_arguments:
      return "invalid_arguments";
    case outcome::error:
      return "error";
    case outcome::retryable:
      return "failed";
    case outcome::cancelled:
      return "cancelled";
  }
  return "?";
}

std::chrono::milliseconds retry_policy::delay(int attempt, double u) const {
  const double scale = 1.0 + jitter * (2.0 * u - 1.0);
  const double ms = static_cast<double>(base.count()) * std::ldexp(1.0, attempt) * scale;
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

std::string retry_policy::validate() const {
  if (max_attempts < 1 || max_attempts > 5) return "max_attempts must be in [1, 5]";
  if (base.count() < 0) return "base must be >= 0";
  if (!(jitter >= 0.0 && jitter < 1.0)) return "jitter must be in [0, 1)";
  return {};
}

sleeper real_sleeper() {
  return [](std::chrono::milliseconds d, const cancel_flag& cancel) {
    const auto until = clock_type::now() + d;
    while (clock_type::now() < until) {
      if (cancel.cancelled()) return false;
      std::this_thread::sleep_for(
          std::min<clock_type::duration>(std::chrono::milliseconds(10), until - clock_type::now()));
    }
    return !cancel.cancelled();
  };
}

invocation invoke(tool& t, const std::string& arguments, const retry_policy& policy,
                  const sleeper& sleep, const std::function<double()>& random,
                  const std::shared_ptr<const cancel_flag>& cancel) {
  const auto t0 = clock_type::now();
  invocation inv;
  auto done = [&]() -> invocation& {
    inv.elapsed = clock_type::now() - t0;
    return inv;
  };
  const std::string& name = t.definition().name;
  boost::json::value args;
  boost::system::error_code ec;
  args = boost::json::parse(arguments.empty() ? std::string_view("{}") : arguments, ec);
  if (ec || !args.is_object()) {
    inv.result = {outcome::invalid_arguments,
                  fmt::format("error: the arguments of {} are not a JSON object", name)};
    return done();
  }
  // Parsed per invocation: microseconds next to running the tool, and tools keep no JSON.
  if (auto err = check_schema(args, boost::json::value(model::parameters_object(t.definition())));
      !err.empty()) {
    inv.result = {outcome::invalid_arguments,
                  fmt::format("error: invalid arguments for {}: {}", name, err)};
    return done();
  }
  for (int attempt = 0; attempt < policy.max_attempts; ++attempt) {
    run_context ctx{clock_type::now() + t.timeout(), cancel};
    ++inv.attempts;
    tool_result r;
    try {
      r = t.run(args.get_object(), ctx);
    } catch (const std::exception& e) {  // a crashing tool is a retryable failure
      r = {outcome::retryable, std::string("the tool crashed: ") + e.what()};
    }
    if (ctx.cancelled()) r = {outcome::cancelled, "cancelled"};
    inv.result = std::move(r);
    if (inv.result.status != outcome::retryable) break;
    if (attempt + 1 == policy.max_attempts) {
      inv.result.content = fmt::format("error: {} failed after {} attempts: {}", name, inv.attempts,
                                       inv.result.content);
      break;
    }
    const auto d = policy.delay(attempt, random());
    inv.delays.push_back(d);
    ++inv.retries;
    if (!sleep(d, *cancel)) {
      inv.result = {outcome::cancelled, "cancelled"};
      break;
    }
  }
  if (inv.result.status == outcome::error && inv.result.content.rfind("error", 0) != 0)
    inv.result.content = "error: " + inv.result.content;
  return done();
}

}  // namespace conclave::toolkit
