// `code_interpreter`: Python 3 under bubblewrap. The program runs as an unprivileged
// user (a uid of its own from 200000-1248575 when the server runs as root) in new user, PID,
// network, IPC and UTS namespaces: no network, a read-only view of /usr (and nothing else of the
// host), a private temporary working directory as its only writable place, limits on CPU time,
// address space, processes and file size, and a wall-clock timeout after which the whole
// sandbox is killed. stdout and stderr are truncated to configured sizes.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "toolkit/tool.h"

namespace conclave::toolkit {

struct sandbox_limits {
  std::chrono::milliseconds wall{10000};
  int cpu_seconds = 5;
  uint64_t memory_bytes = uint64_t{512} << 20;  ///< address space per process
  int processes = 32;  ///< as root: per sandbox; else: beyond the user's own
  uint64_t file_bytes = uint64_t{16} << 20;
  size_t stdout_bytes = 16384, stderr_bytes = 8192;
  std::string bwrap = "/usr/bin/bwrap";
  std::string python = "/usr/bin/python3";
};

struct sandbox_run {
  bool started = false;  ///< false: the sandbox itself could not run (see `error`)
  std::string error;
  int exit_code = -1;  ///< when it exited (128 + N from bwrap is read as signal N)
  int signal = 0;      ///< when a signal ended it (SIGKILL at the timeout, SIGXCPU, ...)
  bool timed_out = false, cancelled = false;
  std::string out, err;
  bool out_truncated = false, err_truncated = false;
  std::chrono::duration<double> elapsed{};
};

/// Runs `code` with `limits`; stops early (killing everything) when `cancel` is set.
sandbox_run run_python(const std::string& code, const sandbox_limits& limits,
                       const cancel_flag* cancel = nullptr);

/// Whether bubblewrap can create its namespaces here; empty when it can, else why not.
std::string sandbox_unavailable(const sandbox_limits& limits = {});

/// The text the model sees for a run: exit status, then stdout and stderr.
std::string describe(const sandbox_run& r, const sandbox_limits& limits);

class code_interpreter : public tool {
 public:
  explicit code_interpreter(sandbox_limits limits = {});
  const model::tool_spec& definition() const override { return def_; }
  tool_result run(const boost::json::object& args, const run_context& ctx) override;
  std::chrono::milliseconds timeout() const override {
    return limits_.wall + std::chrono::seconds(5);
  }

 private:
  model::tool_spec def_;
  sandbox_limits limits_;
};

}  // namespace conclave::toolkit
