// dashboard_feed: GET /dashboard/feed, the dashboard's live Server-Sent Events stream: one
// `history` event with the frames kept, then one `frame` event per telemetry sample,
// until the client goes away or the server stops. Internal to net/.
#pragma once

#include <memory>

#include "net/server_context.h"

namespace conclave::net {

/// Takes over the connection of an authorised GET /dashboard/feed.
void start_feed_session(std::shared_ptr<server_context> ctx, beast::tcp_stream stream,
                        unsigned http_version);

}  // namespace conclave::net
