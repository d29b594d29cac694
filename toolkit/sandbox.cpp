// fork + setrlimit + (setuid) + exec bwrap; pipes read with poll until exit, timeout or
// cancel; the sandbox's process group is SIGKILLed on the way out, and bwrap's
// --die-with-parent and PID namespace take everything inside down with it.
#include "toolkit/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/fmt/fmt.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/json.hpp>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "model/tool_spec_json.h"

namespace conclave::toolkit {
namespace {

namespace fs = std::filesystem;
/// As root, each run gets its own unprivileged uid (and gid), so the process limit is per
/// sandbox: a fork bomb in one cannot starve the others. Runs of one process take uids in
/// turn from a random start (other processes, e.g. parallel tests, start elsewhere); a uid
/// comes back only after 2^20 runs, long after its sandbox is gone.
constexpr uid_t sandbox_uid_base = 200000;
constexpr uint32_t sandbox_uid_count = 1u << 20;
std::atomic<uint32_t> next_sandbox_uid{std::random_device{}()};

/// A private directory under the system temp dir, removed on destruction.
struct work_dir {
  fs::path path;
  work_dir() {
    std::random_device rd;
    for (int i = 0; i < 100 && path.empty(); ++i) {
      fs::path p = fs::temp_directory_path() /
                   fmt::format("conclave-sandbox-{:016x}", uint64_t{rd()} << 32 | rd());
      if (::mkdir(p.c_str(), 0700) == 0) path = p;
    }
    if (path.empty()) throw std::runtime_error("cannot create a sandbox working directory");
  }
  ~work_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void append_bounded(std::string& to, const char* data, size_t n, size_t cap, bool& truncated) {
  const size_t room = to.size() < cap ? cap - to.size() : 0;
  if (n > room) truncated = true;
  to.append(data, std::min(n, room));
}

/// Waits until process `pid` (not our child) has exited: gone, or a zombie.
void wait_gone(pid_t pid, std::chrono::seconds limit) {
  const auto until = clock_type::now() + limit;
  const std::string stat = fmt::format("/proc/{}/stat", pid);
  while (clock_type::now() < until) {
    std::ifstream in(stat);
    std::string line;
    if (!in || !std::getline(in, line)) return;
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] == 'Z') return;
    ::kill(pid, SIGKILL);  // normally dead already through bwrap's --die-with-parent
    ::usleep(2000);
  }
}

/// Processes of real uid `uid` now (RLIMIT_NPROC counts them all, not only ours).
rlim_t processes_of(uid_t uid) {
  rlim_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("Uid:", 0) == 0) {
        if (std::stoul(line.substr(4)) == uid) ++n;
        break;
      }
    }
  }
  return n;
}

}  // namespace

