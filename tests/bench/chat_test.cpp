// `conclave chat` through the real binary against an in-process server: the answers it
// prints are the server's greedy answers, the second turn carries the first, Ctrl-C
// cancels only the running answer, and server errors print one line each.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/net/test_client.h"

extern char** environ;

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

/// The greedy answer (and prompt token count) the server gives for `messages`.
std::pair<std::string, int64_t> answer(uint16_t port, const json::array& messages, int max_tokens) {
  const json::object body{
      {"model", "tiny"}, {"messages", messages}, {"temperature", 0}, {"max_tokens", max_tokens}};
  const auto r = post_json(port, "/v1/chat/completions", json::serialize(body));
  REQUIRE(r.status == 200);
  const json::value v = json::parse(r.body);
  return {std::string(v.at("choices").at(0).at("message").at("content").as_string()),
          v.at("usage").at("prompt_tokens").as_int64()};
}

/// Waits (up to 30 s) for a Prometheus sample to reach `expected`, then returns it: the
/// server counts a request's tokens just after it sent the last event.
double settled_metric(test_server& s, const std::string& name, double expected) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  double v = s.metric(name);
  while (v < expected && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    v = s.metric(name);
  }
  return v;
}

json::object msg(const char* role, const std::string& content) {
  return {{"role", role}, {"content", content}};
}

