// The Qwen3-Coder tool-call state machine (rules in tool_parser.h). Every decision is a
// function of the whole text: a step either decides from the text it has, or waits for
// more ("more" answers are never given once the text is final), so chunking cannot
// change the result.
#include "model/toolcall/tool_parser.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <map>
#include <random>
#include <set>
#include <stdexcept>

#include "model/tool_spec_json.h"
#include "model/toolcall/event_sink.h"
#include "model/toolcall/json_text.h"
#include "model/toolcall/tag_scan.h"
#include "model/toolcall/value_convert.h"

namespace conclave::toolcall {

using detail::match;
using detail::tag;

namespace {

// Value terminators: up to this many closers in a row are read before deciding.
constexpr size_t max_closers = 4;

size_t leading_space(std::string_view s) {
  size_t k = 0;
  while (k < s.size() && detail::is_space(s[k])) ++k;
  return k;
}

}  // namespace

struct tool_parser::impl {
  enum class element { tool_call, function, parameter };

  // A tool with its schema parsed once, here: start_call and open_parameter look into it
  // at every call and parameter.
  struct known_tool {
    std::string name;
    boost::json::object parameters;
  };

  // What follows a `<tool_call>` or `<function=` tag: is it the start of a call?
  struct opener {
    match m = match::no;
    const known_tool* tool = nullptr;  // null: the name is not a tool
    size_t end = 0;                    // just past `<function=NAME>`
  };

  impl(std::vector<tool_spec> tools, parser_options opts) : opts_(std::move(opts)) {
    for (auto& t : tools) {
      if (t.name.empty()) throw std::invalid_argument("tool_parser: a tool has an empty name");
      const std::string name = t.name;
      if (!tools_.emplace(name, known_tool{name, model::parameters_object(t)}).second) {
        throw std::invalid_argument(fmt::format("tool_parser: tool \"{}\" is given twice", name));
      }
    }
    if (!opts_.random) {
      opts_.random = [rng = std::mt19937_64(std::random_device{}())]() mutable { return rng(); };
    }
  }

  // ---- driving -----------------------------------------------------------------------

  std::vector<event> feed(std::string_view text, bool final) {
    if (finished_) throw std::logic_error("tool_parser: feed() or finish() after finish()");
    buf_.append(text);
    final_ = final;
    finished_ = final;
    for (;;) {
      bool progressed = false;
      if (stack_.empty()) {
        progressed = step_content();
      } else if (stack_.back() == element::parameter) {
        progressed = step_value();
      } else if (stack_.back() == element::function) {
        progressed = step_call_body();
      } else {
        progressed = step_call_tail();
      }
      if (!progressed) break;
    }
    if (final) sink_.flush_content();
    return sink_.take();
  }

  // ---- content -----------------------------------------------------------------------

  bool step_content() {
    const std::string_view s = buf_;
    size_t i = 0;
    for (;;) {
      const size_t lt = s.find('<', i);
      if (lt == std::string_view::npos) break;
      const detail::tag_match t = detail::read_tag(
          s, lt, detail::bit(tag::tool_call_open) | detail::bit(tag::function_open), final_);
      if (t.m == match::more) return release_content(lt);
      if (t.m == match::no) {
        i = lt + 1;
        continue;
      }
      const opener o = check_opener(s, t);
      if (o.m == match::more) return release_content(lt);
      if (o.m == match::yes && o.tool != nullptr) {
        release_content(lt);
        buf_.erase(0, o.end - lt);
        start_call(*o.tool);
        return true;
      }
      if (o.m == match::yes && t.kind == tag::function_open &&
          opts_.unknown_tools == unknown_tool_policy::reject) {
        std::string name(t.name);  // a view into buf_, which release_content shifts
        release_content(t.end);
        sink_.rejected(std::move(name));
        return true;
      }
      i = t.end;  // not a call: the tag is text, and what follows gets its own look
    }
    // Keep an unfinished UTF-8 character back so every delta is whole characters.
    return release_content(final_ ? s.size() : s.size() - incomplete_utf8_tail(s));
  }

  bool release_content(size_t n) {
    sink_.content(std::string_view(buf_).substr(0, n));
    buf_.erase(0, n);
    return n > 0;
  }

