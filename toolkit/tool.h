// The tool runtime's plain interface: a tool has a definition (model::tool_spec: name,
// description, JSON schema of its arguments, as the model sees it) and runs on validated arguments
// within a deadline, watching a cancellation flag. Results are text for the model; failures say
// whether a retry may help (timeout, crash, 5xx) or not (bad arguments, a definite error).
#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "model/tool_spec.h"

namespace conclave::toolkit {

using clock_type = std::chrono::steady_clock;

enum class outcome {
  ok,                 ///< `content` is the tool's answer
  invalid_arguments,  ///< the arguments do not fit the schema: never retried
  error,              ///< a definite failure (4xx, an error the tool reports): not retried
  retryable,          ///< timeout, crash, 5xx: retried with backoff
  cancelled,          ///< the request went away
};

const char* to_string(outcome o);

struct tool_result {
  outcome status = outcome::ok;
  std::string content;  ///< the answer, or the error message the model sees
};

/// Set by whoever cancels (the request session); tools poll it and stop their work.
class cancel_flag {
 public:
  cancel_flag() = default;
  /// A flag that also reads as cancelled once `parent` is (one call's flag under its
  /// request's).
  explicit cancel_flag(std::shared_ptr<const cancel_flag> parent) : parent_(std::move(parent)) {}
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const {
    return cancelled_.load(std::memory_order_relaxed) || (parent_ && parent_->cancelled());
  }

 private:
  std::atomic<bool> cancelled_{false};
  std::shared_ptr<const cancel_flag> parent_;
};

/// What one attempt may use.
struct run_context {
  clock_type::time_point deadline;  ///< the attempt's timeout
  std::shared_ptr<const cancel_flag> cancel = std::make_shared<cancel_flag>();
  bool cancelled() const { return cancel && cancel->cancelled(); }
  bool expired() const { return clock_type::now() >= deadline; }
};

class tool {
 public:
  virtual ~tool() = default;
  virtual const model::tool_spec& definition() const = 0;
  /// One attempt on arguments already checked against the schema. Must return by the
  /// deadline (or soon after) and when cancelled; must not throw for bad input.
  virtual tool_result run(const boost::json::object& args, const run_context& ctx) = 0;
  /// Per-attempt timeout.
  virtual std::chrono::milliseconds timeout() const { return std::chrono::seconds(30); }
};

}  // namespace conclave::toolkit
