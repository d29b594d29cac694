// `conclave top` (see the header).
#include "bench/top_view.h"

#include <spdlog/fmt/fmt.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <stdexcept>

namespace conclave::bench {
namespace json = boost::json;
namespace {

double num(const json::value* v, double fallback = 0) {
  if (v == nullptr || v->is_null()) return fallback;
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  return fallback;
}

const json::value* at(const json::object& o, std::string_view path) {
  const json::object* cur = &o;
  const json::value* v = nullptr;
  while (!path.empty()) {
    const auto dot = path.find('.');
    const auto key = path.substr(0, dot);
    v = cur->if_contains(key);
    if (v == nullptr) return nullptr;
    if (dot == std::string_view::npos) break;
    if (!v->is_object()) return nullptr;
    cur = &v->as_object();
    path.remove_prefix(dot + 1);
  }
  return v;
}

std::string str(const json::value* v) {
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::string ms(const json::value* v) {
  if (v == nullptr || v->is_null()) return "-";
  return fmt::format("{:.0f}", num(v) * 1000);
}

std::string gib(double bytes) {
  return fmt::format("{:.1f}", bytes / (1024.0 * 1024.0 * 1024.0));
}

std::string bar(double fraction, int width) {
  const int n = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * width + 0.5);
  return "[" + std::string(static_cast<size_t>(n), '#') +
         std::string(static_cast<size_t>(width - n), '.') + "]";
}

}  // namespace

std::string render_top(const json::object& f, int width) {
  std::string out;
  auto line = [&](std::string s) {
    if (static_cast<int>(s.size()) > width) s.resize(static_cast<size_t>(width));
    out += s + "\n";
  };
  const double up = num(at(f, "uptime_s"));
  line(fmt::format("conclave {}  up {:.0f} s{}", str(at(f, "server.version")), up,
                   at(f, "server.draining") && at(f, "server.draining")->is_bool() &&
                           at(f, "server.draining")->as_bool()
                       ? "  DRAINING"
                       : ""));
  line(
      fmt::format("requests {:.1f}/s  errors {:.2f}/s  active {:.0f}  queued {:.0f}  "
                  "tokens {:.1f}/s out, {:.1f}/s in",
                  num(at(f, "requests.per_s")), num(at(f, "requests.errors_per_s")),
                  num(at(f, "requests.active")), num(at(f, "requests.queued")),
                  num(at(f, "tokens.completion_per_s")), num(at(f, "tokens.prompt_per_s"))));
  line(fmt::format("TTFT ms p50 {} p90 {} p99 {}   TPOT ms p50 {} p99 {}   (last {:.0f} s)",
                   ms(at(f, "latency.ttft.p50")), ms(at(f, "latency.ttft.p90")),
                   ms(at(f, "latency.ttft.p99")), ms(at(f, "latency.tpot.p50")),
                   ms(at(f, "latency.tpot.p99")), num(at(f, "window_s"))));
  const double kv = num(at(f, "kv.fraction"));
  line(
      fmt::format("KV {} {:.1f} %  ({:.0f}/{:.0f} blocks)  sequences {:.0f} running, {:.0f} "
                  "waiting  RSS {} GiB",
                  bar(kv, 20), kv * 100, num(at(f, "kv.used_blocks")),
                  num(at(f, "kv.total_blocks")), num(at(f, "queue.running")),
                  num(at(f, "queue.waiting")), gib(num(at(f, "process.resident_bytes")))));
  line(fmt::format("tools {:.2f} calls/s, {:.2f} failures/s ({:.0f} calls, {:.0f} failed)",
                   num(at(f, "tools.calls_per_s")), num(at(f, "tools.failures_per_s")),
                   num(at(f, "tools.calls_total")), num(at(f, "tools.failures_total"))));
  line("");
  line(fmt::format("{:<24} {:>3} {:<11} {:>7} {:>7} {:>7} {:>12} {:>8}", "MODEL", "ID", "STATE",
                   "HEALTHY", "RUNNING", "WAITING", "KV USED", "RESTARTS"));
  if (const auto* rs = at(f, "replicas"); rs && rs->is_array())
    for (const auto& rv : rs->as_array()) {
      if (!rv.is_object()) continue;
      const auto& r = rv.as_object();
      line(fmt::format(
          "{:<24} {:>3.0f} {:<11} {:>7} {:>7.0f} {:>7.0f} {:>12} {:>8.0f}",
          str(r.if_contains("model")), num(r.if_contains("id")), str(r.if_contains("state")),
          r.if_contains("healthy") && r.at("healthy").is_bool() && r.at("healthy").as_bool() ? "yes"
                                                                                             : "no",
          num(r.if_contains("running")), num(r.if_contains("waiting")),
          fmt::format("{:.0f}/{:.0f}", num(r.if_contains("kv_used")),
                      num(r.if_contains("kv_total"))),
          num(r.if_contains("restarts"))));
    }
  if (const auto* gs = at(f, "gpus"); gs && gs->is_array() && !gs->as_array().empty()) {
    line("");
    line(fmt::format("{:<4} {:<28} {:>6} {:>17} {:>6} {:>8} {:>5}", "GPU", "NAME", "UTIL",
                     "MEMORY GiB", "TEMP", "POWER W", "ECC"));
    for (const auto& gv : gs->as_array()) {
      if (!gv.is_object()) continue;
      const auto& g = gv.as_object();
      line(fmt::format("{:<4.0f} {:<28} {:>5.0f}% {:>17} {:>6} {:>8} {:>5}",
                       num(g.if_contains("index")), str(g.if_contains("name")),
                       num(g.if_contains("utilization")) * 100,
                       gib(num(g.if_contains("memory_used_bytes"))) + "/" +
                           gib(num(g.if_contains("memory_total_bytes"))),
                       fmt::format("{:.0f}C", num(g.if_contains("temperature_c"))),
                       fmt::format("{:.0f}", num(g.if_contains("power_w"))),
                       fmt::format("{:.0f}", num(g.if_contains("ecc_uncorrected")))));
    }
  }
  if (const auto* as = at(f, "alerts"); as && as->is_array() && !as->as_array().empty()) {
    line("");
    line("ALERTS");
    for (const auto& av : as->as_array()) {
      if (!av.is_object()) continue;
      const auto& a = av.as_object();
      line(fmt::format("  {:<8} {:<8} {:<26} {}", str(a.if_contains("state")),
                       str(a.if_contains("severity")), str(a.if_contains("name")),
                       str(a.if_contains("summary"))));
    }
  }
  if (const auto* es = at(f, "events"); es && es->is_array() && !es->as_array().empty()) {
    line("");
    line("RECENT EVENTS");
    const auto& list = es->as_array();
    const size_t from = list.size() > 8 ? list.size() - 8 : 0;
    for (size_t i = list.size(); i-- > from;) {
      if (!list[i].is_object()) continue;
      const auto& e = list[i].as_object();
      const double age = (num(at(f, "time_ms")) - num(e.if_contains("time_ms"))) / 1000.0;
      line(fmt::format("  {:>6.0f} s ago  {:<10} {}", age, str(e.if_contains("kind")),
                       str(e.if_contains("text"))));
    }
  }
  return out;
}

void sse_parser::feed(std::string_view bytes) {
  pending_.append(bytes);
  size_t start = 0;
  for (;;) {
    const size_t nl = pending_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view l(pending_.data() + start, nl - start);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    line(l);
    start = nl + 1;
  }
  pending_.erase(0, start);
}

void sse_parser::line(std::string_view l) {
  if (l.empty()) {  // the end of an event
    if (!data_.empty() || !event_.empty()) on_event_(event_.empty() ? "message" : event_, data_);
    event_.clear();
    data_.clear();
    return;
  }
  if (l.front() == ':') return;  // a comment
  const auto colon = l.find(':');
  const std::string_view field = l.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : l.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "event") event_ = value;
  if (field == "data") {
    if (!data_.empty()) data_ += '\n';
    data_ += value;
  }
}