  const known_tool* find_tool(std::string_view name) const {
    const auto it = tools_.find(name);
    return it == tools_.end() ? nullptr : &it->second;
  }

  // `<tool_call>` needs `<function=TOOL>` after at most max_gap_bytes of whitespace; then
  // (as for a bare `<function=NAME>`) the tag must be followed by whitespace and a tag
  // or the end of text. `yes` with a null tool: a well-formed call of an unknown tool.
  opener check_opener(std::string_view s, const detail::tag_match& t) const {
    std::string_view name = t.name;
    size_t fn_end = t.end;
    if (t.kind == tag::tool_call_open) {
      const detail::gap_match g = detail::skip_gap(s, t.end, final_);
      if (g.m != match::yes) return {g.m};
      if (g.end == s.size()) return {match::no};
      const detail::tag_match f =
          detail::read_tag(s, g.end, detail::bit(tag::function_open), final_);
      if (f.m != match::yes) return {f.m};
      if (find_tool(f.name) == nullptr) return {match::no};
      name = f.name;
      fn_end = f.end;
    }
    const detail::gap_match g = detail::skip_gap(s, fn_end, final_);
    if (g.m != match::yes) return {g.m};
    if (g.end == s.size()) return {match::yes, find_tool(name), fn_end};
    const match m = detail::read_tag(s, g.end, detail::all_tags, final_).m;
    return {m, m == match::yes ? find_tool(name) : nullptr, fn_end};
  }

  // ---- calls -------------------------------------------------------------------------

  void start_call(const known_tool& tool) {
    stack_ = {element::tool_call, element::function};
    const auto props = tool.parameters.find("properties");
    properties_ = props != tool.parameters.end() && props->value().is_object()
                      ? &props->value().get_object()
                      : nullptr;
    used_.clear();
    params_ = 0;
    sink_.start_call(tool.name);
    arguments("{");
  }

  void arguments(std::string text) { sink_.arguments(std::move(text)); }

  // Stack repair: closing an element closes everything opened inside it; closing one
  // that is not open does nothing (a stray closer).
  void close(element which) {
    if (std::find(stack_.begin(), stack_.end(), which) == stack_.end()) return;
    while (!stack_.empty()) {
      const element top = stack_.back();
      stack_.pop_back();
      if (top == element::parameter) end_parameter();
      if (top == element::function) {
        arguments("}");
        sink_.end_call();
      }
      if (top == element::tool_call) sink_.touch_call();
      if (top == which) break;
    }
  }

  // Inside `<function=...>`: whitespace, then a parameter, a closer or the call's end.
  // Whitespace is only consumed together with a tag that belongs to this call.
  bool step_call_body() {
    const size_t k = leading_space(buf_);
    if (k > detail::max_gap_bytes) {  // nothing structural follows soon: the call is over
      close(element::tool_call);
      return true;
    }
    if (k == buf_.size()) {
      if (!final_) return false;
      close(element::tool_call);
      return true;
    }
    if (buf_[k] != '<') {
      close(element::tool_call);
      return true;
    }
    const detail::tag_match t = detail::read_tag(buf_, k, detail::all_tags, final_);
    if (t.m == match::more) return false;
    // A new call, stray text, or a parameter given twice (never a duplicate JSON key;
    // value_terminator already keeps such tags inside values): this call ends here.
    if (t.m == match::no || t.kind == tag::tool_call_open || t.kind == tag::function_open ||
        (t.kind == tag::parameter_open && !unused_parameter(t.name))) {
      close(element::tool_call);
      return true;
    }
    const std::string name(t.name);
    buf_.erase(0, t.end);
    if (t.kind == tag::parameter_open) open_parameter(name);
    if (t.kind == tag::function_close) close(element::function);
    if (t.kind == tag::tool_call_close) close(element::tool_call);
    return true;  // parameter_close here is stray: nothing is open, it is dropped
  }

