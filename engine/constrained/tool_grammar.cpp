// Tool-call grammar from JSON schemas (see the header for the exact language).
#include "engine/constrained/tool_grammar.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <boost/json.hpp>
#include <functional>
#include <optional>
#include <stdexcept>

#include "engine/constrained/schema_check.h"
#include "model/tool_spec_json.h"

namespace conclave::engine::constrained {
namespace {

namespace json = boost::json;
using frag = nfa::frag;

constexpr int max_depth = 8;
constexpr int generic_depth = 3;

byteset one(char c) {
  byteset b;
  b.set(static_cast<uint8_t>(c));
  return b;
}

byteset digits() {
  return byte_range('0', '9');
}

/// The text form of a schema value in a raw parameter (strings as they are).
std::string raw_text(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  return json::serialize(v);
}

const json::object* object_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_object() ? &v->get_object() : nullptr;
}

class builder {
 public:
  nfa n;

  /// Well-formed UTF-8 text (see the header); `json`: inside a JSON string (no `"`, `\`
  /// unless an escape, no controls).
  frag text(bool json_string) {
    const int32_t s = n.add_state(), lt = n.add_state(), end = n.add_state();
    const int32_t k1 = n.add_state(), k2 = n.add_state(), k3 = n.add_state();
    const int32_t e0 = n.add_state(), ed = n.add_state(), f0 = n.add_state(), f4 = n.add_state();
    byteset ascii = byte_range(0x20, 0x7e);
    if (!json_string) {
      ascii.set('\t');
      ascii.set('\n');
    } else {
      ascii.reset('"');
      ascii.reset('\\');
    }
    ascii.reset('<');
    byteset after_lt = ascii;
    for (char c : {'/', 'p', 'f', 't'}) after_lt.reset(static_cast<uint8_t>(c));
    n.add_edge(s, ascii, s);
    n.add_edge(lt, after_lt, s);
    n.add_edge(s, one('<'), lt);
    n.add_edge(lt, one('<'), lt);
    for (int32_t from : {s, lt}) {
      n.add_edge(from, byte_range(0xc2, 0xdf), k1);
      n.add_edge(from, one('\xe0'), e0);
      n.add_edge(from, byte_range(0xe1, 0xec) | byte_range(0xee, 0xef), k2);
      n.add_edge(from, one('\xed'), ed);
      n.add_edge(from, one('\xf0'), f0);
      n.add_edge(from, byte_range(0xf1, 0xf3), k3);
      n.add_edge(from, one('\xf4'), f4);
      n.add_eps(from, end);
    }
    const byteset cont = byte_range(0x80, 0xbf);
    n.add_edge(k1, cont, s);
    n.add_edge(k2, cont, k1);
    n.add_edge(k3, cont, k2);
    n.add_edge(e0, byte_range(0xa0, 0xbf), k1);
    n.add_edge(ed, byte_range(0x80, 0x9f), k1);
    n.add_edge(f0, byte_range(0x90, 0xbf), k2);
    n.add_edge(f4, byte_range(0x80, 0x8f), k2);
    if (json_string) {
      const int32_t esc = n.add_state();
      byteset escaped;
      for (char c : {'"', '\\', '/', 'n', 't'}) escaped.set(static_cast<uint8_t>(c));
      n.add_edge(s, one('\\'), esc);
      n.add_edge(lt, one('\\'), esc);
      n.add_edge(esc, escaped, s);
    }
    return {s, end};
  }

  frag json_string() { return n.seq({n.literal("\""), text(true), n.literal("\"")}); }

  /// Up to `k` digits.
  frag digits_upto(int k) {
    frag f = n.empty();
    for (int i = 0; i < k; ++i) f = n.optional(n.seq({n.bytes(digits()), f}));
    return f;
  }

  frag integer() {
    return n.seq(
        {n.optional(n.literal("-")),
         n.alt({n.literal("0"), n.seq({n.bytes(byte_range('1', '9')), digits_upto(17)})})});
  }

