// A small HTTP/1.1 client (Boost.Beast) for the webhook tools: one request per
// connection, bounded in time (a deadline) and size, stopping when cancelled. Plain
// http:// only (this build has no TLS).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "toolkit/tool.h"

namespace conclave::toolkit {

struct url_parts {
  std::string host, port = "80", target = "/";
};

/// Splits "http://host[:port][/path]"; nullopt (and `error` set) for anything else.
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
