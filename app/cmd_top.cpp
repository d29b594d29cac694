// `conclave top`: a running server's dashboard feed in the terminal (bench/top_view.h).
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>

#include "app/commands.h"
#include "bench/top_view.h"

namespace conclave::app {
namespace {

struct top_args {
  std::string url = "http://127.0.0.1:8080";
  std::string api_key;
  int frames = 0;  ///< 0: until interrupted
};

int run_top(const top_args& a) {
  const auto url = bench::parse_server_url(a.url);
  std::string key = a.api_key;
  if (key.empty())
    if (const char* env = std::getenv("CONCLAVE_API_KEY")) key = env;
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  int shown = 0;
  bench::follow_feed(url, key, [&](const boost::json::object& frame) {
    const std::string text = bench::render_top(frame, tty ? 140 : 200);
    // A terminal gets the screen redrawn in place; a pipe gets frames one after another.
    std::fputs(tty ? ("\x1b[H\x1b[2J" + text).c_str() : (text + "\n").c_str(), stdout);
    std::fflush(stdout);
    return a.frames == 0 || ++shown < a.frames;
  });
  return exit_ok;
}

}  // namespace

command add_top(CLI::App& app) {
  auto args = std::make_shared<top_args>();
  auto* cmd = app.add_subcommand(
      "top", "a running server's replicas, throughput, latencies, GPUs and alerts, live");
  cmd->add_option("--url", args->url, "server address, http://host:port")->capture_default_str();
  cmd->add_option("--api-key", args->api_key,
                  "sent as 'Authorization: Bearer KEY' (default: $CONCLAVE_API_KEY)");
  cmd->add_option("--frames", args->frames, "stop after this many frames (default: never)")
      ->check(CLI::NonNegativeNumber);
  return {cmd, [args] { return run_top(*args); }};
}

}  // namespace conclave::app
