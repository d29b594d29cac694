// A server-side tool as a plugin: `word_count` counts the words of `text`, refusing texts
// of more than `max_words` (from the plugin's config). conclave checks the arguments
// against the schema before run() is called, retries `retryable` results and enforces
// the timeout; run() only does the work.
#include <boost/json.hpp>
#include <sstream>

#include "toolkit/plugin.h"

namespace {

using namespace conclave;

class word_count final : public toolkit::tool {
 public:
  explicit word_count(size_t max_words) : max_words_(max_words) {
    def_.name = "word_count";
    def_.description = "Count the words of a text";
    def_.parameters =
        R"({"type":"object","properties":{"text":{"type":"string"}},"required":["text"]})";
  }
  const model::tool_spec& definition() const override { return def_; }
  toolkit::tool_result run(const boost::json::object& args, const toolkit::run_context&) override {
    std::istringstream in{std::string(args.at("text").as_string())};
    size_t n = 0;
    for (std::string w; in >> w;) ++n;
    if (n > max_words_)
      return {toolkit::outcome::error, "more than " + std::to_string(max_words_) + " words"};
    return {toolkit::outcome::ok, std::to_string(n)};
  }

 private:
  model::tool_spec def_;
  size_t max_words_;
};

std::vector<std::shared_ptr<toolkit::tool>> make_tools(const std::string& config_json) {
  const auto config = boost::json::parse(config_json).as_object();
  size_t max_words = 10000;
  if (const auto* v = config.if_contains("max_words")) max_words = v->to_number<size_t>();
  return {std::make_shared<word_count>(max_words)};
}

}  // namespace

// Exported with default visibility (the rest of the plugin is hidden).
#pragma GCC visibility push(default)
CONCLAVE_TOOL_PLUGIN(make_tools)
#pragma GCC visibility pop
