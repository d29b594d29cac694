// Server-side tool rounds (see the header).
#include "serve/server_rounds.h"

namespace conclave::serve {

server_rounds::server_rounds(std::set<std::string> server_tools, int max_rounds,
                             std::vector<std::string> later_choices)
    : server_tools_(std::move(server_tools)),
      max_rounds_(max_rounds),
      later_choices_(std::move(later_choices)) {}

bool server_rounds::route(client_event& e) {
  using kind = client_event::kind;
  switch (e.type) {
    case kind::content:
      content_ += e.text;
      return true;
    case kind::reasoning:
      reasoning_ += e.text;
      return true;
    case kind::tool_call_start: {
      call& c = calls_[e.index];
      c.id = e.call_id;
      c.name = e.name;
      c.server = server_tools_.count(e.name) > 0;
      if (c.server) return false;
      c.client_index = next_client_index_++;
      ++client_calls_;
      e.index = c.client_index;
      return true;
    }
    case kind::tool_call_arguments: {
      call& c = calls_[e.index];
      c.arguments += e.text;
      if (c.server) return false;
      e.index = c.client_index;
      return true;
    }
    case kind::tool_call_end: {
      const call& c = calls_[e.index];
      if (!c.server) {
        e.index = c.client_index;
        return true;
      }
      e.type = kind::server_tool_call;
      e.call_id = c.id;
      e.name = c.name;
      e.text = c.arguments;
      return true;
    }
    default:
      return true;
  }
}

bool server_rounds::run_tools() const {
  return !calls_.empty() && client_calls_ == 0 && round_ < max_rounds_;
}

std::vector<tool_call_request> server_rounds::calls() const {
  std::vector<tool_call_request> out;
  for (const auto& [i, c] : calls_) out.push_back({c.id, c.name, c.arguments});
  return out;
}

bool server_rounds::add_result(const tool_call_result& r) {
  results_[r.call_id] = r;
  return results_.size() >= calls_.size();
}

void server_rounds::next_round(std::vector<chat::message>& messages, tool_choice_mode& mode,
                               std::string& name) {
  chat::message assistant;
  assistant.r = chat::role::assistant;
  assistant.content_parts = {content_};
  assistant.content_is_null = content_.empty();
  if (!reasoning_.empty()) assistant.reasoning_content = reasoning_;
  for (const auto& [i, c] : calls_) {
    assistant.tool_calls.push_back({c.id, c.name, c.arguments.empty() ? "{}" : c.arguments});
  }
  messages.push_back(std::move(assistant));
  for (const auto& [i, c] : calls_) {
    chat::message result;
    result.r = chat::role::tool;
    result.tool_call_id = c.id;
    auto it = results_.find(c.id);
    result.content_parts = {it == results_.end() ? "error: no result" : it->second.content};
    messages.push_back(std::move(result));
  }
  const std::string choice =
      static_cast<size_t>(round_) < later_choices_.size() ? later_choices_[round_] : "auto";
  ++round_;
  name.clear();
  if (choice == "auto") {
    mode = tool_choice_mode::auto_;
  } else if (choice == "none") {
    mode = tool_choice_mode::none;
  } else if (choice == "required") {
    mode = tool_choice_mode::required;
  } else {
    mode = tool_choice_mode::function;
    name = choice;
  }
  content_.clear();
  reasoning_.clear();
  calls_.clear();
  results_.clear();
  client_calls_ = 0;
}

}  // namespace conclave::serve