  frag number() {
    frag int_part =
        n.alt({n.literal("0"), n.seq({n.bytes(byte_range('1', '9')), digits_upto(15)})});
    frag frac = n.optional(n.seq({n.literal("."), n.bytes(digits()), digits_upto(14)}));
    frag exp =
        n.optional(n.seq({n.bytes(one('e') | one('E')), n.optional(n.bytes(one('+') | one('-'))),
                          n.bytes(digits()), digits_upto(1)}));
    return n.seq({n.optional(n.literal("-")), int_part, frac, exp});
  }

  frag boolean() { return n.alt({n.literal("true"), n.literal("false")}); }

  /// Any JSON value, objects and arrays nested at most `depth` deep.
  frag generic(int depth) {
    std::vector<frag> options{json_string(), number(), boolean(), n.literal("null")};
    if (depth > 0) {
      frag pair = n.seq({json_string(), n.literal(": "), generic(depth - 1)});
      options.push_back(
          n.alt({n.literal("{}"),
                 n.seq({n.literal("{"), n.list(pair, n.literal(", ")), n.literal("}")})}));
      frag item = generic(depth - 1);
      options.push_back(
          n.alt({n.literal("[]"),
                 n.seq({n.literal("["), n.list(item, n.literal(", ")), n.literal("]")})}));
    }
    return n.alt(options);
  }

  std::vector<std::string> types_of(const json::object& o) {
    std::vector<std::string> types;
    if (const json::value* t = o.if_contains("type")) {
      if (t->is_string()) types.emplace_back(t->get_string());
      if (t->is_array()) {
        for (const auto& x : t->get_array())
          if (x.is_string()) types.emplace_back(x.get_string());
      }
    }
    if (types.empty() && o.contains("properties")) types.emplace_back("object");
    if (types.empty() && o.contains("items")) types.emplace_back("array");
    return types;
  }

  /// Alternatives from `const`, `enum`, `anyOf`/`oneOf`; nullopt when the schema has none.
  template <typename F>
  std::optional<frag> choices(const json::object& o, bool raw, F&& branch) {
    if (const json::value* c = o.if_contains("const"))
      return n.literal(raw ? raw_text(*c) : json::serialize(*c));
    if (const json::value* e = o.if_contains("enum");
        e && e->is_array() && !e->get_array().empty()) {
      std::vector<frag> opts;
      for (const auto& v : e->get_array())
        opts.push_back(n.literal(raw ? raw_text(v) : json::serialize(v)));
      return n.alt(opts);
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (const json::value* a = o.if_contains(key);
          a && a->is_array() && !a->get_array().empty()) {
        std::vector<frag> opts;
        for (const auto& v : a->get_array()) opts.push_back(branch(v));
        return n.alt(opts);
      }
    }
    return std::nullopt;
  }

  frag json_value(const json::value& schema, int depth) {
    if (depth > max_depth) throw std::invalid_argument("tool schema nested deeper than 8 levels");
    if (!schema.is_object()) return generic(generic_depth - 1);
    const json::object& o = schema.get_object();
    if (auto c = choices(o, false, [&](const json::value& b) { return json_value(b, depth + 1); }))
      return *c;
    const auto types = types_of(o);
    if (types.empty()) return generic(generic_depth - 1);
    std::vector<frag> opts;
    for (const auto& t : types) opts.push_back(typed(o, t, depth, false));
    return n.alt(opts);
  }

  frag typed(const json::object& o, const std::string& t, int depth, bool raw) {
    if (t == "string") return raw ? text(false) : json_string();
    if (t == "integer") return integer();
    if (t == "number") return number();
    if (t == "boolean") return boolean();
    if (t == "null") return n.literal("null");
    if (t == "object") return object(o, depth);
    if (t == "array") return array(o, depth);
    return raw ? text(false) : generic(generic_depth - 1);
  }

