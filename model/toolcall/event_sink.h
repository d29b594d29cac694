// What both tool-call parsers (XML and JSON) emit and how: content with the whitespace
// rule around calls, call start / arguments / end events with OpenAI call ids, and
// adjacent pieces merged. Internal to model/toolcall/.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/toolcall/tool_parser.h"

namespace conclave::toolcall::detail {

class event_sink {
 public:
  explicit event_sink(parser_options& opts) : opts_(opts) {}

  /// Content text. Whitespace touching a call is held; it is kept only where it separates
  /// two pieces of content ("A\n<call>\nB" -> "A\n\nB"), so the content neither loses
  /// separators nor gains blank edges from the calls.
  void content(std::string_view t);
  /// End of text: held whitespace that touches no call is content after all.
  void flush_content();
  void rejected(std::string name);

  /// A call of `name` begins (a new index and id); its arguments are still empty.
  void start_call(const std::string& name);
  void arguments(std::string text);
  void end_call();
  /// A call started or ended since the last content (whitespace around it is dropped).
  void touch_call() { ws_touches_call_ = true; }

  size_t calls() const { return calls_; }
  size_t index() const { return index_; }

  /// The events so far, adjacent content and same-call argument pieces merged.
  std::vector<event> take();

 private:
  void push_content(std::string text);

  parser_options& opts_;
  std::vector<event> out_;
  std::string pending_ws_;        // whitespace after the last content, held
  bool ws_touches_call_ = false;  // a call started or ended since the last content
  bool emitted_content_ = false;
  size_t calls_ = 0;
  size_t index_ = 0;
};

}  // namespace conclave::toolcall::detail
