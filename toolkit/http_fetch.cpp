// Beast client, driven by an io_context polled in short slices so that a cancel flag is
// seen within ~20 ms; the tcp_stream's expiry enforces the deadline.
#include "toolkit/http_fetch.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/fmt/fmt.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>

namespace conclave::toolkit {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

}  // namespace

std::optional<url_parts> parse_http_url(const std::string& url, std::string& error) {
  url_parts p;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    p.tls = true;
    p.port = "443";
  } else {
    error = "the URL must start with http:// or https://";
    return std::nullopt;
  }
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
  // Plain or TLS: the same exchange once connected (and, for TLS, shaken hands).
  std::optional<beast::tcp_stream> plain;
  std::optional<ssl::context> tls_ctx;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  auto exchange = [&](auto& stream) {
    http::async_write(stream, req, [&](beast::error_code ec3, size_t) {
      if (ec3) return fail(ec3);
      http::async_read(stream, buffer, parser, [&](beast::error_code ec4, size_t) { fail(ec4); });
    });
  };
  if (parts->tls) {
    tls_ctx.emplace(ssl::context::tls_client);
    tls_ctx->set_default_verify_paths();
    tls_ctx->set_verify_mode(ssl::verify_peer);
    tls.emplace(io, *tls_ctx);
    SSL* s = tls->native_handle();
    if (!SSL_set_tlsext_host_name(s, parts->host.c_str())) {
      out.error = "TLS: cannot set the server name";
      return out;
    }
    // OpenSSL checks the name during the handshake: a DNS name, or an IP address.
    X509_VERIFY_PARAM* param = SSL_get0_param(s);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    beast::error_code ip_ec;
    asio::ip::make_address(parts->host, ip_ec);
    const int named = ip_ec ? X509_VERIFY_PARAM_set1_host(param, parts->host.c_str(), 0)
                            : X509_VERIFY_PARAM_set1_ip_asc(param, parts->host.c_str());
    if (named != 1) {
      out.error = "TLS: cannot check the host name " + parts->host;
      return out;
    }
  } else {
    plain.emplace(io);
  }
  auto& lowest = parts->tls ? beast::get_lowest_layer(*tls) : *plain;
  lowest.expires_at(ctx.deadline);
  resolver.async_resolve(
      parts->host, parts->port, [&](beast::error_code ec, tcp::resolver::results_type r) {
        if (ec) return fail(ec);
        lowest.async_connect(r, [&](beast::error_code ec2, const tcp::endpoint&) {
          if (ec2) return fail(ec2);
          if (!parts->tls) return exchange(*plain);
          tls->async_handshake(ssl::stream_base::client, [&](beast::error_code ec3) {
            if (ec3) return fail(ec3);
            exchange(*tls);
          });
        });
      });
  while (!finished) {
    if (ctx.cancelled()) {
      out.cancelled = true;
      resolver.cancel();
      beast::error_code ignore;
      lowest.socket().close(ignore);
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
    out.error = result.category() == asio::error::get_ssl_category() ||
                        result.category() == ssl::error::get_stream_category()
                    ? "TLS: " + result.message()
                    : result.message();
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