  frag object(const json::object& o, int depth) {
    const json::object* props = object_at(o, "properties");
    if (const json::value* extra = o.if_contains("additionalProperties");
        (!props || props->empty()) && extra && extra->is_bool() && !extra->get_bool())
      return n.literal("{}");
    if (!props || props->empty()) return generic_object(depth);
    std::vector<frag> parts{n.literal("{")};
    bool first = true;
    for (const auto& [k, v] : *props) {
      parts.push_back(n.literal(fmt::format("{}{}: ", first ? "" : ", ",
                                            json::serialize(json::value(json::string_view(k))))));
      parts.push_back(json_value(v, depth + 1));
      first = false;
    }
    parts.push_back(n.literal("}"));
    return n.seq(parts);
  }

  frag generic_object(int depth) {
    frag pair = n.seq({json_string(), n.literal(": "),
                       generic(std::max(0, std::min(generic_depth, max_depth - depth) - 1))});
    return n.alt(
        {n.literal("{}"), n.seq({n.literal("{"), n.list(pair, n.literal(", ")), n.literal("}")})});
  }

  frag array(const json::object& o, int depth) {
    const json::value* items = o.if_contains("items");
    frag item = items ? json_value(*items, depth + 1) : generic(generic_depth - 1);
    return n.alt(
        {n.literal("[]"), n.seq({n.literal("["), n.list(item, n.literal(", ")), n.literal("]")})});
  }

  /// A parameter's value as the template writes it (scalars as text, objects as JSON).
  frag raw_value(const json::value& schema, int depth) {
    if (!schema.is_object()) return text(false);
    const json::object& o = schema.get_object();
    if (auto c = choices(o, true, [&](const json::value& b) { return raw_value(b, depth + 1); }))
      return *c;
    const auto types = types_of(o);
    if (types.empty()) return text(false);
    std::vector<frag> opts;
    for (const auto& t : types) opts.push_back(typed(o, t, depth, true));
    return n.alt(opts);
  }

  /// A JSON call (Qwen3 / Hermes): `<tool_call>\n{"name": "NAME", "arguments":
  /// {...}}\n</tool_call>`, the declared properties in schema order, required ones always, optional
  /// ones maybe.
  frag call_json(const tool_spec& tool) {
    const json::object params = model::parameters_object(tool);
    const std::vector<std::string> required = required_of(params);
    // Two tracks: `none` before any member is written, `some` after (members need ", ").
    int32_t none = n.add_state();
    int32_t some = n.add_state();
    const int32_t start = none;
    if (const json::object* props = object_at(params, "properties")) {
      for (const auto& [k, v] : *props) {
        const std::string key = json::serialize(json::value(json::string_view(k)));
        const bool req =
            std::find(required.begin(), required.end(), std::string(k)) != required.end();
        const int32_t none2 = n.add_state(), some2 = n.add_state();
        const frag first = n.seq({n.literal(key + ": "), json_value(v, 1)});
        const frag later = n.seq({n.literal(", " + key + ": "), json_value(v, 1)});
        n.add_eps(none, first.begin);
        n.add_eps(first.end, some2);
        n.add_eps(some, later.begin);
        n.add_eps(later.end, some2);
        if (!req) {
          n.add_eps(none, none2);
          n.add_eps(some, some2);
        }
        none = none2;
        some = some2;
      }
    }
    const int32_t done = n.add_state();
    n.add_eps(none, done);
    n.add_eps(some, done);
    const frag head = n.literal(
        "<tool_call>\n{\"name\": " + json::serialize(json::value(json::string_view(tool.name))) +
        ", \"arguments\": {");
    const frag tail = n.literal("}}\n</tool_call>");
    n.add_eps(head.end, start);
    n.add_eps(done, tail.begin);
    return {head.begin, tail.end};
  }

  static std::vector<std::string> required_of(const json::object& params) {
    std::vector<std::string> required;
    if (const json::value* r = params.if_contains("required"); r && r->is_array()) {
      for (const auto& x : r->get_array())
        if (x.is_string()) required.emplace_back(x.get_string());
    }
    return required;
  }

