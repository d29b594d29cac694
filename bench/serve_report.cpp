// The output of `conclave bench serve`: a text report for people and the same numbers
// as JSON for scripts (times in milliseconds in both).
#include <spdlog/fmt/fmt.h>

#include <boost/json.hpp>

#include "bench/serve_bench.h"

namespace conclave::bench {
namespace {

namespace json = boost::json;

std::string settings_line(const serve_bench_options& o) {
  std::string limit;
  if (o.requests > 0) limit = fmt::format("{} requests", o.requests);
  if (o.duration_s > 0) {
    limit += fmt::format("{}{:g} s", limit.empty() ? "" : " or ", o.duration_s);
  }
  return fmt::format(
      "{} streams, {}, prompt ~{} tokens, max_tokens {} (ignore_eos, temperature 0, "
      "/v1/completions)",
      o.clients, limit, o.prompt_tokens, o.max_tokens);
}

std::string transport(const serve_bench_options& o) {
  if (o.protocol == "ws") {
    return fmt::format("WebSocket /v1/ws, {} connections", ws_connections(o.clients));
  }
  return fmt::format("HTTP/SSE, {} connections", o.clients);
}

std::string latency_line(const char* name, const sample_stats& s) {
  if (s.empty()) return fmt::format("  {:<16}n/a (no samples)\n", name);
  return fmt::format("  {:<16}p50 {:9.2f} ms   p99 {:9.2f} ms   mean {:9.2f} ms   ({} samples)\n",
                     name, s.percentile(50) * 1e3, s.percentile(99) * 1e3, s.mean() * 1e3,
                     s.count());
}

json::value latency_json(const sample_stats& s) {
  if (s.empty()) return nullptr;
  return json::object{{"p50", s.percentile(50) * 1e3}, {"p99", s.percentile(99) * 1e3},
                      {"mean", s.mean() * 1e3},        {"min", s.min() * 1e3},
                      {"max", s.max() * 1e3},          {"samples", s.count()}};
}

}  // namespace

void print_serve_bench(const serve_bench_options& opts, const std::string& model,
                       const std::string& machine, const serve_bench_result& r, std::FILE* out) {
  std::string text = "conclave bench serve\n";
  text += fmt::format("  machine:        {}\n", machine);
  text += fmt::format("  target:         {} (model \"{}\", {})\n",
                      parse_server_url(opts.url).text(), model, transport(opts));
  text += fmt::format("  settings:       {}\n", settings_line(opts));
  text += fmt::format("  completed:      {} requests in {:.2f} s, {} errors\n", r.completed,
                      r.wall_s, r.error_count());
  text += fmt::format("  requests/s:     {:.2f}\n", r.requests_per_s());
  text += fmt::format("  output tok/s:   {:.1f} ({} tokens in {} content chunks)\n",
                      r.output_tokens_per_s(), r.output_tokens, r.content_chunks);
  if (r.completed > 0) {
    text += fmt::format("  prompt tokens:  {:.1f} per request (server's count)\n",
                        static_cast<double>(r.prompt_tokens) / static_cast<double>(r.completed));
  }
  text += latency_line("TTFT", r.ttft);
  text += latency_line("TPOT", r.tpot);
  text += latency_line("gap", r.gap);
  text += latency_line("e2e", r.e2e);
  if (!r.overhead.empty()) text += latency_line("e2e - engine", r.overhead);
  if (r.errors.empty()) {
    text += "  errors:         none\n";
  } else {
    for (const auto& [kind, n] : r.errors)
      text += fmt::format("  error:          {} x {}\n", n, kind);
  }
  std::fputs(text.c_str(), out);
  std::fflush(out);
}

std::string serve_bench_json(const serve_bench_options& opts, const std::string& model,
                             const std::string& machine, const serve_bench_result& r) {
  json::object errors;
  for (const auto& [kind, n] : r.errors) errors[kind] = n;
  json::object settings{
      {"protocol", opts.protocol},
      {"clients", opts.clients},
      {"connections", opts.protocol == "ws" ? ws_connections(opts.clients) : opts.clients},
      {"requests", opts.requests},
      {"duration_s", opts.duration_s},
      {"max_tokens", opts.max_tokens},
      {"prompt_tokens", opts.prompt_tokens}};
  json::object o{{"machine", machine},
                 {"target", parse_server_url(opts.url).text()},
                 {"model", model},
                 {"settings", std::move(settings)},
                 {"wall_s", r.wall_s},
                 {"completed", r.completed},
                 {"error_count", r.error_count()},
                 {"errors", std::move(errors)},
                 {"requests_per_s", r.requests_per_s()},
                 {"output_tokens", r.output_tokens},
                 {"output_tokens_per_s", r.output_tokens_per_s()},
                 {"prompt_tokens", r.prompt_tokens},
                 {"content_chunks", r.content_chunks},
                 {"ttft_ms", latency_json(r.ttft)},
                 {"tpot_ms", latency_json(r.tpot)},
                 {"gap_ms", latency_json(r.gap)},
                 {"e2e_ms", latency_json(r.e2e)},
                 {"overhead_ms", latency_json(r.overhead)}};
  return json::serialize(o) + "\n";
}

}  // namespace conclave::bench
