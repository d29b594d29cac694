// toolkit's plain pieces: schema checks, the retry schedule (injected sleeper and
// random draws), the registry and the math tool.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <deque>

#include "toolkit/invoke.h"
#include "toolkit/math_tool.h"
#include "toolkit/registry.h"
#include "toolkit/schema_check.h"

using namespace conclave::toolkit;
namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

std::string check(std::string_view value, std::string_view schema) {
  return check_schema(json::parse(value), json::parse(schema));
}

/// A tool that returns scripted results, one per attempt.
class scripted_tool : public tool {
 public:
  explicit scripted_tool(std::deque<tool_result> script) : script_(std::move(script)) {
    def_.name = "scripted";
    def_.parameters = R"({"type":"object","required":["n"],"properties":{"n":{"type":"integer"}}})";
  }
  const conclave::model::tool_spec& definition() const override { return def_; }
  tool_result run(const json::object&, const run_context&) override {
    ++runs;
    auto r = script_.front();
    if (script_.size() > 1) script_.pop_front();
    return r;
  }
  int runs = 0;

 private:
  conclave::model::tool_spec def_;
  std::deque<tool_result> script_;
};

struct recorded_sleep {
  std::vector<milliseconds> waits;
  sleeper fn() {
    return [this](milliseconds d, const cancel_flag&) {
      waits.push_back(d);
      return true;
    };
  }
};

}  // namespace

TEST_CASE("schema checks name the failing place", "[toolkit]") {
  const char* s =
      R"({"type":"object","required":["city"],"additionalProperties":false,"properties":{
    "city":{"type":"string","minLength":1},"days":{"type":"integer","minimum":1,"maximum":14},
    "unit":{"enum":["c","f"]},"tags":{"type":"array","items":{"type":"string"},"maxItems":2},
    "limit":{"anyOf":[{"type":"integer"},{"type":"null"}]}}})";
  CHECK(check(R"({"city":"Paris","days":3,"unit":"c","tags":["a"],"limit":null})", s).empty());
  CHECK(check(R"({"city":"Paris","days":3.0})", s).empty());  // integral numbers are integers
  CHECK(check(R"({"days":3})", s) == "arguments: missing required property 'city'");
  CHECK(check(R"({"city":"P","days":"3"})", s) == "days: expected integer, got string");
  CHECK(check(R"({"city":"P","days":30})", s) == "days: 30 is above the maximum 14");
  CHECK(check(R"({"city":"P","unit":"k"})", s) == R"(unit: "k" is not one of ["c","f"])");
  CHECK(check(R"({"city":"P","tags":["a",1]})", s) == "tags[1]: expected string, got integer");
  CHECK(check(R"({"city":"P","tags":["a","b","c"]})", s) == "tags: more than 2 items");
  CHECK(check(R"({"city":"P","x":1})", s) == "arguments: unknown property 'x'");
  CHECK(check(R"({"city":""})", s) == "city: shorter than 1 characters");
  CHECK(
      check(R"({"city":"P","limit":"no"})", s).rfind("limit: matches no alternative of anyOf", 0) ==
      0);
  CHECK(check(R"([1])", s) == "arguments: expected object, got array");
}

TEST_CASE("backoff is base x 2^attempt, jittered within bounds", "[toolkit]") {
  retry_policy p;
  p.base = milliseconds(100);
  p.jitter = 0.25;
  CHECK(p.delay(0, 0.5) == milliseconds(100));
  CHECK(p.delay(3, 0.5) == milliseconds(800));
  CHECK(p.delay(2, 0.0) == milliseconds(300));    // 400 × 0.75
  CHECK(p.delay(2, 0.999) == milliseconds(500));  // 400 × ~1.25
  CHECK(p.validate().empty());
  p.max_attempts = 6;
  CHECK(p.validate() == "max_attempts must be in [1, 5]");
}

TEST_CASE("retryable failures are retried with backoff, success ends it", "[toolkit]") {
  scripted_tool t(
      {{outcome::retryable, "HTTP 503"}, {outcome::retryable, "HTTP 503"}, {outcome::ok, "done"}});
  recorded_sleep s;
  retry_policy p;
  p.base = milliseconds(100);
  const auto inv = invoke(
      t, R"({"n":1})", p, s.fn(), [] { return 0.5; }, std::make_shared<cancel_flag>());
  CHECK(inv.result.status == outcome::ok);
  CHECK(inv.result.content == "done");
  CHECK(inv.attempts == 3);
  CHECK(inv.retries == 2);
  CHECK(s.waits == std::vector<milliseconds>{milliseconds(100), milliseconds(200)});
}

