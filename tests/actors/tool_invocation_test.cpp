// tool_invocation actors on a real actor system (tools block on their own threads):
// results, argument errors, unknown tools, a custom tool actor, cancellation killing a
// sandboxed program, and the Prometheus series.
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <boost/json.hpp>
#include <caf/all.hpp>
#include <catch2/catch.hpp>
#include <thread>

#include "actors/tool_invocation.h"
#include "tests/skip.h"
#include "toolkit/math_tool.h"
#include "toolkit/sandbox.h"

using namespace conclave;
using namespace conclave::actors;
using namespace std::chrono_literals;

namespace {

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  prometheus::Registry registry;
  std::shared_ptr<serve::tool_runtime> rt = std::make_shared<serve::tool_runtime>();
  fixture() {
    rt->tools->add(std::make_shared<toolkit::math_tool>());
    toolkit::sandbox_limits l;
    l.wall = 60s;
    l.cpu_seconds = 60;
    rt->tools->add(std::make_shared<toolkit::code_interpreter>(l));
    rt->metrics = std::make_shared<serve::tool_metrics>(registry);
    rt->retry.base = 1ms;
  }
  serve::tool_call_result call(
      const std::string& name, const std::string& args,
      std::shared_ptr<toolkit::cancel_flag> cancel = std::make_shared<toolkit::cancel_flag>()) {
    caf::scoped_actor self{sys};
    auto a = spawn_tool_invocation(self.ptr(), rt, {"call_1", name, args}, cancel, nullptr);
    serve::tool_call_result out;
    self->receive([&](tool_result_atom, serve::tool_call_result& r) { out = std::move(r); });
    self->receive([&](caf::down_msg& d) { CHECK(d.source == a.address()); });
    return out;
  }
  std::string metrics() { return prometheus::TextSerializer().Serialize(registry.Collect()); }
};

}  // namespace

TEST_CASE("tool_invocation: a call's result goes to the parent, the actor ends",
          "[tools][actors]") {
  fixture f;
  const auto r = f.call("math", R"({"expression":"6*7"})");
  CHECK(r.call_id == "call_1");
  CHECK(r.status == toolkit::outcome::ok);
  CHECK(r.content == "42");
  CHECK(r.attempts == 1);
  const auto bad = f.call("math", R"({"expr":"1"})");
  CHECK(bad.status == toolkit::outcome::invalid_arguments);
  CHECK(bad.content ==
        "error: invalid arguments for math: arguments: missing required property 'expression'");
  CHECK(bad.attempts == 0);
  const auto unknown = f.call("nope", "{}");
  CHECK(unknown.content == "error: no server-side tool named 'nope'");
  const auto m = f.metrics();
  CHECK(m.find(R"(conclave_tool_calls_total{outcome="ok",tool="math"} 1)") != std::string::npos);
  CHECK(m.find(R"(conclave_tool_calls_total{outcome="invalid_arguments",tool="math"} 1)") !=
        std::string::npos);
  CHECK(m.find(R"(conclave_tool_call_duration_seconds_count{tool="math"} 2)") != std::string::npos);
}

TEST_CASE("a custom tool actor behind the typed interface, retried when it fails",
          "[tools][actors]") {
  fixture f;
  // The counter is a spawn argument: CAF 0.17's no-argument spawn path trips UBSan.
  auto flaky = f.sys.spawn(
      [](tool_actor::pointer self, std::shared_ptr<int> calls) -> tool_actor::behavior_type {
        return {[self, calls](run_tool_atom,
                              const std::string& args) -> caf::result<bool, std::string> {
          if (++*calls == 1) return caf::make_error(caf::sec::runtime_error, "first call fails");
          (void)self;
          return {true, "echo " + args};
        }};
      },
      std::make_shared<int>(0));
  model::tool_spec def{"echo", "echoes", R"({"type":"object"})"};
  register_actor_tool(*f.rt->tools, f.sys, def, flaky, 5s);
  const auto r = f.call("echo", R"({"x":1})");
  CHECK(r.status == toolkit::outcome::ok);
  CHECK(r.content == R"(echo {"x":1})");
  CHECK(r.attempts == 2);
  CHECK(f.metrics().find(R"(conclave_tool_retries_total{tool="echo"} 1)") != std::string::npos);
  caf::anon_send_exit(flaky, caf::exit_reason::user_shutdown);
}

TEST_CASE("cancelling a request's tool kills its sandboxed program", "[tools][actors][sandbox]") {
  if (auto why = toolkit::sandbox_unavailable(); !why.empty())
    CONCLAVE_SKIP("the code_interpreter sandbox cannot run here: " + why);
  fixture f;
  auto cancel = std::make_shared<toolkit::cancel_flag>();
  std::thread t([cancel] {
    std::this_thread::sleep_for(500ms);
    cancel->cancel();
  });
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = f.call("code_interpreter", R"J({"code":"import time\ntime.sleep(60)"})J", cancel);
  t.join();
  CHECK(r.status == toolkit::outcome::cancelled);
  CHECK(std::chrono::steady_clock::now() - t0 < 30s);  // far below the program's 60 s
  CHECK(f.metrics().find(
            R"(conclave_tool_calls_total{outcome="cancelled",tool="code_interpreter"} 1)") !=
        std::string::npos);
}
