// websocket_session: /v1/ws, many concurrent requests on one connection (docs/websocket.md).
// Client frames: request / cancel; server frames: chunk / done / error. Internal to net/.
#pragma once

#include "net/server_context.h"

namespace conclave::net {

class websocket_session;

}  // namespace conclave::net
