// server_rounds: the bookkeeping of server-side tool rounds for one request, as a plain
// class (no CAF). The session passes every client event of a round through route():
// calls of server-side tools are taken out of the OpenAI stream (plain clients never see
// them) and come back as one `server_tool_call` event each; calls of the client's own
// tools keep flowing as tool_calls, numbered across rounds. When a round ends with
// server-side calls only, the session runs them (one tool_invocation actor each), feeds
// the results in with add_result(), and next_round() extends the conversation (the
// assistant's calls, then one tool message per result) for the next generation.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "serve/client_api.h"
#include "serve/tool_runtime.h"

namespace conclave::serve {

class server_rounds {
 public:
  /// `server_tools`: the names that run on the server; `max_rounds`: tool rounds at most;
  /// `later_choices`: tool_choice of rounds 2, 3, ... ("auto", "none", "required" or a
  /// tool name; past the list: auto).
  server_rounds(std::set<std::string> server_tools, int max_rounds,
                std::vector<std::string> later_choices);

  /// Adjusts `e` for the client (call indices across rounds, server calls taken out);
  /// false when nothing is to be sent for it.
  bool route(client_event& e);
  /// At the end of a generation: true when its calls are all server-side (at least one)
  /// and rounds are left, so the session runs them instead of finishing.
  bool run_tools() const;
  /// Calls of the client's own tools in this round (finish_reason tool_calls).
  bool client_calls() const { return client_calls_ > 0; }
  std::vector<tool_call_request> calls() const;
  /// True once every call of the round has its result.
  bool add_result(const tool_call_result& r);
  /// Appends the round to `messages` and starts the next one; sets its tool choice.
  void next_round(std::vector<chat::message>& messages, tool_choice_mode& mode, std::string& name);
  int round() const { return round_; }

 private:
  struct call {
    std::string id, name, arguments;
    bool server = false;
    size_t client_index = 0;
  };
  std::set<std::string> server_tools_;
  int max_rounds_;
  std::vector<std::string> later_choices_;
  int round_ = 0;
  std::string content_;
  std::string reasoning_;
  std::map<size_t, call> calls_;  ///< this round's, by parser index
  size_t client_calls_ = 0;
  size_t next_client_index_ = 0;
  std::map<std::string, tool_call_result> results_;
};

}  // namespace conclave::serve
