// `conclave bench serve`: options, the server URL, the requests it sends and the run
// itself; the SSE and WebSocket clients live in serve_sse.cpp and serve_ws.cpp.
#include "bench/serve_bench.h"

#include <spdlog/fmt/fmt.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <fstream>
#include <stdexcept>

#include "bench/machine_info.h"

namespace conclave::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

// Words that are one token each (with their leading space) in Qwen3's vocabulary.
constexpr std::array<std::string_view, 32> prompt_words = {
    " the",   " of",   " and",   " to",   " in",    " is",    " that",  " for",
    " it",    " as",   " was",   " with", " be",    " by",    " on",    " not",
    " this",  " are",  " or",    " from", " at",    " which", " but",   " have",
    " model", " fast", " small", " city", " river", " green", " light", " house"};

}  // namespace

json::value get_json(const server_url& url, const std::string& target, const std::string& api_key) {
  const auto r = http_call(url, "GET", target, api_key);
  if (r.status != 200)
    throw std::runtime_error(fmt::format("GET {}: HTTP {}: {}", target, r.status, r.body));
  return json::parse(r.body);
}

double metric(const server_url& url, const std::string& api_key, const std::string& name) {
  const auto r = http_call(url, "GET", "/metrics", api_key);
  const size_t at = r.body.find("\n" + name + " ");
  if (at == std::string::npos) return 0;
  return std::stod(r.body.substr(at + name.size() + 2));
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f) throw std::runtime_error(fmt::format("cannot write {}", path));
}

std::string error_label(std::string_view error_json) {
  boost::system::error_code ec;
  const json::value v = json::parse(error_json, ec);
  const json::object* e = nullptr;
  if (!ec && v.is_object()) {
    if (const auto* inner = v.get_object().if_contains("error"); inner && inner->is_object())
      e = &inner->get_object();
  }
  if (e == nullptr) return "unknown";
  const json::value* type = e->if_contains("type");
  const json::value* code = e->if_contains("code");
  std::string out =
      type != nullptr && type->is_string() ? std::string(type->get_string()) : "unknown";
  if (code != nullptr && code->is_string()) out += " (" + std::string(code->get_string()) + ")";
  return out;
}

http_reply http_call(const server_url& url, std::string_view method, const std::string& target,
                     const std::string& api_key, const std::string& body,
                     std::chrono::seconds timeout) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  tcp::resolver resolver(io);
  const auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot resolve {}: {}", url.host, ec.message()));
  http::request<http::string_body> req{http::string_to_verb(method), url.prefix + target, 11};
  req.set(http::field::host, url.host_header());
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
  }
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  beast::error_code failure;
  const char* step = "connect to";
  stream.expires_after(timeout);
  stream.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
    if (e) return void(failure = e);
    step = "send to";
    http::async_write(stream, req, [&](beast::error_code e2, size_t) {
      if (e2) return void(failure = e2);
      step = "read from";
      http::async_read(stream, buffer, res, [&](beast::error_code e3, size_t) { failure = e3; });
    });
  });
  io.run();
  if (failure) {
    throw std::runtime_error(fmt::format("cannot {} {}: {}", step, url.text(), failure.message()));
  }
  return {static_cast<int>(res.result_int()), res.body()};
}

void add_serve_bench_options(CLI::App& cmd, serve_bench_options& opts) {
  cmd.add_option("--url", opts.url, "server address, http://host:port")->capture_default_str();
  cmd.add_option("--protocol", opts.protocol,
                 "sse: one HTTP connection per stream; ws: streams multiplexed over up to 64 "
                 "WebSocket connections")
      ->check(CLI::IsMember({"sse", "ws"}))
      ->capture_default_str();
  cmd.add_option("--clients", opts.clients, "concurrent streams")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd.add_option("--requests", opts.requests,
                 "requests in all (default: 100 unless --duration is given)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--max-tokens", opts.max_tokens,
                 "tokens generated per request (1: measures the per-request overhead)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd.add_option("--prompt-tokens", opts.prompt_tokens, "approximate prompt length in tokens")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd.add_option("--model", opts.model, "model name (default: the first of GET /v1/models)");
  cmd.add_option("--api-key", opts.api_key, "sent as 'Authorization: Bearer KEY'");
  cmd.add_option("--duration", opts.duration_s,
                 "stop starting requests after this many seconds (running ones finish)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--json", opts.json_file, "also write the results to this JSON file");
}

std::string server_url::host_header() const {
  return port == "80" ? host : host + ":" + port;
}

std::string server_url::text() const {
  return "http://" + host_header() + prefix;
}

server_url parse_server_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (url.substr(0, scheme.size()) != scheme) {
    throw std::invalid_argument(fmt::format(
        "--url {}: expected http://host:port (https is not supported)", std::string(url)));
  }
  std::string_view rest = url.substr(scheme.size());
  server_url u;
  const size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    u.prefix = std::string(rest.substr(slash));
    rest = rest.substr(0, slash);
  }
  while (!u.prefix.empty() && u.prefix.back() == '/') u.prefix.pop_back();
  if (u.prefix.size() >= 3 && u.prefix.compare(u.prefix.size() - 3, 3, "/v1") == 0) {
    u.prefix.resize(u.prefix.size() - 3);
  }
  if (!rest.empty() && rest.front() == '[') {  // [::1]:8080
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) throw std::invalid_argument("--url: unclosed '[' in host");
    u.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') throw std::invalid_argument("--url: bad port");
  } else {
    const size_t colon = rest.find(':');
    u.host = std::string(rest.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon);
  }
  if (!rest.empty()) {
    const std::string_view port = rest.substr(1);
    const bool digits = !port.empty() && port.size() <= 5 &&
                        port.find_first_not_of("0123456789") == std::string_view::npos;
    if (!digits || std::stoi(std::string(port)) > 65535 || std::stoi(std::string(port)) == 0) {
      throw std::invalid_argument(
          fmt::format("--url {}: the port must be a number from 1 to 65535", std::string(url)));
    }
    u.port = std::string(port);
  }
  if (u.host.empty()) {
    throw std::invalid_argument(fmt::format("--url {}: no host", std::string(url)));
  }
  return u;
}