sandbox_run run_python(const std::string& code, const sandbox_limits& lim,
                       const cancel_flag* cancel) {
  sandbox_run r;
  const auto t0 = clock_type::now();
  work_dir dir;
  { std::ofstream(dir.path / "main.py") << code; }
  const bool root = ::geteuid() == 0;
  const uid_t uid = sandbox_uid_base + next_sandbox_uid.fetch_add(1) % sandbox_uid_count;
  if (root && (::chown(dir.path.c_str(), uid, uid) != 0 ||
               ::chown((dir.path / "main.py").c_str(), uid, uid) != 0)) {
    r.error = std::string("cannot hand the working directory to the sandbox user: ") +
              std::strerror(errno);
    return r;
  }
  std::vector<std::string> argv{lim.bwrap,
                                "--info-fd",
                                "3",
                                "--unshare-all",
                                "--die-with-parent",
                                "--new-session",
                                "--ro-bind",
                                "/usr",
                                "/usr",
                                "--symlink",
                                "usr/lib",
                                "/lib",
                                "--symlink",
                                "usr/lib64",
                                "/lib64",
                                "--symlink",
                                "usr/bin",
                                "/bin",
                                "--proc",
                                "/proc",
                                "--dev",
                                "/dev",
                                "--bind",
                                dir.path.string(),
                                "/work",
                                "--chdir",
                                "/work",
                                "--remount-ro",
                                "/",
                                "--clearenv",
                                "--setenv",
                                "PATH",
                                "/usr/bin",
                                "--setenv",
                                "HOME",
                                "/work",
                                "--setenv",
                                "TMPDIR",
                                "/work",
                                "--setenv",
                                "PYTHONDONTWRITEBYTECODE",
                                "1",
                                lim.python,
                                "-I",
                                "/work/main.py"};
  int out_pipe[2], err_pipe[2], info_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(info_pipe, O_CLOEXEC) != 0) {
    r.error = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  // As root the sandbox runs as a uid of its own (above); otherwise the
  // limit must leave room for the user's own processes.
  const rlim_t nproc = static_cast<rlim_t>(lim.processes) + (root ? 0 : processes_of(::getuid()));
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    r.error = std::string("fork: ") + std::strerror(errno);
    return r;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::dup2(info_pipe[1], 3);  // bwrap writes {"child-pid": N} here
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    auto limit = [](int what, rlim_t v) {
      rlimit rl{v, v};
      ::setrlimit(what, &rl);
    };
    {
      // SIGXCPU at the soft limit, SIGKILL a second later.
      rlimit rl{static_cast<rlim_t>(lim.cpu_seconds), static_cast<rlim_t>(lim.cpu_seconds) + 1};
      ::setrlimit(RLIMIT_CPU, &rl);
    }
    limit(RLIMIT_AS, static_cast<rlim_t>(lim.memory_bytes));
    limit(RLIMIT_NPROC, nproc);
    limit(RLIMIT_FSIZE, static_cast<rlim_t>(lim.file_bytes));
    limit(RLIMIT_CORE, 0);
    if (::geteuid() == 0) {
      // Process limits do not bind root: run as an unprivileged uid (bwrap then needs unprivileged
      // user namespaces, which it has on Debian).
      if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) _exit(126);
    }
    ::execv(cargv[0], cargv.data());
    _exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(info_pipe[1]);
  r.started = true;
  const auto deadline = clock_type::now() + lim.wall;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  int status = 0;
  bool exited = false;
  char buf[65536];
  while (true) {
    if (cancel && cancel->cancelled()) {
      r.cancelled = true;
      break;
    }
    if (clock_type::now() >= deadline) {
      r.timed_out = true;
      break;
    }
    if (open_fds == 0) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      ::usleep(5000);
      continue;
    }
    if (::poll(fds, 2, 20) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        if (i == 0)
          append_bounded(r.out, buf, static_cast<size_t>(n), lim.stdout_bytes, r.out_truncated);
        else
          append_bounded(r.err, buf, static_cast<size_t>(n), lim.stderr_bytes, r.err_truncated);
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  // The sandbox's PID 1 (outside pid): once it is gone or a zombie, the kernel has
  // killed and reaped everything else in its PID namespace.
  pid_t inner = 0;
  {
    std::string info;
    ::fcntl(info_pipe[0], F_SETFL, O_NONBLOCK);
    ssize_t n;
    while ((n = ::read(info_pipe[0], buf, sizeof buf)) > 0)
      info.append(buf, static_cast<size_t>(n));
    ::close(info_pipe[0]);
    if (const size_t k = info.find("\"child-pid\""); k != std::string::npos) {
      const size_t d = info.find_first_of("0123456789", k);
      if (d != std::string::npos) inner = static_cast<pid_t>(std::stol(info.substr(d)));
    }
  }
  if (!exited) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  if (inner > 0) wait_gone(inner, std::chrono::seconds(10));
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  if (exited && WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
    if (r.exit_code == 126 || r.exit_code == 127) {
      if (r.out.empty() && r.err.find("bwrap") != std::string::npos) r.started = false;
    }
    if (!r.err.empty() && r.err.rfind("bwrap:", 0) == 0) {
      r.started = false;
      r.error = r.err;
    }
    // bwrap reports a program killed by a signal as 128 + the signal.
    if (r.started && r.exit_code > 128 && r.exit_code < 128 + 65) {
      r.signal = r.exit_code - 128;
      r.exit_code = -1;
    }
  } else if (exited && WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  r.elapsed = clock_type::now() - t0;
  return r;
}

std::string sandbox_unavailable(const sandbox_limits& limits) {
  if (::access(limits.bwrap.c_str(), X_OK) != 0)
    return limits.bwrap + " is not installed (apt-get install bubblewrap)";
  if (::access(limits.python.c_str(), X_OK) != 0) return limits.python + " is not installed";
  sandbox_limits l = limits;
  l.wall = std::chrono::seconds(10);
  const auto r = run_python("print('ok')", l);
  if (r.started && r.exit_code == 0 && r.out == "ok\n") return {};
  return fmt::format("bubblewrap cannot create its namespaces here (exit {}): {}{}", r.exit_code,
                     r.error, r.err);
}

std::string describe(const sandbox_run& r, const sandbox_limits& lim) {
  std::string s;
  if (!r.started) return "error: the sandbox could not start: " + r.error;
  if (r.timed_out) {
    s = fmt::format("killed: wall-clock timeout after {} ms", lim.wall.count());
  } else if (r.cancelled) {
    s = "killed: cancelled";
  } else if (r.signal != 0) {
    s = r.signal == SIGXCPU ? fmt::format("killed: CPU time limit ({} s)", lim.cpu_seconds)
        : r.signal == SIGXFSZ
            ? fmt::format("killed: file size limit ({} bytes)", lim.file_bytes)
            : fmt::format("killed by signal {} ({})", r.signal, strsignal(r.signal));
  } else {
    s = fmt::format("exit status {}", r.exit_code);
  }
  s += "\n--- stdout ---\n" + r.out + (r.out_truncated ? "\n[stdout truncated]" : "");
  s += "\n--- stderr ---\n" + r.err + (r.err_truncated ? "\n[stderr truncated]" : "");
  return s;
}

code_interpreter::code_interpreter(sandbox_limits limits) : limits_(std::move(limits)) {
  def_.name = "code_interpreter";
  def_.description =
      "Run a Python 3 program in a sandbox (no network, only its working directory is "
      "writable); returns its exit status, stdout and stderr.";
  model::set_parameters(def_, boost::json::parse(R"({"type":"object","required":["code"],
    "properties":{"code":{"type":"string","description":"the Python 3 program"}}})")
                                  .as_object());
}

tool_result code_interpreter::run(const boost::json::object& args, const run_context& ctx) {
  const auto r = run_python(std::string(args.at("code").as_string()), limits_, ctx.cancel.get());
  if (r.cancelled) return {outcome::cancelled, "cancelled"};
  // The program's own behaviour (an error, a timeout) is its result, not a failure to
  // retry; a sandbox that could not start is.
  if (!r.started) return {outcome::retryable, describe(r, limits_)};
  return {outcome::ok, describe(r, limits_)};
}

}  // namespace conclave::toolkit
