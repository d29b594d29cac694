// `conclave node` against a door in this process: the real binary's exit codes and its
// one line on stderr (docs/cluster.md §4).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include "tests/fixture.h"

#include "net/cluster_door.h"
#include "tests/net/closing_listener.h"

using namespace conclave;
namespace fs = std::filesystem;

namespace {

const std::string node_token = "node-command-test-token-0123456789abcdef";

struct node_run {
  int exit_code = -1;
  std::vector<std::string> err_lines;
  double seconds = 0;
};

struct sandbox {
  fs::path dir = fs::temp_directory_path() / ("conclave_node_cmd_" + std::to_string(::getpid()));
  sandbox() { fs::create_directories(dir); }
  ~sandbox() { fs::remove_all(dir); }
  fs::path token_file(const std::string& name, const std::string& k) const {
    const auto p = dir / name;
    std::ofstream(p) << k << "\n";
    ::chmod(p.c_str(), 0600);
    return p;
  }
  node_run node(const std::string& args) const {
    const auto err = dir / "err";
    const std::string cmd = std::string("'") + CONCLAVE_BINARY + "' node " + args +
                            " >/dev/null 2>'" + err.string() + "'";
    const auto t0 = std::chrono::steady_clock::now();
    const int status = std::system(cmd.c_str());
    node_run r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(err);
    for (std::string line; std::getline(in, line);) r.err_lines.push_back(line);
    return r;
  }
};

std::string tiny_model() {
  return (test::data_dir() / "tiny_moe").string();
}

std::string joined(const std::vector<std::string>& lines) {
  std::ostringstream s;
  for (const auto& l : lines) s << l << "\n";
  return s.str();
}

}  // namespace

TEST_CASE("conclave node: a wrong token exits 2 with exactly one line", "[cluster][cli]") {
  const sandbox box;
  net::closing_listener gate;
  gate.start();
  net::cluster_door_options o;
  o.host = "127.0.0.1";
  o.inner_port = gate.port();
  o.token = node_token;
  net::cluster_door door(o);
  door.start();
  const std::string where = "127.0.0.1:" + std::to_string(door.port());

  const auto wrong = box.node("--join " + where + " --cluster-token-file " +
                              box.token_file("wrong", std::string(40, 'w')).string() +
                              " --cpu-ranks 1 --model " + tiny_model());
  INFO(joined(wrong.err_lines));
  CHECK(wrong.exit_code == 2);
  REQUIRE(wrong.err_lines.size() == 1);
  // A node logs JSON lines (docs/observability.md).
  const auto line = boost::json::parse(wrong.err_lines[0]).as_object();
  CHECK(line.at("level") == "error");
  CHECK(line.at("message").as_string() == "node: refused by " + where + ": bad cluster token");
  CHECK(door.refused_counts().at("bad token") == 1);

  // The right token gets in; behind this door is no coordinator (a port that closes every
  // connection), so the node keeps trying to join until its --rejoin-timeout.
  const auto right = box.node("--join " + where + " --cluster-token-file " +
                              box.token_file("right", node_token).string() +
                              " --cpu-ranks 1 --model " + tiny_model() + " --rejoin-timeout 2");
  INFO(joined(right.err_lines));
  CHECK(right.exit_code == 1);
  CHECK_THAT(joined(right.err_lines),
             Catch::Contains("accepted the cluster token") && Catch::Contains("gave up after 2 s"));
  CHECK(door.joined() >= 1);
}

TEST_CASE("conclave node: bad flags and token files exit 2 with one line", "[cluster][cli]") {
  const sandbox box;
  const auto good = box.token_file("good", node_token).string();
  const auto group = box.token_file("group", node_token);
  ::chmod(group.c_str(), 0644);
  const auto bad = [&](const std::string& args, const std::string& says) {
    const auto r = box.node(args);
    INFO(args << "\n" << joined(r.err_lines));
    CHECK(r.exit_code == 2);
    CHECK(r.err_lines.size() == 1);
    CHECK_THAT(joined(r.err_lines), Catch::Contains(says));
  };
  bad("--cluster-token-file " + good, "--join is required");
  bad("--join 127.0.0.1:1", "--cluster-token-file is required");
  bad("--join 127.0.0.1 --cluster-token-file " + good, "expected HOST:PORT");
  bad("--join 127.0.0.1:70000 --cluster-token-file " + good, "expected HOST:PORT");
  bad("--join 127.0.0.1:1 --cluster-token-file " + group.string(), "readable by group or others");
  bad("--join 127.0.0.1:1 --cluster-token-file " + box.token_file("short", "abc").string(),
      "at least 32 are needed");
  bad("--join 127.0.0.1:1 --cluster-token-file " + (box.dir / "none").string(), "No such file");
  bad("--join 127.0.0.1:1 --cluster-token-file " + good + " --cpu-ranks -1", "--cpu-ranks");
  bad("--join 127.0.0.1:1 --cluster-token-file " + good + " --gpus 0,x", "--gpus");
  bad("--join 127.0.0.1:1 --cluster-token-file " + good + " --gpus 1023",
      "--gpus 1023: no such GPU");
  bad("--join 127.0.0.1:1 --cluster-token-file " + good + " --gpus 1023,1023",
      "GPU 1023 is listed twice");
  bad("--join 127.0.0.1:1 --cluster-token-file " + good, "offers no ranks");
  bad("--join 127.0.0.1:1 --cluster-token-file " + good + " --model " + (box.dir / "no").string(),
      "not a directory");
  bad("--join 127.0.0.1:1 --cluster-token-file " + good + " --tls-certificate " + good,
      "TLS needs all of --tls-certificate, --tls-key and --tls-cafile");
  bad("--join 127.0.0.1:1 --cluster-token-file " + good + " --tls-certificate " + good +
          " --tls-key " + good + " --tls-cafile " + (box.dir / "no.pem").string(),
      "--tls-cafile " + (box.dir / "no.pem").string() + ": no such file");
}

TEST_CASE("conclave node: an unreachable door is retried until --rejoin-timeout, then exit 1",
          "[cluster][cli]") {
  const sandbox box;
  // A port nothing listens on: bind one, note it, close it.
  uint16_t port = 0;
  {
    net::closing_listener g;
    g.start();
    port = g.port();
  }
  const auto r = box.node("--join 127.0.0.1:" + std::to_string(port) + " --cluster-token-file " +
                          box.token_file("t", node_token).string() + " --cpu-ranks 1 --model " +
                          tiny_model() + " --rejoin-timeout 2");
  INFO(joined(r.err_lines));
  CHECK(r.exit_code == 1);
  CHECK(r.seconds >= 1.5);
  CHECK(r.seconds < 20);
  REQUIRE(!r.err_lines.empty());
  CHECK_THAT(r.err_lines.back(),
             Catch::Contains("cannot join 127.0.0.1:") && Catch::Contains("gave up after 2 s"));
  CHECK_THAT(joined(r.err_lines), Catch::Contains("retrying in 1 s"));
}
