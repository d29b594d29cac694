// chaos_bench: `conclave bench chaos`. Streams load at a running `conclave serve`
// (started with --fault-injection, best with --replicas 2 or more) and, once every
// interval, injects a random fault through POST /admin/fault: crash an engine or a
// worker, fail or hang a step (in a random replica), kill a random request's session,
// kill a running server-side tool invocation (a side load of tool-using requests gives
// it something to kill), or kill a random cluster node (kill_node: the node's process
// exits at once; "not applicable" on a server without a cluster). Reports requests lost
// (ended with an error other than the killed sessions' own), hung (silent past the stall
// timeout), the latency under chaos against a quiet baseline, failovers, restarts, and
// the cluster's node losses and joins.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/serve_bench.h"

namespace conclave::bench {

struct chaos_bench_options {
  serve_bench_options load;  ///< url, clients, tokens; duration_s is the chaos time
  double interval_s = 1.0;
  double baseline_s = 20.0;  ///< quiet load first, for the latency comparison (0: skip)
  std::vector<std::string> faults{"crash_engine", "crash_worker", "fail_step"};
  uint64_t seed = 1;
  /// Tool-using requests kept running next to the load (server-side code_interpreter);
  /// -1: one when kill_tool is among the faults, else none.
  int tool_clients = -1;
  std::string tool = "code_interpreter";
};

void add_chaos_bench_options(CLI::App& cmd, chaos_bench_options& opts);

/// Runs the drill and prints the report; returns 0 when nothing was lost or hung.
int run_chaos_bench(const chaos_bench_options& opts, std::FILE* out);

}  // namespace conclave::bench
