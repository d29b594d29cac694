#include "bench/soak_bench.h"

#include <spdlog/fmt/fmt.h>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "bench/machine_info.h"
#include "bench/serve_bench.h"

namespace conclave::bench {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

/// What a request does, and what it must get.
enum class kind { stream, cancel, abandon, plain, refused };
constexpr const char* kind_names[] = {"stream", "cancel", "abandon", "plain", "refused"};

kind draw_kind(std::mt19937_64& rng) {
  const auto r = rng() % 100;
  if (r < 50) return kind::stream;   // streamed to its end: [DONE], no error
  if (r < 62) return kind::cancel;   // the client leaves after the first chunk
  if (r < 72) return kind::abandon;  // ... or at a random moment (its own timeout)
  if (r < 85) return kind::plain;    // not streamed: 200 with a choice
  return kind::refused;              // invalid: the right 4xx
}

struct tally {
  std::atomic<int64_t> sent[5] = {}, ok[5] = {};
  std::mutex mutex;
  std::map<std::string, int64_t> wrong;
  void bad(kind k, const std::string& what) {
    std::lock_guard lock(mutex);
    ++wrong[fmt::format("{}: {}", kind_names[static_cast<int>(k)], what)];
  }
};

/// One request on a fresh connection; true when it went as its kind must.
bool run_one(const server_url& url, const soak_bench_options& opts, const std::string& model,
             kind k, std::mt19937_64& rng, std::string& why) {
  json::object body{
      {"model", model},
      {"prompt", bench_prompt(static_cast<int64_t>(rng() % 100000), 24)},
      {"max_tokens", 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(opts.max_tokens))},
      {"ignore_eos", true},
      {"stream", k != kind::plain}};
  std::string text = json::serialize(body);
  int want_status = 200;
  if (k == kind::refused) {
    switch (rng() % 4) {
      case 0:
        body["temperature"] = -1;
        text = json::serialize(body);
        want_status = 400;
        break;
      case 1:
        body["max_tokens"] = 100000000;
        text = json::serialize(body);
        want_status = 400;
        break;
      case 2:
        body["model"] = "no-such-model";
        text = json::serialize(body);
        want_status = 404;
        break;
      default:
        text = R"({"model": )";
        want_status = 400;
    }
  }
  asio::io_context io;
  tcp::socket sock(io);
  tcp::resolver resolver(io);
  asio::connect(sock, resolver.resolve(url.host, url.port));
  http::request<http::string_body> req{http::verb::post, url.prefix + "/v1/completions", 11};
  req.set(http::field::host, url.host_header());
  req.set(http::field::content_type, "application/json");
  if (!opts.api_key.empty()) req.set(http::field::authorization, "Bearer " + opts.api_key);
  req.body() = text;
  req.prepare_payload();
  http::write(sock, req);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  http::read_header(sock, buf, parser);
  const int status = static_cast<int>(parser.get().result_int());
  if (status != want_status) {
    why = fmt::format("HTTP {} (wanted {})", status, want_status);
    return false;
  }
  if (k == kind::cancel || k == kind::abandon) {
    const auto leave = clock_type::now() + std::chrono::milliseconds(rng() % 400);
    beast::error_code ec;
    while (!parser.is_done()) {
      http::read_some(sock, buf, parser, ec);
      if (ec) break;
      if (k == kind::cancel && parser.get().body().find("data: ") != std::string::npos) break;
      if (k == kind::abandon && clock_type::now() >= leave) break;
    }
    sock.close(ec);  // the client is gone; the server must let go of the request
    return true;
  }
  http::read(sock, buf, parser);
  const std::string& b = parser.get().body();
  if (k == kind::refused) return true;
  if (k == kind::plain) {
    if (b.find("\"choices\"") == std::string::npos) why = "no choices";
  } else if (b.find("\"error\"") != std::string::npos) {
    why = "error event";
  } else if (b.find("data: [DONE]") == std::string::npos) {
    why = "no [DONE]";
  }
  return why.empty();
}

double resident_bytes(const server_url& url, const std::string& key) {
  return metric(url, key, "process_resident_memory_bytes");
}

/// Least-squares slope of y over x.
double slope(const std::vector<std::pair<double, double>>& pts) {
  if (pts.size() < 2) return 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [x, y] : pts) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double n = static_cast<double>(pts.size());
  const double d = n * sxx - sx * sx;
  return d == 0 ? 0 : (n * sxy - sx * sy) / d;
}

}  // namespace

void add_soak_bench_options(CLI::App& cmd, soak_bench_options& opts) {
  cmd.add_option("--url", opts.url, "server address")->capture_default_str();
  cmd.add_option("--requests", opts.requests, "requests in all")->capture_default_str();
  cmd.add_option("--clients", opts.clients, "concurrent clients")->capture_default_str();
  cmd.add_option("--max-tokens", opts.max_tokens, "longest max_tokens a request draws")
      ->capture_default_str();
  cmd.add_option("--seed", opts.seed, "request mix seed")->capture_default_str();
  cmd.add_option("--api-key", opts.api_key, "sent as 'Authorization: Bearer KEY'");
  cmd.add_option("--json", opts.json_file, "also write the results to this JSON file");
}

