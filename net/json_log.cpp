// JSON log lines (see the header).
#include "net/json_log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <ctime>
#include <stdexcept>

namespace conclave::net {
namespace json = boost::json;
namespace {

/// The keys every line has, in this order (null when they do not apply).
constexpr std::string_view request_keys[] = {"request_id",        "model",      "tenant",
                                             "replica",           "latency_ms", "prompt_tokens",
                                             "completion_tokens", "status",     "error"};

class json_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(msg.time.time_since_epoch()).count();
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string line =
        json_log_line({level.data(), level.size()}, {msg.payload.data(), msg.payload.size()}, ns);
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>();
  }
};

}  // namespace

std::string utc_timestamp(int64_t unix_ns) {
  const std::time_t s = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>((unix_ns / 1'000'000) % 1000));
  return buf;
}

std::string json_log_line(std::string_view level, std::string_view message, int64_t unix_ns) {
  json::object line;
  line["timestamp"] = utc_timestamp(unix_ns);
  line["level"] = level == "warning" ? "warn" : level;
  json::object fields;
  if (message.size() >= 2 && message.front() == '{' && message.back() == '}') {
    boost::system::error_code ec;
    auto v = json::parse(message, ec);
    if (!ec && v.is_object()) fields = std::move(v.as_object());
  }
  if (fields.empty()) {
    line["message"] = message;
  } else {
    // A structured line: its "event" names it; its fields join the line's.
    const auto* event = fields.if_contains("event");
    line["message"] =
        event != nullptr && event->is_string() ? event->as_string() : json::string("event");
  }
  for (const auto key : request_keys) line[key] = nullptr;
  for (auto& [k, v] : fields) {
    if (k == "timestamp" || k == "level" || k == "message") continue;
    line[k] = std::move(v);
  }
  return json::serialize(line);
}

void set_log_format(const std::string& format) {
  if (format == "json") {
    spdlog::set_formatter(std::make_unique<json_formatter>());
  } else if (format == "text") {
    spdlog::set_formatter(
        std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v"));
  } else {
    throw std::invalid_argument("log format must be \"json\" or \"text\", not \"" + format + "\"");
  }
}

}  // namespace conclave::net
