#include "bench/chaos_bench.h"

#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "bench/machine_info.h"

namespace conclave::bench {
namespace json = boost::json;

namespace {

/// Tool-using chat requests, one after another per client, until `done`: the server runs
/// the forced call, then answers. Counted apart from the streaming load.
struct tool_load {
  std::atomic<int64_t> completed{0}, calls_ok{0};
  std::mutex mutex;
  std::map<std::string, int64_t> errors;
};

void run_tool_client(const server_url& url, const chaos_bench_options& opts,
                     const std::string& model, const std::atomic<bool>& done, tool_load& out,
                     int index) {
  for (int i = 0; !done.load(); ++i) {
    const json::object body{
        {"model", model},
        {"messages", json::array{json::object{
                         {"role", "user"},
                         {"content", fmt::format("Tool request {} of client {}", i, index)}}}},
        {"server_tools", json::array{opts.tool}},
        {"tool_choice", {{"type", "function"}, {"function", {{"name", opts.tool}}}}},
        {"server_tool_choices", json::array{"none"}},
        {"max_tokens", 24},
        {"seed", i},
        {"stream", false}};
    std::string error;
    try {
      const auto r =
          http_call(url, "POST", "/v1/chat/completions", opts.load.api_key, json::serialize(body),
                    std::chrono::seconds(static_cast<int64_t>(opts.load.stall_timeout_s)));
      if (r.status == 200) {
        ++out.completed;
        const json::value v = json::parse(r.body);
        for (const auto& c : v.at("conclave").at("tool_calls").as_array())
          out.calls_ok += c.at("outcome").as_string() == "ok";
        continue;
      }
      error = fmt::format("tool request: HTTP {}: {}", r.status, error_label(r.body));
    } catch (const std::exception& e) {
      error = std::string("tool request: ") +
              (std::string(e.what()).find("timed out") != std::string::npos ? "timeout" : e.what());
    }
    std::lock_guard lock(out.mutex);
    ++out.errors[error];
  }
}

/// "3 crash_engine, 2 kill_tool"
std::string count_list(const std::map<std::string, int64_t>& counts) {
  std::string out;
  for (const auto& [kind, n] : counts)
    out += fmt::format("{}{} {}", out.empty() ? "" : ", ", n, kind);
  return out;
}

/// What one kill_node draw did.
enum class node_kill { injected, missed, not_applicable, refused };

/// kill_node: GET /admin/cluster, a random id from cluster.nodes, POST /admin/fault. As
/// replica faults go only into replicas that are up, only a node holding ranks of a
/// replica that is up is drawn: killing spare nodes, or the nodes a replica is being
/// rebuilt on, would only make the drill's own crash loop. A server without a cluster (no
/// "cluster" object, or 404/409 to the POST) makes the fault not applicable; a cluster
/// with no such node right now (all down or restarting) misses.
node_kill inject_kill_node(const server_url& url, const std::string& key, std::mt19937_64& rng,
                           int64_t& killed) {
  const json::value c = get_json(url, "/admin/cluster", key);
  const json::value* cluster = c.as_object().if_contains("cluster");
  if (cluster == nullptr || !cluster->is_object()) return node_kill::not_applicable;
  std::vector<int64_t> up;
  for (const auto& r : c.at("replicas").as_array())
    if (r.at("state").as_string() == "up") up.push_back(r.at("id").as_int64());
  std::vector<int64_t> serving;
  for (const auto& n : cluster->at("nodes").as_array()) {
    for (const auto& slot : n.at("slot_replica").as_array()) {
      if (std::find(up.begin(), up.end(), slot.as_int64()) == up.end()) continue;
      serving.push_back(n.at("id").as_int64());
      break;
    }
  }
  if (serving.empty()) return node_kill::missed;
  const int64_t id = serving[rng() % serving.size()];
  const auto r = http_call(url, "POST", "/admin/fault", key,
                           json::serialize(json::object{{"fault", "kill_node"}, {"node", id}}));
  if (r.status == 200) {
    ++killed;
    return node_kill::injected;
  }
  if (r.status == 404 && r.body.find("fault injection is off") != std::string::npos)
    return node_kill::refused;
  // 409: the node went between the GET and the POST; 404/409 from a server that has no
  // node at all (no cluster) is "not applicable", told apart above already.
  return r.status == 409 ? node_kill::missed : node_kill::not_applicable;
}

/// The registry's join and loss counters (0, 0 without a cluster).
std::pair<int64_t, int64_t> cluster_churn(const json::value& c) {
  const json::value* cluster = c.as_object().if_contains("cluster");
  if (cluster == nullptr || !cluster->is_object()) return {0, 0};
  return {cluster->at("joins").as_int64(), cluster->at("losses").as_int64()};
}

int64_t total_restarts(const json::value& cluster) {
  int64_t n = 0;
  for (const auto& r : cluster.at("replicas").as_array()) n += r.at("restarts").as_int64();
  return n;
}

std::string latency(const sample_stats& s) {
  if (s.empty()) return "n/a";
  return fmt::format("p50 {:.1f} ms, p99 {:.1f} ms", s.percentile(50) * 1e3,
                     s.percentile(99) * 1e3);
}

}  // namespace

void add_chaos_bench_options(CLI::App& cmd, chaos_bench_options& opts) {
  auto& l = opts.load;
  cmd.add_option("--url", l.url, "server address (started with --fault-injection)")
      ->capture_default_str();
  cmd.add_option("--clients", l.clients, "concurrent streams")->capture_default_str();
  cmd.add_option("--max-tokens", l.max_tokens, "tokens per request")->capture_default_str();
  cmd.add_option("--prompt-tokens", l.prompt_tokens, "approximate prompt length")
      ->capture_default_str();
  cmd.add_option("--duration", l.duration_s, "seconds of chaos")->capture_default_str();
  cmd.add_option("--interval", opts.interval_s, "seconds between faults")->capture_default_str();
  cmd.add_option("--baseline", opts.baseline_s, "seconds of quiet load first (0: none)")
      ->capture_default_str();
  cmd.add_option("--faults", opts.faults, "faults to draw from")
      ->check(CLI::IsMember({"crash_engine", "crash_worker", "fail_step", "hang_step",
                             "kill_session", "kill_tool", "kill_node"}));
  cmd.add_option("--tool-clients", opts.tool_clients,
                 "tool-using requests kept running beside the load (-1: 1 with kill_tool)")
      ->capture_default_str();
  cmd.add_option("--tool", opts.tool, "the server-side tool they call")->capture_default_str();
  cmd.add_option("--stall-timeout", l.stall_timeout_s, "a request silent this long counts as hung")
      ->capture_default_str();
  cmd.add_option("--seed", opts.seed, "fault schedule seed")->capture_default_str();
  cmd.add_option("--api-key", l.api_key, "sent as 'Authorization: Bearer KEY'");
  cmd.add_option("--json", l.json_file, "also write the results to this JSON file");
}

int run_chaos_bench(const chaos_bench_options& given, std::FILE* out) {
  chaos_bench_options opts = given;
  opts.load.protocol = "sse";  // one connection per request: a hung one is seen alone
  opts.load.requests = 0;
  if (opts.load.duration_s <= 0) opts.load.duration_s = 60;
  const server_url url = parse_server_url(opts.load.url);
  const std::string key = opts.load.api_key;
  const std::string model = fetch_first_model(url, key);
  const size_t replicas = get_json(url, "/admin/cluster", key).at("replicas").as_array().size();

  serve_bench_result baseline;
  if (opts.baseline_s > 0) {
    serve_bench_options quiet = opts.load;
    quiet.duration_s = opts.baseline_s;
    baseline = run_serve_load(quiet, model);
  }

  const double failovers_before = metric(url, key, "conclave_failovers_total");
  const json::value cluster_before = get_json(url, "/admin/cluster", key);
  const int64_t restarts_before = total_restarts(cluster_before);
  const auto churn_before = cluster_churn(cluster_before);
  std::atomic<bool> done{false};
  std::map<std::string, int64_t> injected, missed, not_applicable;
  int64_t nodes_killed = 0;
  int tool_clients = opts.tool_clients;
  if (tool_clients < 0)
    tool_clients = std::count(opts.faults.begin(), opts.faults.end(), "kill_tool") > 0 ? 1 : 0;
  tool_load tools;
  std::vector<std::thread> tool_threads;
  for (int i = 0; i < tool_clients; ++i)
    tool_threads.emplace_back([&, i] { run_tool_client(url, opts, model, done, tools, i); });
  std::string injector_error;
  std::thread injector([&] {
    std::mt19937_64 rng(opts.seed);
    const auto period = std::chrono::duration<double>(opts.interval_s);
    const auto stop = std::chrono::steady_clock::now() +
                      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                          std::chrono::duration<double>(opts.load.duration_s));
    auto next = std::chrono::steady_clock::now() + period;
    while (!done.load() && next <= stop) {
      std::this_thread::sleep_until(next);
      next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
      if (done.load()) break;
      const auto& fault = opts.faults[rng() % opts.faults.size()];
      const auto first = static_cast<int64_t>(rng() % replicas);
      if (fault == "kill_node") {
        try {
          switch (inject_kill_node(url, key, rng, nodes_killed)) {
            case node_kill::injected:
              ++injected[fault];
              break;
            case node_kill::missed:
              ++missed[fault];
              break;
            case node_kill::not_applicable:
              ++not_applicable[fault];
              break;
            case node_kill::refused:
              injector_error = "the server refuses faults: start it with --fault-injection";
              return;
          }
        } catch (const std::exception& e) {
          injector_error = e.what();
        }
        continue;
      }
      const bool kill = fault == "kill_session" || fault == "kill_tool";
      try {
        // A kill waits (up to half the interval) for something to kill: tool calls are
        // short. A replica fault goes to the next replica that is up (409: not up).
        const auto give_up = std::chrono::steady_clock::now() + period / 2;
        for (int64_t attempt = 0;; ++attempt) {
          const auto replica = (first + attempt) % static_cast<int64_t>(replicas);
          const std::string body =
              kill ? json::serialize(json::object{{"fault", fault}})
                   : json::serialize(json::object{{"replica", replica}, {"fault", fault}});
          const auto r = http_call(url, "POST", "/admin/fault", key, body);
          if (r.status == 404) {
            injector_error = "the server refuses faults: start it with --fault-injection";
            return;
          }
          if (r.status == 200) {
            ++injected[fault];
            break;
          }
          if (r.status != 409 || std::chrono::steady_clock::now() > give_up ||
              (!kill && attempt + 1 >= static_cast<int64_t>(replicas))) {
            ++missed[fault];
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      } catch (const std::exception& e) {
        injector_error = e.what();
      }
    }
  });
  const serve_bench_result r = run_serve_load(opts.load, model);
  done.store(true);
  injector.join();
  for (auto& t : tool_threads) t.join();
  const double failovers = metric(url, key, "conclave_failovers_total") - failovers_before;
  const json::value cluster_after = get_json(url, "/admin/cluster", key);
  const int64_t restarts = total_restarts(cluster_after) - restarts_before;
  const auto churn_after = cluster_churn(cluster_after);
  const int64_t node_joins = churn_after.first - churn_before.first;
  const int64_t node_losses = churn_after.second - churn_before.second;

  // A killed session's own request ends with session_stopped: expected, not lost.
  int64_t hung = 0, lost = 0, ended_by_kill = 0;
  auto classify = [&](const std::string& kind, int64_t n) {
    if (kind.find("session_stopped") != std::string::npos) {
      ended_by_kill += n;
    } else {
      (kind.find("timeout") != std::string::npos ? hung : lost) += n;
    }
  };
  for (const auto& [kind, n] : r.errors) classify(kind, n);
  for (const auto& [kind, n] : tools.errors) classify(kind, n);
  const int64_t sessions_killed = injected.count("kill_session") ? injected["kill_session"] : 0;
  // More session_stopped endings than kills would mean a kill touched another request.
  const int64_t collateral = std::max<int64_t>(0, ended_by_kill - sessions_killed);
  lost += collateral;
  int64_t faults = 0;
  for (const auto& [kind, n] : injected) faults += n;
  const std::string fault_list = count_list(injected);
  std::string text = "conclave bench chaos\n";
  text += fmt::format("  machine:        {}\n", describe_machine());
  text += fmt::format("  target:         {} (model \"{}\", {} replicas)\n", url.text(), model,
                      replicas);
  text += fmt::format("  load:           {} SSE streams, max_tokens {}, {:.0f} s of chaos\n",
                      opts.load.clients, opts.load.max_tokens, opts.load.duration_s);
  text += fmt::format("  faults:         {} injected, one every {:.1f} s ({})\n", faults,
                      opts.interval_s, fault_list.empty() ? "none" : fault_list);
  if (!missed.empty())
    text += fmt::format("  not injected:   {} (nothing to kill, or refused)\n", count_list(missed));
  if (!not_applicable.empty())
    text += fmt::format(
        "  not applicable: {} (the server has no cluster: kill_node needs "
        "--cluster-port and joined nodes)\n",
        count_list(not_applicable));
  if (nodes_killed > 0 || node_joins > 0 || node_losses > 0)
    text += fmt::format(
        "  cluster:        {} nodes killed; {} node losses, {} joins during the "
        "drill\n",
        nodes_killed, node_losses, node_joins);
  const int64_t sent = r.completed + r.error_count() + tools.completed.load();
  int64_t tool_errors = 0;
  for (const auto& [kind, n] : tools.errors) tool_errors += n;
  text += fmt::format(
      "  requests:       {} sent, {} completed, {} lost, {} hung; {} ended by their own "
      "session's kill\n",
      sent + tool_errors, r.completed + tools.completed.load(), lost, hung, ended_by_kill);
  if (tool_clients > 0)
    text += fmt::format("  tool requests:  {} completed ({} calls ok) by {} client(s) ({})\n",
                        tools.completed.load(), tools.calls_ok.load(), tool_clients, opts.tool);
  for (const auto& [kind, n] : r.errors)
    text += fmt::format("  error:          {} x {}\n", n, kind);
  for (const auto& [kind, n] : tools.errors)
    text += fmt::format("  error:          {} x {}\n", n, kind);
  text += fmt::format("  failovers:      {:.0f} (requests moved mid-stream), restarts: {}\n",
                      failovers, restarts);
  text += fmt::format("  e2e:            {} under chaos; {} quiet\n", latency(r.e2e),
                      latency(baseline.e2e));
  text += fmt::format("  TTFT:           {} under chaos; {} quiet\n", latency(r.ttft),
                      latency(baseline.ttft));
  text += fmt::format("  TPOT:           {} under chaos; {} quiet\n", latency(r.tpot),
                      latency(baseline.tpot));
  if (!injector_error.empty()) text += "  injector:       " + injector_error + "\n";
  std::fputs(text.c_str(), out);
  std::fflush(out);
  if (!opts.load.json_file.empty()) {
    json::object o{
        {"machine", describe_machine()},
        {"replicas", replicas},
        {"duration_s", opts.load.duration_s},
        {"faults", faults},
        {"faults_by_kind",
         [&] {
           json::object k;
           for (const auto& [kind, n] : injected) k[kind] = n;
           return k;
         }()},
        {"not_applicable",
         [&] {
           json::object k;
           for (const auto& [kind, n] : not_applicable) k[kind] = n;
           return k;
         }()},
        {"node_losses", node_losses},
        {"node_joins", node_joins},
        {"sent", sent + tool_errors},
        {"completed", r.completed + tools.completed.load()},
        {"tool_requests_completed", tools.completed.load()},
        {"lost", lost},
        {"hung", hung},
        {"ended_by_kill", ended_by_kill},
        {"sessions_killed", sessions_killed},
        {"failovers", failovers},
        {"restarts", restarts},
        {"e2e_p50_ms", r.e2e.empty() ? 0.0 : r.e2e.percentile(50) * 1e3},
        {"e2e_p99_ms", r.e2e.empty() ? 0.0 : r.e2e.percentile(99) * 1e3},
        {"baseline_e2e_p50_ms", baseline.e2e.empty() ? 0.0 : baseline.e2e.percentile(50) * 1e3},
        {"baseline_e2e_p99_ms", baseline.e2e.empty() ? 0.0 : baseline.e2e.percentile(99) * 1e3}};
    write_text_file(opts.load.json_file, json::serialize(o) + "\n");
  }
  if (!injector_error.empty()) return 2;
  return lost == 0 && hung == 0 ? 0 : 1;
}

}  // namespace conclave::bench
