// The JSON tool-call state machine (rules in hermes_parser.h). As in tool_parser.cpp,
// every step either decides from the text it has or waits for more ("more" is never
// the answer once the text is final), so chunking cannot change the result.
#include "model/toolcall/hermes_parser.h"

#include <spdlog/fmt/fmt.h>

#include <boost/json.hpp>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "model/pytext/utf8.h"
#include "model/tool_spec_json.h"
#include "model/toolcall/event_sink.h"
#include "model/toolcall/json_text.h"
#include "model/toolcall/tag_scan.h"
#include "model/toolcall/value_convert.h"

namespace conclave::toolcall {

using detail::match;

namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";
constexpr size_t kMaxDepth = 512;

bool space(char c) {
  return detail::is_space(c);
}

// s[pos] starts `tag`, is a prefix of it at the end of a non-final text, or neither.
match at_tag(std::string_view s, size_t pos, std::string_view tag, bool final) {
  const std::string_view rest = s.substr(pos);
  if (rest.substr(0, tag.size()) == tag) return match::yes;
  if (!final && rest.size() < tag.size() && tag.substr(0, rest.size()) == rest) return match::more;
  return match::no;
}

struct gap {
  match m;
  size_t end;
};

// Whitespace from pos, at most max_gap_bytes of it; `more` when the text ends inside it.
gap skip_ws(std::string_view s, size_t pos, bool final) {
  size_t i = pos;
  while (i < s.size() && space(s[i])) {
    if (i - pos >= detail::max_gap_bytes) return {match::no, i};
    ++i;
  }
  if (i == s.size() && !final) return {match::more, i};
  return {match::yes, i};
}

std::optional<uint32_t> hex4(std::string_view s, size_t pos) {
  if (pos + 4 > s.size()) return std::nullopt;
  uint32_t v = 0;
  for (size_t i = pos; i < pos + 4; ++i) {
    const char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= static_cast<uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= static_cast<uint32_t>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= static_cast<uint32_t>(c - 'A' + 10);
    else
      return std::nullopt;
  }
  return v;
}

// One JSON string character (or escape) at s[pos] (pos inside the string). `yes`: `out`
// gets its UTF-8 text and `end` is past it; `no` for a closing quote or a bad escape.
struct char_read {
  match m;
  size_t end;
};

char_read read_string_char(std::string_view s, size_t pos, bool final, std::string& out) {
  if (pos >= s.size()) return {final ? match::no : match::more, pos};
  const char c = s[pos];
  if (c == '"') return {match::no, pos};
  if (c != '\\') {
    // A raw character: whole UTF-8 characters only, so deltas stay valid UTF-8.
    const size_t n = utf8_char_length(s, pos);
    if (n == 0) {
      if (!final && incomplete_utf8_tail(s.substr(pos)) == s.size() - pos)
        return {match::more, pos};
      out += c;  // an invalid byte: append_json_escaped makes it U+FFFD
      return {match::yes, pos + 1};
    }
    out.append(s.substr(pos, n));
    return {match::yes, pos + n};
  }
  if (pos + 1 >= s.size()) return {final ? match::no : match::more, pos};
  // Two-character escapes: \" \\ \/ \b \f \n \r \t; then \uXXXX.
  constexpr std::string_view kFrom = "\"\\/bfnrt";
  constexpr std::string_view kTo = "\"\\/\b\f\n\r\t";
  const char e = s[pos + 1];
  if (const size_t k = kFrom.find(e); k != std::string_view::npos) {
    out += kTo[k];
    return {match::yes, pos + 2};
  }
  if (e != 'u') return {match::no, pos};
  if (pos + 6 > s.size()) return {final ? match::no : match::more, pos};
  const auto u = hex4(s, pos + 2);
  if (!u) return {match::no, pos};
  if (*u >= 0xD800 && *u < 0xDC00) {  // a high surrogate wants its low half
    if (pos + 12 > s.size()) {
      if (!final && s.substr(pos + 6) == std::string_view("\\u").substr(0, s.size() - pos - 6))
        return {match::more, pos};
      if (!final && s.size() - pos - 6 >= 2 && s.substr(pos + 6, 2) == "\\u")
        return {match::more, pos};
    }
    if (pos + 12 <= s.size() && s.substr(pos + 6, 2) == "\\u") {
      const auto lo = hex4(s, pos + 8);
      if (lo && *lo >= 0xDC00 && *lo < 0xE000) {
        pytext::append_utf8(out, 0x10000 + ((*u - 0xD800) << 10) + (*lo - 0xDC00));
        return {match::yes, pos + 12};
      }
    }
    pytext::append_utf8(out, 0xFFFD);
    return {match::yes, pos + 6};
  }
  pytext::append_utf8(out, (*u >= 0xDC00 && *u < 0xE000) ? 0xFFFD : *u);
  return {match::yes, pos + 6};
}

struct string_read {
  match m;
  size_t end;  // past the closing quote
  std::string text;
};

// A whole JSON string at s[pos] (which is '"').
string_read read_string(std::string_view s, size_t pos, bool final) {
  string_read r{match::no, pos, {}};
  size_t i = pos + 1;
  for (;;) {
    if (i < s.size() && s[i] == '"') return {match::yes, i + 1, std::move(r.text)};
    const char_read c = read_string_char(s, i, final, r.text);
    if (c.m != match::yes) return {c.m, i, {}};
    i = c.end;
  }
}

struct key_read {
  match m;
  std::string key;
  size_t value = 0;  // where the member's value starts
};

// A member's key at s[pos], its `:` and the whitespace around it.
key_read read_key(std::string_view s, size_t pos, bool final) {
  if (pos >= s.size() || s[pos] != '"') return {match::no, {}, pos};
  string_read k = read_string(s, pos, final);
  if (k.m != match::yes) return {k.m, {}, pos};
  gap w = skip_ws(s, k.end, final);
  if (w.m != match::yes) return {w.m, {}, pos};
  if (w.end >= s.size() || s[w.end] != ':') return {match::no, {}, pos};
  w = skip_ws(s, w.end + 1, final);
  if (w.m != match::yes) return {w.m, {}, pos};
  if (w.end >= s.size()) return {match::no, {}, pos};  // final text: no value
  return {match::yes, std::move(k.text), w.end};
}

// The end of one complete JSON value at s[pos] (structure only: strings, brackets, and
// runs of literal/number characters); the text is parsed afterwards.
struct value_read {
  match m;
  size_t end;
};

value_read skip_value(std::string_view s, size_t pos, bool final) {
  if (pos >= s.size()) return {final ? match::no : match::more, pos};
  const char c = s[pos];
  if (c == '"') {
    const string_read r = read_string(s, pos, final);
    return {r.m, r.end};
  }
  if (c == '{' || c == '[') {
    std::vector<char> stack{c == '{' ? '}' : ']'};
    size_t i = pos + 1;
    while (!stack.empty()) {
      if (i >= s.size()) return {final ? match::no : match::more, i};
      const char x = s[i];
      if (x == '"') {
        const string_read r = read_string(s, i, final);
        if (r.m != match::yes) return {r.m, i};
        i = r.end;
        continue;
      }
      if (x == '{' || x == '[') {
        if (stack.size() >= kMaxDepth) return {match::no, i};
        stack.push_back(x == '{' ? '}' : ']');
      } else if (x == '}' || x == ']') {
        if (x != stack.back()) return {match::no, i};
        stack.pop_back();
      }
      ++i;
    }
    return {match::yes, i};
  }
  size_t i = pos;
  while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '-' ||
                          s[i] == '+' || s[i] == '.'))
    ++i;
  if (i == pos) return {match::no, pos};
  if (i == s.size() && !final) return {match::more, i};
  return {match::yes, i};
}

