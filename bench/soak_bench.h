// soak_bench: `conclave bench soak`. Many requests of mixed kinds against a running
// `conclave serve` — streams that finish, streams the client abandons after the first
// chunk (cancel) or at a random moment (a client-side timeout), non-streamed requests,
// and requests the server must refuse — then checks that the server is back where it
// started: every KV block free, nothing running, and resident memory flat (the slope
// of the server's RSS over the second half of the run).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <string>

namespace conclave::bench {

struct soak_bench_options {
  std::string url = "http://127.0.0.1:8080";
  std::string api_key;
  int64_t requests = 10000;
  int32_t clients = 16;
  int32_t max_tokens = 24;  ///< the longest a request asks for (each draws 1 .. this)
  uint64_t seed = 1;
  std::string json_file;
};

void add_soak_bench_options(CLI::App& cmd, soak_bench_options& opts);

/// Runs the soak and prints the report; 0 when every request behaved as its kind must
/// and the server ended clean (all KV blocks free, nothing running).
int run_soak_bench(const soak_bench_options& opts, std::FILE* out);

}  // namespace conclave::bench
