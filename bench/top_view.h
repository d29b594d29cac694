// top_view: `conclave top`, a terminal view of a server's dashboard feed (for hosts without
// a browser): the feed's reader (GET /dashboard/feed, Server-Sent Events) and the text
// one frame renders to.
#pragma once

#include <boost/json/fwd.hpp>
#include <functional>
#include <string>

#include "bench/serve_bench.h"

namespace conclave::bench {

/// One frame of the feed (docs/observability.md) as text, at most `width` columns.
std::string render_top(const boost::json::object& frame, int width = 100);

/// Splits a Server-Sent Events stream into events as its bytes arrive.
class sse_parser {
 public:
  using handler = std::function<void(const std::string& event, const std::string& data)>;
  explicit sse_parser(handler on_event) : on_event_(std::move(on_event)) {}
  void feed(std::string_view bytes);

 private:
  void line(std::string_view l);
  handler on_event_;
  std::string pending_, event_, data_;
};

/// Reads GET /dashboard/feed until `on_frame` returns false or the stream ends; each
/// frame (the history's last one first, then live ones) goes to `on_frame`. Throws
/// std::runtime_error when the server cannot be reached or answers other than 200.
void follow_feed(const server_url& url, const std::string& api_key,
                 const std::function<bool(const boost::json::object&)>& on_frame);

}  // namespace conclave::bench