std::optional<boost::json::value> parse_json(std::string_view text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec) return std::nullopt;
  return v;
}

}  // namespace

struct hermes_parser::impl {
  enum class state { content, object, args_member, args_string, after_object };

  impl(std::vector<tool_spec> tools, parser_options opts) : opts_(std::move(opts)) {
    for (auto& t : tools) {
      if (t.name.empty()) throw std::invalid_argument("hermes_parser: a tool has an empty name");
      const std::string name = t.name;
      if (!tools_.emplace(name, model::parameters_object(t)).second)
        throw std::invalid_argument(fmt::format("hermes_parser: tool \"{}\" is given twice", name));
    }
    if (!opts_.random)
      opts_.random = [rng = std::mt19937_64(std::random_device{}())]() mutable { return rng(); };
  }

  std::vector<event> feed(std::string_view text, bool final) {
    if (finished_) throw std::logic_error("hermes_parser: feed() or finish() after finish()");
    buf_.append(text);
    final_ = final;
    finished_ = final;
    while (step()) {
    }
    if (final) {
      if (state_ != state::content) break_call();  // cut off by the end of text
      if (!buf_.empty()) release(buf_.size());
      sink_.flush_content();
    }
    return sink_.take();
  }

  bool step() {
    switch (state_) {
      case state::content:
        return step_content();
      case state::object:
        return step_object();
      case state::args_member:
        return step_args_member();
      case state::args_string:
        return step_args_string();
      case state::after_object:
        return step_after_object();
    }
    return false;
  }

