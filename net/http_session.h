// http_session: one HTTP/1.1 connection (keep-alive, one request at a time): routing,
// limits (413/431), auth (401), generation requests streamed as SSE or answered whole,
// client-disconnect detection that cancels the request. Internal to net/.
#pragma once

#include <memory>

#include "net/server_context.h"

namespace conclave::net {

void start_http_session(std::shared_ptr<server_context> ctx, tcp::socket socket);

}  // namespace conclave::net
