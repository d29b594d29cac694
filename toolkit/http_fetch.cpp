// Beast client, driven by an io_context polled in short slices so that a cancel flag is
// seen within ~20 ms; the tcp_stream's expiry enforces the deadline.
#include "toolkit/http_fetch.h"

#include <spdlog/fmt/fmt.h>
#include <boost/asio.hpp>
#include <boost/beast.hpp>

namespace conclave::toolkit {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

}  // namespace

std::optional<url_parts> parse_http_url(const std::string& url, std::string& error) {
  constexpr std::string_view scheme = "http://";
  if (url.rfind(scheme, 0) != 0) {
    error = url.rfind("https://", 0) == 0 ? "https is not supported (no TLS in this build)"
                                          : "the URL must start with http://";
    return std::nullopt;
  }
  url_parts p;
  const std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) p.target = rest.substr(slash);
  if (const size_t at = authority.find('@'); at != std::string::npos) {
    error = "credentials in URLs are not supported";
    return std::nullopt;
  }
  if (const size_t colon = authority.rfind(':'); colon != std::string::npos) {
    p.port = authority.substr(colon + 1);
    authority.resize(colon);
    if (p.port.empty() || p.port.find_first_not_of("0123456789") != std::string::npos) {
      error = "bad port in URL";
      return std::nullopt;
    }
  }
  if (authority.empty()) {
    error = "the URL has no host";
    return std::nullopt;
  }
  p.host = authority;
  return p;
}

http_response http_request(const std::string& method, const std::string& url,
                           const std::string& body, const std::string& content_type,
                           size_t max_bytes, const run_context& ctx) {
  http_response out;
  std::string err;
  const auto parts = parse_http_url(url, err);
  if (!parts) {
    out.error = err;
    return out;
  }
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::flat_buffer buffer;
  http::request<http::string_body> req{http::string_to_verb(method), parts->target, 11};
  req.set(http::field::host, parts->host);
  req.set(http::field::user_agent, "conclave-tools");
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  req.body() = body;
  req.prepare_payload();
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_bytes);
  beast::error_code result;
  bool finished = false;
  auto fail = [&](beast::error_code ec) {
    result = ec;
    finished = true;
  };
  stream.expires_at(ctx.deadline);
  resolver.async_resolve(
      parts->host, parts->port, [&](beast::error_code ec, tcp::resolver::results_type r) {
        if (ec) return fail(ec);
        stream.async_connect(r, [&](beast::error_code ec2, const tcp::endpoint&) {
          if (ec2) return fail(ec2);
          http::async_write(stream, req, [&](beast::error_code ec3, size_t) {
            if (ec3) return fail(ec3);
            http::async_read(stream, buffer, parser,
                             [&](beast::error_code ec4, size_t) { fail(ec4); });
          });
        });
      });
  while (!finished) {
    if (ctx.cancelled()) {
      out.cancelled = true;
      resolver.cancel();
      beast::error_code ignore;
      stream.socket().close(ignore);
      io.run_for(std::chrono::milliseconds(50));
      out.error = "cancelled";
      return out;
    }
    io.run_for(std::chrono::milliseconds(20));
    if (io.stopped()) io.restart();
    if (!finished && clock_type::now() > ctx.deadline + std::chrono::seconds(1)) {
      // The resolver is not covered by the stream's expiry.
      out.timed_out = true;
      out.error = "timed out";
      return out;
    }
  }
  if (result == beast::error::timeout || (result && clock_type::now() >= ctx.deadline)) {
    out.timed_out = true;
    out.error = "timed out";
    return out;
  }
  if (result == http::error::body_limit) {
    out.error = fmt::format("the response is larger than {} bytes", max_bytes);
    return out;
  }
  if (result) {
    out.error = result.message();
    return out;
  }
  const auto& res = parser.get();
  out.status = static_cast<int>(res.result_int());
  out.body = res.body();
  if (auto it = res.find(http::field::location); it != res.end())
    out.location = std::string(it->value());
  if (auto it = res.find(http::field::content_type); it != res.end())
    out.content_type = std::string(it->value());
  return out;
}

}  // namespace conclave::toolkit