  // ---- content -----------------------------------------------------------------------

  bool release(size_t n) {
    sink_.content(std::string_view(buf_).substr(0, n));
    buf_.erase(0, n);
    return n > 0;
  }

  bool step_content() {
    const std::string_view s = buf_;
    size_t i = 0;
    for (;;) {
      const size_t lt = s.find('<', i);
      if (lt == std::string_view::npos) break;
      const match t = at_tag(s, lt, kOpen, final_);
      if (t == match::more) return release(lt);
      if (t == match::no) {
        i = lt + 1;
        continue;
      }
      rejected_name_.reset();
      const match h = read_header(lt + kOpen.size());
      if (h == match::more) return release(lt);
      if (h == match::yes) {
        release(lt);  // header_end_ counted from the old start of buf_
        header_end_ -= lt;
        begin_call();
        return true;
      }
      if (rejected_name_) {  // a well-formed call of an unknown tool: content, reported
        release(lt + kOpen.size());
        sink_.rejected(std::move(*rejected_name_));
        return true;
      }
      i = lt + kOpen.size();  // not a call: the tag is text
    }
    return release(final_ ? s.size() : s.size() - incomplete_utf8_tail(s));
  }

  // From just past `<tool_call>`: whitespace, `{`, then members up to and including the
  // "name" of a known tool. Fills name_, header_end_ and early_args_ on yes.
  match read_header(size_t pos) {
    const std::string_view s = buf_;
    const gap g = skip_ws(s, pos, final_);
    if (g.m != match::yes) return g.m;
    if (g.end >= s.size() || s[g.end] != '{') return match::no;
    size_t i = g.end + 1;
    std::optional<std::string> args;
    for (bool first = true;; first = false) {
      gap w = skip_ws(s, i, final_);
      if (w.m != match::yes) return w.m;
      i = w.end;
      if (!first) {
        if (i >= s.size() || s[i] != ',') return match::no;  // `}` too: no name, no call
        w = skip_ws(s, i + 1, final_);
        if (w.m != match::yes) return w.m;
        i = w.end;
      }
      const key_read key = read_key(s, i, final_);
      if (key.m != match::yes) return key.m;
      i = key.value;
      if (key.key == "name") {
        if (i >= s.size() || s[i] != '"') return match::no;
        const string_read name = read_string(s, i, final_);
        if (name.m != match::yes) return name.m;
        const auto tool = tools_.find(name.text);
        if (tool == tools_.end()) {
          if (opts_.unknown_tools == unknown_tool_policy::reject) rejected_name_ = name.text;
          return match::no;
        }
        std::optional<std::string> early;
        if (args) {
          early = whole_arguments(*args, tool->second);
          if (!early) return match::no;
        }
        name_ = name.text;
        header_end_ = name.end;
        early_args_ = std::move(early);
        return match::yes;
      }
      const value_read v = skip_value(s, i, final_);
      if (v.m != match::yes) return v.m;
      if ((key.key == "arguments" || key.key == "parameters") && !args)
        args = std::string(s.substr(i, v.end - i));
      i = v.end;
    }
  }

  void begin_call() {
    buf_.erase(0, header_end_);
    sink_.start_call(name_);
    schema_ = &tools_.at(name_);
    props_ = nullptr;
    if (const auto* p = schema_->if_contains("properties"); p && p->is_object())
      props_ = &p->get_object();
    used_.clear();
    members_ = 0;
    skipped_ = false;
    args_done_ = false;
    if (early_args_) {
      sink_.arguments(std::move(*early_args_));
      args_done_ = true;
    }
    state_ = state::object;
  }

  // ---- inside the call's object --------------------------------------------------------