void follow_feed(const server_url& url, const std::string& api_key,
                 const std::function<bool(const json::object&)>& on_frame) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace http = beast::http;
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::error_code ec;
  const auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (!ec) stream.connect(endpoints, ec);
  if (ec) throw std::runtime_error("cannot connect to " + url.text() + ": " + ec.message());
  http::request<http::empty_body> req{http::verb::get, url.prefix + "/dashboard/feed", 11};
  req.set(http::field::host, url.host_header());
  req.set(http::field::accept, "text/event-stream");
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  http::write(stream, req, ec);
  if (ec) throw std::runtime_error("cannot send to " + url.text() + ": " + ec.message());

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  http::read_header(stream, buffer, parser, ec);
  if (ec) throw std::runtime_error("no answer from " + url.text() + ": " + ec.message());
  if (parser.get().result_int() != 200)
    throw std::runtime_error(
        fmt::format("{}/dashboard/feed answered HTTP {}", url.text(), parser.get().result_int()));
  bool more = true;
  sse_parser sse([&](const std::string& event, const std::string& data) {
    if (!more) return;
    boost::system::error_code jec;
    auto v = json::parse(data, jec);
    if (jec || !v.is_object()) return;
    if (event == "history") {
      const auto* frames = v.as_object().if_contains("frames");
      if (frames && frames->is_array() && !frames->as_array().empty() &&
          frames->as_array().back().is_object())
        more = on_frame(frames->as_array().back().as_object());
    } else if (event == "frame") {
      more = on_frame(v.as_object());
    }
  });
  char chunk[16384];
  while (more && !parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    http::read_some(stream, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) break;
    sse.feed(std::string_view(chunk, sizeof chunk - parser.get().body().size));
  }
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
}

}  // namespace conclave::bench