TEST_CASE("a tool that always fails is tried 5 times, then the model gets an error", "[toolkit]") {
  scripted_tool t({{outcome::retryable, "timed out after 50 ms"}});
  recorded_sleep s;
  retry_policy p;
  p.base = milliseconds(10);
  const auto inv = invoke(
      t, R"({"n":1})", p, s.fn(), [] { return 0.5; }, std::make_shared<cancel_flag>());
  CHECK(t.runs == 5);
  CHECK(inv.result.status == outcome::retryable);
  CHECK(inv.result.content == "error: scripted failed after 5 attempts: timed out after 50 ms");
  CHECK(s.waits == std::vector<milliseconds>{milliseconds(10), milliseconds(20), milliseconds(40),
                                             milliseconds(80)});
}

TEST_CASE("bad arguments and definite errors are never retried", "[toolkit]") {
  recorded_sleep s;
  retry_policy p;
  for (const char* bad : {R"({"n":"x"})", R"({})", "not json", "[1]"}) {
    scripted_tool t({{outcome::ok, "never"}});
    const auto inv = invoke(
        t, bad, p, s.fn(), [] { return 0.5; }, std::make_shared<cancel_flag>());
    INFO(bad);
    CHECK(inv.result.status == outcome::invalid_arguments);
    CHECK(inv.result.content.rfind("error: ", 0) == 0);
    CHECK(inv.attempts == 0);
    CHECK(t.runs == 0);
  }
  scripted_tool t({{outcome::error, "HTTP 404: no such thing"}});
  const auto inv = invoke(
      t, R"({"n":1})", p, s.fn(), [] { return 0.5; }, std::make_shared<cancel_flag>());
  CHECK(inv.attempts == 1);
  CHECK(inv.result.content == "error: HTTP 404: no such thing");
  CHECK(s.waits.empty());
}

TEST_CASE("a crash (exception) is retryable, cancelling stops the retries", "[toolkit]") {
  class thrower : public scripted_tool {
   public:
    thrower() : scripted_tool({{outcome::ok, ""}}) {}
    tool_result run(const json::object&, const run_context&) override {
      throw std::runtime_error("boom");
    }
  } t;
  auto cancel = std::make_shared<cancel_flag>();
  int sleeps = 0;
  const sleeper s = [&](milliseconds, const cancel_flag&) {
    if (++sleeps == 2) cancel->cancel();
    return sleeps < 2;
  };
  const auto inv = invoke(
      t, R"({"n":1})", retry_policy{}, s, [] { return 0.5; }, cancel);
  CHECK(inv.attempts == 2);
  CHECK(inv.result.status == outcome::cancelled);
}

TEST_CASE("registry: unique names, object schemas", "[toolkit]") {
  registry r;
  r.add(std::make_shared<math_tool>());
  CHECK(r.find("math") != nullptr);
  CHECK(r.find("nope") == nullptr);
  CHECK_THROWS_WITH(r.add(std::make_shared<math_tool>()), "tool registry: two tools named 'math'");
  CHECK(r.definitions().size() == 1);
}

TEST_CASE("math: values, and errors as messages", "[toolkit]") {
  CHECK(evaluate_math("(2+3)*sqrt(16)/2^3").content == "2.5");
  CHECK(evaluate_math("2^10").content == "1024");
  CHECK(evaluate_math("sin(_pi/2)").content == "1");
  for (const char* bad : {"1/0", "2+", "foo(1)", "((1)", "sqrt(-1)", ""}) {
    const auto r = evaluate_math(bad);
    INFO(bad << " -> " << r.content);
    CHECK(r.status == outcome::error);
    CHECK(r.content.rfind("error: ", 0) == 0);
  }
  math_tool m;
  const auto inv = invoke(
      m, R"({"expression":"6*7"})", retry_policy{}, real_sleeper(), [] { return 0.5; },
      std::make_shared<cancel_flag>());
  CHECK(inv.result.content == "42");
}