  bool step_object() {
    const std::string_view s = buf_;
    gap w = skip_ws(s, 0, final_);
    if (w.m == match::more) return false;
    if (w.m == match::no || w.end >= s.size()) return break_call();
    size_t i = w.end;
    if (s[i] == '}') {
      buf_.erase(0, i + 1);
      state_ = state::after_object;
      return true;
    }
    if (s[i] != ',') return break_call();
    w = skip_ws(s, i + 1, final_);
    if (w.m == match::more) return false;
    i = w.end;
    if (w.m == match::no) return break_call();
    const key_read key = read_key(s, i, final_);
    if (key.m == match::more) return false;
    if (key.m == match::no) return break_call();
    i = key.value;
    const bool is_args = (key.key == "arguments" || key.key == "parameters") && !args_done_;
    if (is_args && s[i] == '{') {
      // A JSON object streams; anything else in braces (a Python dict) is read whole.
      const gap in = skip_ws(s, i + 1, final_);
      if (in.m == match::more) return false;
      if (in.m == match::yes && in.end < s.size() && (s[in.end] == '"' || s[in.end] == '}')) {
        buf_.erase(0, i + 1);
        args_done_ = true;
        state_ = state::args_member;
        return true;
      }
    }
    const value_read v = skip_value(s, i, final_);
    if (v.m == match::more) return false;
    if (v.m == match::no) return break_call();
    if (is_args) {
      const auto args = whole_arguments(s.substr(i, v.end - i), *schema_);
      if (!args) return break_call();
      sink_.arguments(*args);
      args_done_ = true;
    }
    buf_.erase(0, v.end);
    return true;
  }

  bool step_args_member() {
    const std::string_view s = buf_;
    gap w = skip_ws(s, 0, final_);
    if (w.m == match::more) return false;
    if (w.m == match::no || w.end >= s.size()) return break_call();
    size_t i = w.end;
    if (s[i] == '}') {
      sink_.arguments(members_ == 0 ? "{}" : "}");
      buf_.erase(0, i + 1);
      state_ = state::object;
      return true;
    }
    if (members_ > 0 || skipped_) {
      if (s[i] != ',') return break_call();
      w = skip_ws(s, i + 1, final_);
      if (w.m == match::more) return false;
      if (w.m == match::no || w.end >= s.size()) return break_call();
      i = w.end;
    }
    const key_read key = read_key(s, i, final_);
    if (key.m == match::more) return false;
    if (key.m == match::no) return break_call();
    i = key.value;
    const boost::json::object* schema = property_schema(key.key);
    const bool duplicate = used_.count(key.key) > 0;
    if (!duplicate && s[i] == '"' && is_string_schema(schema)) {
      sink_.arguments(member_prefix(key.key) + "\"");
      used_.insert(key.key);
      buf_.erase(0, i + 1);
      state_ = state::args_string;
      return true;
    }
    const value_read v = skip_value(s, i, final_);
    if (v.m == match::more) return false;
    if (v.m == match::no) return break_call();
    if (duplicate) {
      skipped_ = true;  // the first value stands
    } else {
      std::string text = member_prefix(key.key);
      append_json(text, typed_value(s.substr(i, v.end - i), schema));
      sink_.arguments(std::move(text));
      used_.insert(key.key);
    }
    buf_.erase(0, v.end);
    return true;
  }

  bool step_args_string() {
    const std::string_view s = buf_;
    std::string decoded;
    size_t i = 0;
    bool closed = false;
    for (;;) {
      if (i < s.size() && s[i] == '"') {
        closed = true;
        ++i;
        break;
      }
      const char_read c = read_string_char(s, i, final_, decoded);
      if (c.m != match::yes) {
        if (c.m == match::no && i < s.size()) {  // a bad escape breaks the call here
          flush_string(decoded);
          buf_.erase(0, i);
          return break_call();
        }
        break;
      }
      i = c.end;
    }
    flush_string(decoded);
    buf_.erase(0, i);
    if (closed) {
      sink_.arguments("\"");
      state_ = state::args_member;
      return true;
    }
    return false;  // waits for more (or final: feed() closes the call)
  }

  void flush_string(const std::string& decoded) {
    if (decoded.empty()) return;
    std::string escaped;
    append_json_escaped(escaped, decoded);
    sink_.arguments(std::move(escaped));
  }

  bool step_after_object() {
    const std::string_view s = buf_;
    const gap w = skip_ws(s, 0, final_);
    if (w.m == match::more) return false;
    if (w.m == match::yes && w.end < s.size()) {
      const match t = at_tag(s, w.end, kClose, final_);
      if (t == match::more) return false;
      if (t == match::yes) {
        buf_.erase(0, w.end + kClose.size());
        end_call();
        return true;
      }
    }
    // No closer: the call ends here; what follows (a new call, text) is read as content.
    end_call();
    return true;
  }