  // After `</function>`: an optional `</tool_call>` (stray closers are dropped too).
  bool step_call_tail() {
    const size_t k = leading_space(buf_);
    if (k > detail::max_gap_bytes) {  // nothing structural follows soon: the call is over
      close(element::tool_call);
      return true;
    }
    if (k == buf_.size()) {
      if (!final_) return false;
      close(element::tool_call);
      return true;
    }
    const detail::tag_match t = detail::read_tag(buf_, k, detail::closer_tags, final_);
    if (t.m == match::more) return false;
    if (t.m == match::yes) buf_.erase(0, t.end);
    if (t.m == match::no || t.kind == tag::tool_call_close) close(element::tool_call);
    return true;
  }

  // ---- parameters --------------------------------------------------------------------

  void open_parameter(const std::string& name) {
    param_ = name;
    param_schema_ = nullptr;
    if (properties_ != nullptr) {
      const auto it = properties_->find(name);
      if (it != properties_->end() && it->value().is_object())
        param_schema_ = &it->value().get_object();
    }
    streams_ = is_string_schema(param_schema_);
    used_.insert(name);
    stack_.push_back(element::parameter);
    fresh_ = true;
    raw_.clear();
    if (streams_) arguments((params_++ > 0 ? ", " : "") + json_quote(name) + ": \"");
  }

  void end_parameter() {
    if (streams_) {
      arguments("\"");
      return;
    }
    std::string text = (params_++ > 0 ? ", " : "") + json_quote(param_) + ": ";
    append_json(text, convert_value(raw_, param_schema_));
    arguments(std::move(text));
  }

  bool step_value() {
    if (fresh_) {  // one leading newline is formatting
      if (buf_.empty() && !final_) return false;
      fresh_ = false;
      if (!buf_.empty() && buf_[0] == '\n') buf_.erase(0, 1);
      return true;
    }
    const std::string_view s = buf_;
    for (size_t i = 0;;) {
      const size_t lt = s.find('<', i);
      if (lt == std::string_view::npos) break;
      const terminator t = value_terminator(s, lt);
      if (t.m == match::more) return take_value(lt, false);
      if (t.m == match::yes) {
        take_value(lt, true);
        close(element::parameter);  // the tag itself is read by step_call_body
        return true;
      }
      i = std::max(lt + 1, t.text_to);  // a literal call block in the value is all text
    }
    if (!final_) return take_value(s.size(), false);
    take_value(s.size(), true);
    close(element::parameter);
    return true;
  }

  // Moves buf_[0, n) into the value. Unless the value ends there, a trailing newline
  // (maybe the one before the closing tag) and an unfinished character stay back.
  bool take_value(size_t n, bool last) {
    std::string_view piece = std::string_view(buf_).substr(0, n);
    size_t consumed = n;
    if (last) {
      if (!piece.empty() && piece.back() == '\n') piece.remove_suffix(1);
    } else {
      const size_t partial = incomplete_utf8_tail(piece);
      piece.remove_suffix(partial);
      if (partial == 0 && !piece.empty() && piece.back() == '\n') piece.remove_suffix(1);
      consumed = piece.size();
    }
    if (streams_) {
      std::string escaped;
      append_json_escaped(escaped, piece);
      arguments(std::move(escaped));
    } else {
      raw_.append(piece);
    }
    buf_.erase(0, consumed);
    return consumed > 0;
  }

  bool unused_parameter(std::string_view name) const { return used_.find(name) == used_.end(); }

  // A parameter name that may open a parameter after a closer: unused in this call and
  // declared by the schema (any name when the tool declares none).
  bool may_open(std::string_view name) const {
    const bool declared =
        properties_ == nullptr || properties_->empty() || properties_->contains(name);
    return declared && unused_parameter(name);
  }

  struct terminator {
    match m = match::no;
    size_t text_to = 0;  // with `no`: a literal call block in the value ends here
  };