int run_soak_bench(const soak_bench_options& opts, std::FILE* out) {
  const server_url url = parse_server_url(opts.url);
  const std::string model = fetch_first_model(url, opts.api_key);
  tally t;
  std::atomic<int64_t> next{0}, finished{0};
  std::atomic<bool> done{false};
  std::vector<std::pair<double, double>> rss;  // (requests finished, bytes)
  std::thread sampler([&] {
    while (!done.load()) {
      try {
        rss.emplace_back(static_cast<double>(finished.load()), resident_bytes(url, opts.api_key));
      } catch (const std::exception&) {
      }
      for (int i = 0; i < 10 && !done.load(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  const auto t0 = clock_type::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < opts.clients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(opts.seed * 1000003 + static_cast<uint64_t>(c));
      while (next.fetch_add(1) < opts.requests) {
        const kind k = draw_kind(rng);
        ++t.sent[static_cast<int>(k)];
        std::string why;
        try {
          if (run_one(url, opts, model, k, rng, why)) {
            ++t.ok[static_cast<int>(k)];
          } else {
            t.bad(k, why);
          }
        } catch (const std::exception& e) {
          t.bad(k, e.what());
        }
        ++finished;
      }
    });
  }
  for (auto& c : clients) c.join();
  const double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  done.store(true);
  sampler.join();

  // The server must come back to rest: nothing running, every block free.
  int64_t running = -1, used = -1;
  const auto deadline = clock_type::now() + std::chrono::seconds(30);
  for (;;) {
    running = 0;
    used = 0;
    const json::value c = get_json(url, "/admin/cluster", opts.api_key);
    for (const auto& r : c.at("replicas").as_array()) {
      running += r.at("running").as_int64() + r.at("waiting").as_int64();
      used += r.at("kv_blocks_total").as_int64() - r.at("kv_blocks_free").as_int64();
    }
    if ((running == 0 && used == 0) || clock_type::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double rss_end = resident_bytes(url, opts.api_key);
  std::vector<std::pair<double, double>> second_half;
  for (const auto& p : rss) {
    if (p.first >= static_cast<double>(opts.requests) / 2) second_half.push_back(p);
  }
  const double mib = 1024.0 * 1024.0;
  const double per_1000 = slope(second_half) * 1000.0 / mib;
  const double first_rss = rss.empty() ? 0 : rss.front().second / mib;

  int64_t wrong = 0;
  for (const auto& [what, n] : t.wrong) wrong += n;
  std::string text = "conclave bench soak\n";
  text += fmt::format("  machine:        {}\n", describe_machine());
  text += fmt::format("  target:         {} (model \"{}\")\n", url.text(), model);
  text += fmt::format("  requests:       {} by {} clients in {:.1f} s ({:.1f}/s)\n", opts.requests,
                      opts.clients, seconds, static_cast<double>(opts.requests) / seconds);
  for (int k = 0; k < 5; ++k) {
    text += fmt::format("    {:8} {:6} sent, {:6} as expected\n", kind_names[k], t.sent[k].load(),
                        t.ok[k].load());
  }
  for (const auto& [what, n] : t.wrong) text += fmt::format("  wrong:          {} x {}\n", n, what);
  text += fmt::format("  after:          {} sequences running or waiting, {} KV blocks in use\n",
                      running, used);
  text += fmt::format(
      "  resident:       {:.1f} MiB at the first sample, {:.1f} MiB at the end; slope over the "
      "second half {:+.2f} MiB per 1,000 requests ({} samples)\n",
      first_rss, rss_end / mib, per_1000, second_half.size());
  std::fputs(text.c_str(), out);
  std::fflush(out);
  if (!opts.json_file.empty()) {
    json::object o{{"machine", describe_machine()},
                   {"requests", opts.requests},
                   {"seconds", seconds},
                   {"wrong", wrong},
                   {"running_after", running},
                   {"kv_blocks_used_after", used},
                   {"rss_first_mib", first_rss},
                   {"rss_end_mib", rss_end / mib},
                   {"rss_slope_mib_per_1000", per_1000}};
    for (int k = 0; k < 5; ++k) {
      o[std::string(kind_names[k]) + "_sent"] = t.sent[k].load();
      o[std::string(kind_names[k]) + "_ok"] = t.ok[k].load();
    }
    write_text_file(opts.json_file, json::serialize(o) + "\n");
  }
  return wrong == 0 && running == 0 && used == 0 ? 0 : 1;
}

}  // namespace conclave::bench