/// The chat binary with a pipe on stdin and stdout; stderr goes to a file.
struct chat_process {
  chat_process(const std::vector<std::string>& args, const std::filesystem::path& err) {
    int in[2], out[2];
    REQUIRE(pipe(in) == 0);
    REQUIRE(pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<char*> argv;
    std::string bin = CONCLAVE_BINARY;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    to_child = in[1];
    from_child = out[0];
  }
  ~chat_process() {
    if (to_child >= 0) close(to_child);
    close(from_child);
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  void write_line(const std::string& line) {
    const std::string s = line + "\n";
    REQUIRE(write(to_child, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
  }
  void close_stdin() {
    close(to_child);
    to_child = -1;
  }
  /// Reads what stdout has within `ms` (all of it until EOF when ms < 0).
  std::string read(int ms) {
    std::string got;
    for (;;) {
      pollfd p{from_child, POLLIN, 0};
      if (poll(&p, 1, ms < 0 ? 120000 : ms) <= 0) return got;
      char buf[4096];
      const ssize_t n = ::read(from_child, buf, sizeof buf);
      if (n <= 0) return got;
      got.append(buf, static_cast<size_t>(n));
      if (ms >= 0) return got;
    }
  }
  int wait_exit() {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  pid_t pid = -1;
  int to_child = -1, from_child = -1;
};

}  // namespace

TEST_CASE("chat: two turns print the server's answers and carry the history", "[chat][server]") {
  test_server s;
  temp_dir dir;
  const std::string url = "http://127.0.0.1:" + std::to_string(s.port());
  {
    std::ofstream in(dir.path() / "in.txt");
    in << "Hello there\n\nTell me more\n";  // the empty line is skipped
  }
  // No --model: the chat asks GET /v1/models.
  const std::string cmd =
      fmt::format("'{}' chat --url {} --temperature 0 --max-tokens 8 < '{}' > '{}' 2> '{}'",
                  CONCLAVE_BINARY, url, (dir.path() / "in.txt").string(),
                  (dir.path() / "out.txt").string(), (dir.path() / "err.txt").string());
  REQUIRE(std::system(cmd.c_str()) == 0);
  const std::string out = read_text(dir.path() / "out.txt");
  INFO("stderr: " << read_text(dir.path() / "err.txt"));

  json::array history{msg("user", "Hello there")};
  const auto [first, first_prompt] = answer(s.port(), history, 8);
  history.push_back(msg("assistant", first));
  history.push_back(msg("user", "Tell me more"));
  const auto [second, second_prompt] = answer(s.port(), history, 8);
  CHECK_FALSE(first.empty());
  CHECK(out == first + "\n" + second + "\n");
  // The second request held the whole conversation: its prompt is the longer one.
  CHECK(second_prompt > first_prompt);
  // The chat's requests and the two above, nothing else.
  CHECK(settled_metric(s, "conclave_tokens_total{kind=\"prompt\"}",
                       2.0 * static_cast<double>(first_prompt + second_prompt)) ==
        2.0 * static_cast<double>(first_prompt + second_prompt));
}

TEST_CASE("chat: Ctrl-C cancels the answer being streamed and the chat goes on", "[chat][server]") {
  test_server s;
  temp_dir dir;
  const auto err = dir.path() / "err.txt";
  chat_process chat({"chat", "--url", "http://127.0.0.1:" + std::to_string(s.port()), "--model",
                     "tiny", "--temperature", "0", "--max-tokens", "1000"},
                    err);
  chat.write_line("Tell me a long story");
  const std::string partial = chat.read(120000);
  REQUIRE_FALSE(partial.empty());  // streaming has started
  REQUIRE(kill(chat.pid, SIGINT) == 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (read_text(err).find("[cancelled]") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(read_text(err).find("[cancelled]") != std::string::npos);

  // The cancelled exchange is dropped: the next answer is that of a fresh conversation.
  const std::string before = partial + chat.read(200);
  chat.write_line("Hi");
  chat.close_stdin();
  const std::string rest = chat.read(-1);
  CHECK(chat.wait_exit() == 0);
  const auto [hi, hi_prompt] = answer(s.port(), json::array{msg("user", "Hi")}, 1000);
  const std::string all = before + rest;
  REQUIRE(all.size() >= hi.size() + 1);
  CHECK(all.substr(all.size() - hi.size() - 1) == hi + "\n");
  // Cancelled requests count no tokens: the prompts counted are those of the chat's "Hi"
  // and of the request above.
  CHECK(settled_metric(s, "conclave_tokens_total{kind=\"prompt\"}", 2.0 * hi_prompt) ==
        2.0 * static_cast<double>(hi_prompt));
  CHECK(hi_prompt > 0);
  const std::string errors = read_text(err);
  CHECK(errors.find("[cancelled]") == errors.rfind("[cancelled]"));  // exactly once
  CHECK(errors.find("error:") == std::string::npos);
}

TEST_CASE("chat: server errors print as one line and the chat continues", "[chat][server]") {
  test_server s;
  temp_dir dir;
  {
    std::ofstream in(dir.path() / "in.txt");
    in << "first\nsecond\n";
  }
  // max_tokens beyond the context length: the server refuses every request.
  const std::string cmd = fmt::format(
      "'{}' chat --url http://127.0.0.1:{} --model tiny --max-tokens 1000000000 < '{}' > '{}' 2> "
      "'{}'",
      CONCLAVE_BINARY, s.port(), (dir.path() / "in.txt").string(),
      (dir.path() / "out.txt").string(), (dir.path() / "err.txt").string());
  REQUIRE(std::system(cmd.c_str()) == 0);
  CHECK(read_text(dir.path() / "out.txt").empty());
  std::istringstream err(read_text(dir.path() / "err.txt"));
  int error_lines = 0;
  for (std::string line; std::getline(err, line);) {
    if (line.rfind("error: ", 0) == 0) {
      ++error_lines;
      CHECK(line.find("context") != std::string::npos);
    }
  }
  CHECK(error_lines == 2);
}

TEST_CASE("chat: an unreachable server is one error line and exit code 1", "[chat]") {
  temp_dir dir;
  // A port nothing listens on: bind one, note it, close it.
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const uint16_t port = a.local_endpoint().port();
  a.close();
  const std::string cmd = fmt::format("'{}' chat --url http://127.0.0.1:{} < /dev/null 2> '{}'",
                                      CONCLAVE_BINARY, port, (dir.path() / "err.txt").string());
  const int rc = std::system(cmd.c_str());
  CHECK(WEXITSTATUS(rc) == 1);
  const std::string e = read_text(dir.path() / "err.txt");
  CHECK(e.rfind("conclave: error: cannot connect to", 0) == 0);
  CHECK(std::count(e.begin(), e.end(), '\n') == 1);
}