  // ---- ends --------------------------------------------------------------------------

  void end_call() {
    if (!args_done_) sink_.arguments("{}");
    sink_.end_call();
    sink_.touch_call();
    state_ = state::content;
  }

  // The object broke (or the text ended) inside the call: close what is open and end
  // the call; the unread text is content.
  bool break_call() {
    if (state_ == state::args_string) sink_.arguments("\"");
    if (state_ == state::args_string || state_ == state::args_member)
      sink_.arguments(members_ == 0 && state_ == state::args_member ? "{}" : "}");
    if (state_ == state::args_string || state_ == state::args_member) args_done_ = true;
    end_call();
    if (final_) buf_.clear();  // an incomplete member at the end of text is dropped
    return true;
  }

  // ---- values ------------------------------------------------------------------------

  std::string member_prefix(const std::string& key) {
    std::string p = members_++ == 0 ? "{" : ", ";
    return p + json_quote(key) + ": ";
  }

  const boost::json::object* property_schema(const std::string& key) const {
    if (!props_) return nullptr;
    const auto* p = props_->if_contains(key);
    return p && p->is_object() ? &p->get_object() : nullptr;
  }

  // A member's JSON text typed by its schema: a JSON string for a non-string schema is
  // converted as the XML parser converts text; other values stay as written.
  static boost::json::value typed_value(std::string_view raw, const boost::json::object* schema) {
    auto v = parse_json(raw);
    if (!v) v = parse_python_literal(raw);
    if (!v) return boost::json::value(boost::json::string(raw));
    if (v->is_string() && !is_string_schema(schema)) return convert_value(v->get_string(), schema);
    return std::move(*v);
  }

  // Whole arguments given at once: an object, a string holding one (double-encoded) or a
  // Python dict; null is no arguments. Anything else: nullopt.
  static std::optional<std::string> whole_arguments(std::string_view raw,
                                                    const boost::json::object& tool_schema) {
    auto v = parse_json(raw);
    if (!v) v = parse_python_literal(raw);
    if (v && v->is_string()) {
      const std::string inner(v->get_string());
      v = parse_json(inner);
      if (!v) v = parse_python_literal(inner);
    }
    if (!v) return std::nullopt;
    if (v->is_null()) return std::string("{}");
    if (!v->is_object()) return std::nullopt;
    const boost::json::object* props = nullptr;
    if (const auto* p = tool_schema.if_contains("properties"); p && p->is_object())
      props = &p->get_object();
    std::string out = "{";
    bool first = true;
    for (const auto& kv : v->get_object()) {
      const boost::json::value* sch = props ? props->if_contains(kv.key()) : nullptr;
      const boost::json::object* schema = sch && sch->is_object() ? &sch->get_object() : nullptr;
      boost::json::value x = kv.value();
      if (x.is_string() && !is_string_schema(schema)) x = convert_value(x.get_string(), schema);
      out += first ? "" : ", ";
      first = false;
      out += json_quote(kv.key());
      out += ": ";
      append_json(out, x);
    }
    return out + "}";
  }

  // ---- state -------------------------------------------------------------------------

  std::map<std::string, boost::json::object, std::less<>> tools_;
  parser_options opts_;
  detail::event_sink sink_{opts_};

  std::string buf_;
  bool final_ = false;
  bool finished_ = false;
  state state_ = state::content;
  std::optional<std::string> rejected_name_;

  std::string name_;
  size_t header_end_ = 0;
  std::optional<std::string> early_args_;
  const boost::json::object* schema_ = nullptr;
  const boost::json::object* props_ = nullptr;
  std::set<std::string, std::less<>> used_;
  size_t members_ = 0;
  bool skipped_ = false;
  bool args_done_ = false;
};

hermes_parser::hermes_parser(std::vector<tool_spec> tools, parser_options opts)
    : impl_(std::make_unique<impl>(std::move(tools), std::move(opts))) {}
hermes_parser::~hermes_parser() = default;
hermes_parser::hermes_parser(hermes_parser&&) noexcept = default;
hermes_parser& hermes_parser::operator=(hermes_parser&&) noexcept = default;

std::vector<event> hermes_parser::feed(std::string_view text) {
  return impl_->feed(text, false);
}
std::vector<event> hermes_parser::finish() {
  return impl_->feed({}, true);
}
bool hermes_parser::any_calls() const {
  return impl_->sink_.calls() > 0;
}

}  // namespace conclave::toolcall
