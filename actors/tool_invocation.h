// tool_invocation: one actor per server-side tool call, spawned and monitored by its
// request_session. It runs the call (serve::run_tool_call: schema check, per-tool
// timeout, retries with backoff), sends the result to its parent and quits. Tools block
// (a sandboxed process, an HTTP call), so the actor is detached: it has its own thread.
// Cancelling the request sets the shared cancel flag: the tool stops and its processes
// are killed.
//
// Custom tools in C++ are actors too: anything that answers the `tool_actor` interface
// (actors/messages.h) can be registered with register_actor_tool()
// (examples/custom_tool/).
#pragma once

#include <caf/all.hpp>
#include <chrono>
#include <memory>

#include "actors/live_actors.h"
#include "actors/messages.h"
#include "serve/tool_runtime.h"
#include "toolkit/registry.h"

namespace conclave::actors {

/// Spawns the actor for `call` (detached and monitored by `parent`); it sends
/// (tool_result_atom, tool_call_result) to `parent` and quits. An unknown tool name
/// gives an error result, as do invalid arguments. `live` (may be null) lists it under
/// its call id: an invocation killed from there (POST /admin/fault kill_tool) stops its
/// tool and ends without a result, so the parent sees it go down.
caf::actor spawn_tool_invocation(caf::local_actor* parent,
                                 std::shared_ptr<const serve::tool_runtime> runtime,
                                 serve::tool_call_request call,
                                 std::shared_ptr<const toolkit::cancel_flag> cancel,
                                 const std::shared_ptr<live_actors>& live);

/// Registers `actor` as the tool `def` in `tools`, answering within `timeout`.
void register_actor_tool(toolkit::registry& tools, caf::actor_system& system, model::tool_spec def,
                         tool_actor actor,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace conclave::actors