  frag call(const tool_spec& tool, model::tool_call_format format) {
    if (format == model::tool_call_format::hermes_json) return call_json(tool);
    const json::object params = model::parameters_object(tool);
    std::vector<frag> parts{n.literal("<tool_call>\n<function=" + tool.name + ">\n")};
    const std::vector<std::string> required = required_of(params);
    if (const json::object* props = object_at(params, "properties")) {
      for (const auto& [k, v] : *props) {
        const std::string key(k);
        frag p = n.seq({n.literal("<parameter=" + key + ">\n"), raw_value(v, 1),
                        n.literal("\n</parameter>\n")});
        const bool req = std::find(required.begin(), required.end(), key) != required.end();
        parts.push_back(req ? p : n.optional(p));
      }
    }
    parts.push_back(n.literal("</function>\n</tool_call>"));
    return n.seq(parts);
  }
};

}  // namespace

dfa tool_call_dfa(const std::vector<tool_spec>& tools, const std::string& only,
                  model::tool_call_format format, bool one_call) {
  if (tools.empty()) throw std::invalid_argument("constrained tool calls need at least one tool");
  builder b;
  frag top;
  if (!only.empty()) {
    const tool_spec* t = nullptr;
    for (const auto& x : tools)
      if (x.name == only) t = &x;
    if (!t) throw std::invalid_argument(fmt::format("no tool named '{}'", only));
    top = b.call(*t, format);
  } else {
    std::vector<frag> calls;
    for (const auto& t : tools) calls.push_back(b.call(t, format));
    top = one_call ? b.n.alt(calls) : b.n.list(b.n.alt(calls), b.n.literal("\n"));
  }
  return dfa::from_nfa(b.n, top.begin, top.end);
}

dfa json_value_dfa(const std::string& schema) {
  builder b;
  frag top;
  if (schema.empty()) {
    top = b.generic_object(0);
  } else {
    const json::value s = json::parse(schema);
    check_enforceable(s, "schema");
    top = b.json_value(s, 0);
  }
  return dfa::from_nfa(b.n, top.begin, top.end);
}

std::shared_ptr<const token_constraint> constraint_cache::get_json(
    std::shared_ptr<const vocabulary> vocab, const std::string& schema,
    const std::vector<int32_t>& end_tokens) {
  std::string key = fmt::format("{}|json|", static_cast<const void*>(vocab.get()));
  for (int32_t t : end_tokens) key += fmt::format("{},", t);
  key += '\x1f' + schema;
  return lookup(key, [&] {
    return std::make_shared<const token_constraint>(vocab, json_value_dfa(schema), end_tokens);
  });
}

std::shared_ptr<const token_constraint> constraint_cache::lookup(
    const std::string& key, const std::function<std::shared_ptr<const token_constraint>()>& make) {
  {
    std::lock_guard lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->key == key) {
        entries_.splice(entries_.begin(), entries_, it);
        return entries_.front().value;
      }
    }
  }
  auto compiled = make();
  std::lock_guard lock(mu_);
  ++compiles_;
  entries_.push_front({key, compiled});
  while (entries_.size() > capacity_) entries_.pop_back();
  return compiled;
}

std::shared_ptr<const token_constraint> constraint_cache::get(
    std::shared_ptr<const vocabulary> vocab, const std::vector<tool_spec>& tools,
    const std::string& only, const std::vector<int32_t>& end_tokens, model::tool_call_format format,
    bool one_call) {
  std::string key = fmt::format("{}|{}|{}|{}|", static_cast<const void*>(vocab.get()), only,
                                static_cast<int>(format), one_call);
  for (int32_t t : end_tokens) key += fmt::format("{},", t);
  for (const auto& t : tools) {
    key += '\x1f' + t.name + '\x1e' + t.parameters;
  }
  return lookup(key, [&] {
    return std::make_shared<const token_constraint>(
        vocab, tool_call_dfa(tools, only, format, one_call), end_tokens);
  });
}

size_t constraint_cache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

uint64_t constraint_cache::compiles() const {
  std::lock_guard lock(mu_);
  return compiles_;
}

}  // namespace conclave::engine::constrained
