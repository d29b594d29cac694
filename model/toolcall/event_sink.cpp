// The parsers' shared output side (see event_sink.h).
#include "model/toolcall/event_sink.h"

#include <spdlog/fmt/fmt.h>

#include "model/toolcall/tag_scan.h"

namespace conclave::toolcall::detail {

void event_sink::content(std::string_view t) {
  size_t first = 0;
  while (first < t.size() && is_space(t[first])) ++first;
  pending_ws_.append(t.substr(0, first));
  t.remove_prefix(first);
  if (t.empty()) return;
  size_t last = t.size();
  while (is_space(t[last - 1])) --last;
  std::string piece;
  if (!(ws_touches_call_ && !emitted_content_)) piece = pending_ws_;
  piece.append(t.substr(0, last));
  pending_ws_.assign(t.substr(last));
  ws_touches_call_ = false;
  emitted_content_ = true;
  push_content(std::move(piece));
}

void event_sink::flush_content() {
  if (!pending_ws_.empty() && !ws_touches_call_) push_content(std::move(pending_ws_));
  pending_ws_.clear();
}

void event_sink::push_content(std::string text) {
  event e;
  e.type = event::kind::content;
  e.text = std::move(text);
  out_.push_back(std::move(e));
}

void event_sink::rejected(std::string name) {
  event e;
  e.type = event::kind::rejected_tool;
  e.name = std::move(name);
  out_.push_back(std::move(e));
}

void event_sink::start_call(const std::string& name) {
  ws_touches_call_ = true;
  index_ = calls_++;
  event e;
  e.type = event::kind::tool_call_start;
  e.index = index_;
  const uint64_t a = opts_.random();
  const uint64_t b = opts_.random();
  e.id = fmt::format("call_{:016x}{:08x}", a, b >> 32);
  e.name = name;
  out_.push_back(std::move(e));
}

void event_sink::arguments(std::string text) {
  if (text.empty()) return;
  event e;
  e.type = event::kind::tool_call_arguments;
  e.index = index_;
  e.text = std::move(text);
  out_.push_back(std::move(e));
}

void event_sink::end_call() {
  event e;
  e.type = event::kind::tool_call_end;
  e.index = index_;
  out_.push_back(std::move(e));
}

std::vector<event> event_sink::take() {
  std::vector<event> merged;
  for (auto& e : out_) {
    if (!merged.empty() && merged.back().type == e.type &&
        (e.type == event::kind::content ||
         (e.type == event::kind::tool_call_arguments && merged.back().index == e.index))) {
      merged.back().text += e.text;
    } else {
      merged.push_back(std::move(e));
    }
  }
  out_.clear();
  return merged;
}

}  // namespace conclave::toolcall::detail