  // Value terminators. At a '<' inside a value, read up to max_closers closing tags
  // (`</parameter>`, `</function>`, `</tool_call>`, whitespace between), then the next
  // thing Y. The tag ends the value when:
  //  - no closer, and Y is `<parameter=N>` with N a schema property unused in this call;
  //    or Y starts a call of a known tool (as check_opener decides) and that call is not
  //    a literal block in the value (nested_call);
  //  - two or more closers, unless Y is `<parameter=N>` with N already used;
  //  - one closer followed by the end of text, `<tool_call>` or `<function=`; or
  //    `</parameter>` followed by `<parameter=N>` with may_open(N).
  // Anything else (for example `</parameter>` followed by more file text) is value text.
  terminator value_terminator(std::string_view s, size_t p) const {
    std::array<tag, max_closers> closers{};
    size_t count = 0;
    size_t j = p;
    while (count < max_closers) {
      const detail::tag_match c = detail::read_tag(s, j, detail::closer_tags, final_);
      if (c.m == match::more) return {match::more};
      if (c.m == match::no) break;
      closers[count++] = c.kind;
      const detail::gap_match g = detail::skip_gap(s, c.end, final_);
      if (g.m == match::more) return {match::more};
      if (g.m == match::no) return {count >= 2 ? match::yes : match::no};
      j = g.end;
      if (j == s.size()) return {match::yes};  // closers, then the end of text
    }
    const detail::tag_match y = detail::read_tag(s, j, detail::opener_tags, final_);
    if (y.m == match::more) return {match::more};
    const bool y_param = y.m == match::yes && y.kind == tag::parameter_open;
    if (count == 0) {
      if (y.m == match::no) return {match::no};
      if (y_param) {
        const bool known = properties_ != nullptr && properties_->contains(y.name);
        return {known && unused_parameter(y.name) ? match::yes : match::no};
      }
      const opener o = check_opener(s, y);
      if (o.m == match::more) return {match::more};
      if (o.m != match::yes || o.tool == nullptr) return {match::no};
      return nested_call(s, p);
    }
    if (count >= 2) return {y_param && !unused_parameter(y.name) ? match::no : match::yes};
    if (y.m == match::no) return {match::no};
    if (y_param) {
      return {closers[0] == tag::parameter_close && may_open(y.name) ? match::yes : match::no};
    }
    return {match::yes};
  }

  // A call that starts at s[p], inside a value with no closer before it: a literal block
  // (file content holding a tool call) when the value goes on after its `</tool_call>`;
  // a real call, the value's closers forgotten, when the text ends there or another call
  // follows. Undecided (held back) until its `</tool_call>` and what follows are read.
  terminator nested_call(std::string_view s, size_t p) const {
    constexpr std::string_view closer = "</tool_call>";
    const size_t q = s.find(closer, p + 1);
    if (q == std::string_view::npos) return {final_ ? match::yes : match::more};
    const size_t end = q + closer.size();
    const detail::gap_match g = detail::skip_gap(s, end, final_);
    if (g.m == match::more) return {match::more};
    if (g.m == match::yes && g.end == s.size()) return {match::yes};
    if (g.m == match::yes) {
      const detail::tag_match next = detail::read_tag(
          s, g.end, detail::bit(tag::tool_call_open) | detail::bit(tag::function_open), final_);
      if (next.m == match::more) return {match::more};
      if (next.m == match::yes) return {match::yes};
    }
    return {match::no, end};
  }

  // ---- state -------------------------------------------------------------------------

  std::map<std::string, known_tool, std::less<>> tools_;
  parser_options opts_;

  std::string buf_;  // received, not yet decided
  bool final_ = false;
  bool finished_ = false;
  detail::event_sink sink_{opts_};
  std::vector<element> stack_;

  const boost::json::object* properties_ = nullptr;
  std::set<std::string, std::less<>> used_;
  size_t params_ = 0;  // parameters written into the current call's arguments

  std::string param_;
  const boost::json::object* param_schema_ = nullptr;
  bool streams_ = false;  // string value: escaped and sent as it arrives
  bool fresh_ = false;    // the optional leading newline is not looked at yet
  std::string raw_;       // text of a typed value, converted when it ends
};

tool_parser::tool_parser(std::vector<tool_spec> tools, parser_options opts)
    : impl_(std::make_unique<impl>(std::move(tools), std::move(opts))) {}
tool_parser::~tool_parser() = default;
tool_parser::tool_parser(tool_parser&&) noexcept = default;
tool_parser& tool_parser::operator=(tool_parser&&) noexcept = default;

std::vector<event> tool_parser::feed(std::string_view text) {
  return impl_->feed(text, false);
}
std::vector<event> tool_parser::finish() {
  return impl_->feed({}, true);
}
bool tool_parser::any_calls() const {
  return impl_->sink_.calls() > 0;
}

}  // namespace conclave::toolcall