std::string fetch_first_model(const server_url& url, const std::string& api_key) {
  const auto reply = http_call(url, "GET", "/v1/models", api_key);
  boost::system::error_code ec;
  const json::value v = json::parse(reply.body, ec);
  if (reply.status != 200) {
    std::string message = reply.body.substr(0, 200);
    if (!ec && v.is_object() && v.as_object().contains("error")) {
      const auto* m = v.at("error").as_object().if_contains("message");
      if (m != nullptr && m->is_string()) message = std::string(m->get_string());
    }
    throw std::runtime_error(
        fmt::format("GET {}/v1/models: HTTP {}: {}", url.text(), reply.status, message));
  }
  const json::value* data = !ec && v.is_object() ? v.as_object().if_contains("data") : nullptr;
  if (data == nullptr || !data->is_array()) {
    throw std::runtime_error(fmt::format("GET {}/v1/models: not an OpenAI model list", url.text()));
  }
  for (const auto& m : data->get_array()) {
    const json::value* id = m.is_object() ? m.get_object().if_contains("id") : nullptr;
    if (id != nullptr && id->is_string()) return std::string(id->get_string());
  }
  throw std::runtime_error(
      fmt::format("GET {}/v1/models lists no model; pass --model NAME", url.text()));
}

std::string bench_prompt(int64_t index, int32_t tokens) {
  // "#<index>" costs one token per digit plus one; the rest are one-token words.
  std::string prompt = fmt::format("#{}", index);
  const auto prefix_tokens = static_cast<int32_t>(prompt.size());
  uint64_t state = static_cast<uint64_t>(index) * 0x9e3779b97f4a7c15ull + 1;
  for (int32_t i = prefix_tokens; i < tokens; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    prompt += prompt_words[(state >> 33) % prompt_words.size()];
  }
  return prompt;
}

std::string bench_request_body(const serve_bench_options& opts, const std::string& model,
                               int64_t index, bool include_usage) {
  json::object body{{"model", model},
                    {"prompt", bench_prompt(index, opts.prompt_tokens)},
                    {"max_tokens", opts.max_tokens},
                    {"ignore_eos", true},
                    {"temperature", 0},
                    {"stream", true}};
  if (include_usage) body["stream_options"] = json::object{{"include_usage", true}};
  return json::serialize(body);
}

chunk_info inspect_chunk(const json::value& chunk) {
  chunk_info info;
  if (!chunk.is_object()) return info;
  const json::object& o = chunk.get_object();
  if (const auto* u = o.if_contains("usage"); u != nullptr && u->is_object()) {
    const auto count = [&](const char* key) -> int64_t {
      const auto* n = u->get_object().if_contains(key);
      return n != nullptr && n->is_int64() ? n->get_int64() : 0;
    };
    info.usage = true;
    info.prompt_tokens = count("prompt_tokens");
    info.completion_tokens = count("completion_tokens");
  }
  const auto* choices = o.if_contains("choices");
  if (choices == nullptr || !choices->is_array() || choices->get_array().empty()) return info;
  const json::value& c = choices->get_array()[0];
  if (!c.is_object()) return info;
  const json::value* text = c.get_object().if_contains("text");
  if (const auto* delta = c.get_object().if_contains("delta");
      delta != nullptr && delta->is_object()) {
    text = delta->get_object().if_contains("content");
  }
  info.content = text != nullptr && text->is_string() && !text->get_string().empty();
  return info;
}

int32_t ws_connections(int32_t clients) {
  return std::min(clients, 64);
}

serve_bench_result run_serve_load(const serve_bench_options& opts, const std::string& model) {
  if (opts.requests <= 0 && opts.duration_s <= 0) {
    throw std::invalid_argument("give --requests or --duration (or both)");
  }
  if (opts.clients < 1) throw std::invalid_argument("--clients must be at least 1");
  const server_url url = parse_server_url(opts.url);
  if (opts.protocol == "ws") return detail::run_ws_load(opts, model, url);
  if (opts.protocol == "sse") return detail::run_sse_load(opts, model, url);
  throw std::invalid_argument("--protocol must be sse or ws");
}

int run_serve_bench(const serve_bench_options& given, std::FILE* out) {
  serve_bench_options opts = given;
  if (opts.requests <= 0 && opts.duration_s <= 0) opts.requests = 100;
  const server_url url = parse_server_url(opts.url);
  const std::string model = opts.model.empty() ? fetch_first_model(url, opts.api_key) : opts.model;
  const serve_bench_result r = run_serve_load(opts, model);
  const std::string machine = describe_machine();
  print_serve_bench(opts, model, machine, r, out);
  if (!opts.json_file.empty())
    write_text_file(opts.json_file, serve_bench_json(opts, model, machine, r));
  return r.completed > 0 ? 0 : 1;
}

}  // namespace conclave::bench
