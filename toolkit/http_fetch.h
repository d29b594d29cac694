// A small HTTP/1.1 client (Boost.Beast) for the webhook and browser tools: one request per
// connection, bounded in time (a deadline) and size, stopping when cancelled. https:// goes
// over TLS (OpenSSL): the peer's certificate is checked against the system's CA store
// (SSL_CERT_FILE / SSL_CERT_DIR override it, as everywhere in OpenSSL) and must name the
// host (SNI sent); a certificate that fails is an error, never a warning.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "toolkit/tool.h"

namespace conclave::toolkit {

struct url_parts {
  std::string host, port = "80", target = "/";
  bool tls = false;  ///< https
};

/// Splits "http://host[:port][/path]" or "https://..." (port 443 by default); nullopt
/// (and `error` set) for anything else.
std::optional<url_parts> parse_http_url(const std::string& url, std::string& error);

struct http_response {
  int status = 0;          ///< 0: no response (see `error`)
  std::string error;       ///< connection refused, timeout, too large, cancelled
  bool timed_out = false;  ///< the deadline passed
  bool cancelled = false;
  std::string body;
  std::string location;  ///< the Location header, for redirects
  std::string content_type;
};

/// Sends `method` to `url` with `body` (content type `content_type` when not empty).
/// Stops at `ctx`'s deadline or cancel flag and when the response exceeds `max_bytes`.
http_response http_request(const std::string& method, const std::string& url,
                           const std::string& body, const std::string& content_type,
                           size_t max_bytes, const run_context& ctx);

}  // namespace conclave::toolkit
