// Decoding OpenAI request bodies. Unknown fields are ignored (SDKs send many); known
// fields are type- and range-checked, and the error names the field as OpenAI does.
#include <spdlog/fmt/fmt.h>

#include <boost/json.hpp>
#include <charconv>
#include <cmath>

#include "model/pytext/json_exact.h"
#include "model/tool_spec_json.h"
#include "net/openai_protocol.h"

namespace conclave::net {
namespace json = boost::json;
namespace {

struct bad_field {
  api_error err;
};

[[noreturn]] void fail(std::string param, std::string message, int status = 400,
                       std::string code = {}) {
  api_error e;
  e.status = status;
  e.param = std::move(param);
  e.message = std::move(message);
  e.code = std::move(code);
  throw bad_field{std::move(e)};
}

const json::value* field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return nullptr;
  return &it->value();
}

std::string get_string(const json::object& o, std::string_view key, const std::string& param) {
  const json::value* v = field(o, key);
  if (v == nullptr) return {};
  if (!v->is_string()) fail(param, fmt::format("'{}' must be a string", param));
  return std::string(v->get_string());
}

std::optional<double> get_number(const json::object& o, std::string_view key, double lo, double hi,
                                 bool lo_open = false) {
  const json::value* v = field(o, key);
  if (v == nullptr) return std::nullopt;
  double d = 0;
  if (v->is_double()) {
    d = v->get_double();
  } else if (v->is_int64()) {
    d = static_cast<double>(v->get_int64());
  } else if (v->is_uint64()) {
    d = static_cast<double>(v->get_uint64());
  } else {
    fail(std::string(key), fmt::format("'{}' must be a number", key));
  }
  if (!std::isfinite(d) || d < lo || d > hi || (lo_open && d == lo)) {
    fail(std::string(key),
         fmt::format("'{}' must be {} {} and <= {}, got {}", key, lo_open ? ">" : ">=", lo, hi, d));
  }
  return d;
}

std::optional<int64_t> get_int(const json::object& o, std::string_view key, int64_t lo,
                               int64_t hi) {
  const json::value* v = field(o, key);
  if (v == nullptr) return std::nullopt;
  int64_t i = 0;
  if (v->is_int64()) {
    i = v->get_int64();
  } else if (v->is_uint64()) {
    i = v->get_uint64() > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX
                                                           : static_cast<int64_t>(v->get_uint64());
  } else if (v->is_double() && std::floor(v->get_double()) == v->get_double() &&
             std::abs(v->get_double()) < 9e15) {
    i = static_cast<int64_t>(v->get_double());
  } else {
    fail(std::string(key), fmt::format("'{}' must be an integer", key));
  }
  if (i < lo || i > hi)
    fail(std::string(key), fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, i));
  return i;
}

bool get_bool(const json::object& o, std::string_view key) {
  const json::value* v = field(o, key);
  if (v == nullptr) return false;
  if (!v->is_bool()) fail(std::string(key), fmt::format("'{}' must be a boolean", key));
  return v->get_bool();
}

json::object parse_body(std::string_view body) {
  // Exact number parsing: schema numbers reach the prompt as Python would print them.
  boost::system::error_code ec;
  json::value v = pytext::parse_json_exact(body, ec);
  if (ec) fail({}, fmt::format("the request body is not valid JSON: {}", ec.message()));
  if (!v.is_object()) fail({}, "the request body must be a JSON object");
  return std::move(v.get_object());
}

void check_model(const json::object& o, const protocol_context& ctx,
                 serve::generation_request& req) {
  const json::value* m = field(o, "model");
  if (m == nullptr) fail("model", "you must provide a model parameter");
  if (!m->is_string()) fail("model", "'model' must be a string");
  req.model = std::string(m->get_string());
  if (ctx.resolve_model) {
    auto served = ctx.resolve_model(req.model);
    if (!served)
      fail("model",
           fmt::format("The model '{}' does not exist (GET /v1/models lists the models served)",
                       req.model),
           404, "model_not_found");
    req.model = std::move(*served);
  } else if (req.model != ctx.served_model) {
    fail("model",
         fmt::format("The model '{}' does not exist; this server serves '{}'", req.model,
                     ctx.served_model),
         404, "model_not_found");
  }
}

/// OpenAI fields that would change what comes back but that conclave cannot honour: a 400
/// naming them rather than a silent difference. (Fields that change nothing here, such as
/// `user`, `store`, `metadata`, `service_tier`, `prediction`, are ignored: serving.md.)
void refuse_unsupported(const json::object& o, bool chat) {
  if (chat) {
    for (const char* legacy : {"functions", "function_call"}) {
      if (const json::value* v = field(o, legacy); v && !v->is_null())
        fail(legacy,
             fmt::format("'{}' is the deprecated form of tools; use 'tools' and 'tool_choice'",
                         legacy));
    }
    if (const json::value* m = field(o, "modalities"); m && !m->is_null()) {
      bool text_only = m->is_array();
      if (text_only)
        for (const auto& x : m->get_array())
          text_only = text_only && x.is_string() && x.get_string() == "text";
      if (!text_only) fail("modalities", "only the \"text\" modality is supported");
    }
    for (const char* unsupported : {"audio", "web_search_options"}) {
      if (const json::value* v = field(o, unsupported); v && !v->is_null())
        fail(unsupported, fmt::format("'{}' is not supported", unsupported));
    }
  } else if (auto best = get_int(o, "best_of", 1, 128); best && *best != 1) {
    fail("best_of", "only best_of = 1 is supported");
  }
}

/// Sampling and length fields shared by both endpoints.
void decode_sampling(const json::object& o, decoded_request& d, bool chat) {
  auto& s = d.req.sampling;
  s.temperature = static_cast<float>(get_number(o, "temperature", 0.0, 2.0).value_or(1.0));
  s.top_p = static_cast<float>(get_number(o, "top_p", 0.0, 1.0, true).value_or(1.0));
  const int64_t top_k = get_int(o, "top_k", -1, 1 << 30).value_or(0);
  s.top_k = top_k < 0 ? 0 : static_cast<int32_t>(top_k);
  s.min_p = static_cast<float>(get_number(o, "min_p", 0.0, 1.0).value_or(0.0));
  s.repetition_penalty =
      static_cast<float>(get_number(o, "repetition_penalty", 0.0, 10.0, true).value_or(1.0));
  s.presence_penalty =
      static_cast<float>(get_number(o, "presence_penalty", -2.0, 2.0).value_or(0.0));
  s.frequency_penalty =
      static_cast<float>(get_number(o, "frequency_penalty", -2.0, 2.0).value_or(0.0));
  if (auto seed = get_int(o, "seed", INT64_MIN, INT64_MAX)) s.seed = static_cast<uint64_t>(*seed);
  std::optional<int64_t> max_tokens;
  if (chat) max_tokens = get_int(o, "max_completion_tokens", 1, INT32_MAX);
  if (!max_tokens) max_tokens = get_int(o, "max_tokens", 1, INT32_MAX);
  if (max_tokens) d.max_tokens = static_cast<int32_t>(*max_tokens);
  if (auto n = get_int(o, "n", 1, 128)) d.req.n = static_cast<int32_t>(*n);
  refuse_unsupported(o, chat);
  s.ignore_eos = get_bool(o, "ignore_eos");
  if (const json::value* stop = field(o, "stop")) {
    if (stop->is_string()) {
      d.req.stop.emplace_back(stop->get_string());
    } else if (stop->is_array()) {
      if (stop->get_array().size() > 4) fail("stop", "'stop' may hold at most 4 sequences");
      for (const auto& x : stop->get_array()) {
        if (!x.is_string()) fail("stop", "'stop' must be a string or an array of strings");
        d.req.stop.emplace_back(x.get_string());
      }
    } else {
      fail("stop", "'stop' must be a string or an array of strings");
    }
  }
  if (const json::value* lb = field(o, "logit_bias"); lb && !lb->is_null()) {
    if (!lb->is_object() || lb->get_object().size() > 1024)
      fail("logit_bias", "'logit_bias' must be an object of at most 1024 token ids to biases");
    for (const auto& kv : lb->get_object()) {
      const std::string key(kv.key());
      int64_t id = -1;
      const auto r = std::from_chars(key.data(), key.data() + key.size(), id);
      if (r.ec != std::errc() || r.ptr != key.data() + key.size() || id < 0 || id > INT32_MAX)
        fail("logit_bias", fmt::format("'logit_bias' keys must be token ids, got \"{}\"", key));
      if (!kv.value().is_number() || !(std::fabs(kv.value().to_number<double>()) <= 100.0))
        fail("logit_bias",
             fmt::format("'logit_bias[\"{}\"]' must be a number in [-100, 100]", key));
      s.logit_bias.emplace_back(static_cast<int32_t>(id),
                                static_cast<float>(kv.value().to_number<double>()));
    }
  }
  if (const json::value* ids = field(o, "stop_token_ids")) {
    if (!ids->is_array()) fail("stop_token_ids", "'stop_token_ids' must be an array of integers");
    for (const auto& x : ids->get_array()) {
      if (!x.is_int64()) fail("stop_token_ids", "'stop_token_ids' must be an array of integers");
      s.stop_token_ids.push_back(static_cast<int32_t>(x.get_int64()));
    }
  }
  d.stream = get_bool(o, "stream");
  if (const json::value* so = field(o, "stream_options")) {
    if (!so->is_object()) fail("stream_options", "'stream_options' must be an object");
    d.include_usage = get_bool(so->get_object(), "include_usage");
  }
  if (chat) {
    // Chat: "logprobs": true turns them on; "top_logprobs" (0-20) adds alternatives.
    const bool want = get_bool(o, "logprobs");
    const auto top = get_int(o, "top_logprobs", 0, serve::max_top_logprobs);
    if (top && !want) fail("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    if (want) s.logprobs = static_cast<int32_t>(top.value_or(0));
  } else if (const auto n = get_int(o, "logprobs", 0, serve::max_top_logprobs)) {
    // Completions: "logprobs": N is the number of alternatives per token.
    s.logprobs = static_cast<int32_t>(*n);
  }
  get_string(o, "user", "user");
}

chat::message decode_message(const json::value& v, size_t i) {
  const std::string p = fmt::format("messages[{}]", i);
  if (!v.is_object()) fail(p, fmt::format("'{}' must be an object", p));
  const json::object& o = v.get_object();
  chat::message m;
  const json::value* role = field(o, "role");
  if (role == nullptr || !role->is_string())
    fail(p + ".role", fmt::format("'{}.role' must be a string", p));
  std::string_view r = role->get_string();
  if (r == "developer") r = "system";
  m.r = chat::parse_role(r, i);
  const json::value* content = field(o, "content");
  if (content == nullptr) {
    m.content_is_null = true;
  } else if (content->is_string()) {
    m.content_parts.emplace_back(content->get_string());
  } else if (content->is_array()) {
    size_t k = 0;
    for (const auto& part : content->get_array()) {
      const std::string pp = fmt::format("{}.content[{}]", p, k++);
      if (!part.is_object()) fail(pp, fmt::format("'{}' must be an object", pp));
      const auto& po = part.get_object();
      if (get_string(po, "type", pp + ".type") != "text") {
        fail(pp + ".type", "only text content parts are supported");
      }
      m.content_parts.push_back(get_string(po, "text", pp + ".text"));
    }
  } else {
    fail(p + ".content",
         fmt::format("'{}.content' must be a string, an array of text parts or null", p));
  }
  if (const json::value* calls = field(o, "tool_calls")) {
    if (!calls->is_array()) fail(p + ".tool_calls", "'tool_calls' must be an array");
    size_t k = 0;
    for (const auto& c : calls->get_array()) {
      const std::string cp = fmt::format("{}.tool_calls[{}]", p, k++);
      if (!c.is_object()) fail(cp, fmt::format("'{}' must be an object", cp));
      const auto& co = c.get_object();
      const json::value* fn = field(co, "function");
      if (fn == nullptr || !fn->is_object()) fail(cp + ".function", "'function' must be an object");
      chat::tool_call tc;
      tc.id = get_string(co, "id", cp + ".id");
      tc.name = get_string(fn->get_object(), "name", cp + ".function.name");
      tc.arguments = get_string(fn->get_object(), "arguments", cp + ".function.arguments");
      if (tc.name.empty()) fail(cp + ".function.name", "a tool call needs a function name");
      m.tool_calls.push_back(std::move(tc));
    }
  }
  if (const json::value* rc = field(o, "reasoning_content"); rc && !rc->is_null()) {
    if (!rc->is_string() || m.r != chat::role::assistant)
      fail(p + ".reasoning_content",
           "'reasoning_content' must be a string, on an assistant message");
    m.reasoning_content = std::string(rc->get_string());
  }
  m.tool_call_id = get_string(o, "tool_call_id", p + ".tool_call_id");
  m.name = get_string(o, "name", p + ".name");
  return m;
}

bool valid_tool_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

/// `response_format`: {"type": "text"}, {"type": "json_object"} or {"type": "json_schema",
/// "json_schema": {"name", "schema", "strict", "description"}}.
void decode_response_format(const json::object& o, serve::generation_request& req) {
  const json::value* rf = field(o, "response_format");
  if (rf == nullptr || rf->is_null()) return;
  if (!rf->is_object()) fail("response_format", "'response_format' must be an object");
  const std::string type = get_string(rf->get_object(), "type", "response_format.type");
  using kind = serve::generation_request::response_kind;
  if (type == "text") return;
  if (type == "json_object") {
    req.response_format = kind::json_object;
    return;
  }
  if (type != "json_schema")
    fail("response_format.type", "'response_format.type' must be text, json_object or json_schema");
  const json::value* js = field(rf->get_object(), "json_schema");
  if (js == nullptr || !js->is_object())
    fail("response_format.json_schema", "'response_format.json_schema' must be an object");
  const std::string name = get_string(js->get_object(), "name", "response_format.json_schema.name");
  if (name.empty() || !valid_tool_name(name))
    fail("response_format.json_schema.name",
         "'response_format.json_schema.name' must be 1-64 characters of a-z, A-Z, 0-9, _, - or .");
  const json::value* schema = field(js->get_object(), "schema");
  if (schema == nullptr || !schema->is_object())
    fail("response_format.json_schema.schema",
         "'response_format.json_schema.schema' must be an object");
  req.response_format = kind::json_schema;
  req.response_schema = json::serialize(*schema);
}

void decode_tools(const json::object& o, serve::generation_request& req) {
  if (const json::value* tools = field(o, "tools")) {
    if (!tools->is_array()) fail("tools", "'tools' must be an array");
    size_t i = 0;
    for (const auto& t : tools->get_array()) {
      const std::string p = fmt::format("tools[{}]", i++);
      if (!t.is_object()) fail(p, fmt::format("'{}' must be an object", p));
      const auto& to = t.get_object();
      if (get_string(to, "type", p + ".type") != "function")
        fail(p + ".type", "only 'function' tools are supported");
      const json::value* fn = field(to, "function");
      if (fn == nullptr || !fn->is_object())
        fail(p + ".function", fmt::format("'{}.function' must be an object", p));
      const auto& fo = fn->get_object();
      model::tool_spec tool;
      tool.name = get_string(fo, "name", p + ".function.name");
      if (!valid_tool_name(tool.name)) {
        fail(p + ".function.name",
             "function names must be 1-64 characters of a-z, A-Z, 0-9, _, - or .");
      }
      if (const json::value* d = field(fo, "description")) {
        if (!d->is_string()) fail(p + ".function.description", "'description' must be a string");
        tool.description = std::string(d->get_string());
      }
      if (const json::value* params = field(fo, "parameters")) {
        if (!params->is_object())
          fail(p + ".function.parameters", "'parameters' must be a JSON schema object");
        const auto& po = params->get_object();
        if (const json::value* type = field(po, "type");
            type && (!type->is_string() || type->get_string() != "object")) {
          fail(p + ".function.parameters.type", "the parameters schema must have type 'object'");
        }
        if (const json::value* props = field(po, "properties"); props && !props->is_object()) {
          fail(p + ".function.parameters.properties", "'properties' must be an object");
        }
        model::set_parameters(tool, po);
      }
      req.tools.push_back(std::move(tool));
    }
  }
  // Extension (docs/tools.md): server-side tools by name, and later rounds' tool_choice.
  for (const char* key : {"server_tools", "server_tool_choices"}) {
    const json::value* v = field(o, key);
    if (v == nullptr) continue;
    if (!v->is_array() || v->get_array().size() > 16)
      fail(key, fmt::format("'{}' must be an array of at most 16 strings", key));
    auto& out =
        std::string_view(key) == "server_tools" ? req.server_tools : req.server_tool_choices;
    size_t i = 0;
    for (const auto& x : v->get_array()) {
      const std::string p = fmt::format("{}[{}]", key, i++);
      if (!x.is_string() || !valid_tool_name(x.get_string()))
        fail(p, fmt::format("'{}' must be a tool name", p));
      out.emplace_back(x.get_string());
    }
  }
  if (const json::value* tc = field(o, "tool_choice")) {
    if (tc->is_string()) {
      const std::string_view s = tc->get_string();
      if (s == "none") {
        req.tool_choice = serve::tool_choice_mode::none;
      } else if (s == "auto") {
        req.tool_choice = serve::tool_choice_mode::auto_;
      } else if (s == "required") {
        req.tool_choice = serve::tool_choice_mode::required;
      } else {
        fail("tool_choice", "'tool_choice' must be none, auto, required or a function object");
      }
    } else if (tc->is_object()) {
      const json::value* fn = field(tc->get_object(), "function");
      if (fn == nullptr || !fn->is_object())
        fail("tool_choice.function", "'tool_choice.function' must be an object");
      req.tool_choice = serve::tool_choice_mode::function;
      req.tool_choice_name = get_string(fn->get_object(), "name", "tool_choice.function.name");
      bool found = false;
      for (const auto& t : req.tools) found |= t.name == req.tool_choice_name;
      for (const auto& t : req.server_tools) found |= t == req.tool_choice_name;
      if (!found)
        fail("tool_choice.function.name",
             fmt::format("no tool named '{}' in 'tools'", req.tool_choice_name));
    } else {
      fail("tool_choice", "'tool_choice' must be a string or an object");
    }
    if (req.tool_choice == serve::tool_choice_mode::required && req.tools.empty() &&
        req.server_tools.empty()) {
      fail("tool_choice", "'tool_choice' is 'required' but no tools were given");
    }
  }
}

}  // namespace

std::variant<decoded_request, api_error> decode_chat_request(std::string_view body,
                                                             const protocol_context& ctx) {
  try {
    return decode_chat_request(parse_body(body), ctx);
  } catch (const bad_field& e) {
    return e.err;
  }
}

std::variant<decoded_request, api_error> decode_completion_request(std::string_view body,
                                                                   const protocol_context& ctx) {
  try {
    return decode_completion_request(parse_body(body), ctx);
  } catch (const bad_field& e) {
    return e.err;
  }
}

std::variant<decoded_request, api_error> decode_chat_request(const json::object& o,
                                                             const protocol_context& ctx) {
  try {
    decoded_request d;
    d.req.type = serve::generation_request::kind::chat;
    check_model(o, ctx, d.req);
    const json::value* msgs = field(o, "messages");
    if (msgs == nullptr) fail("messages", "you must provide a 'messages' parameter");
    if (!msgs->is_array() || msgs->get_array().empty())
      fail("messages", "'messages' must be a non-empty array");
    size_t i = 0;
    for (const auto& m : msgs->get_array()) d.req.messages.push_back(decode_message(m, i++));
    decode_tools(o, d.req);
    decode_response_format(o, d.req);
    if (const json::value* kw = field(o, "chat_template_kwargs"); kw && !kw->is_null()) {
      if (!kw->is_object())
        fail("chat_template_kwargs", "'chat_template_kwargs' must be an object");
      d.req.chat_template_kwargs = json::serialize(*kw);
    }
    if (const json::value* ptc = field(o, "parallel_tool_calls"); ptc && !ptc->is_null()) {
      if (!ptc->is_bool()) fail("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
      d.req.parallel_tool_calls = ptc->get_bool();
    }
    if (const json::value* agp = field(o, "add_generation_prompt"); agp && !agp->is_null()) {
      if (!agp->is_bool())
        fail("add_generation_prompt", "'add_generation_prompt' must be a boolean");
      d.req.add_generation_prompt = agp->get_bool();
    }
    decode_sampling(o, d, true);
    return d;
  } catch (const bad_field& e) {
    return e.err;
  } catch (const chat::chat_error& e) {
    api_error err;
    err.message = e.what();
    err.param = e.param();
    return err;
  }
}

std::variant<decoded_request, api_error> decode_completion_request(const json::object& o,
                                                                   const protocol_context& ctx) {
  try {
    decoded_request d;
    d.req.type = serve::generation_request::kind::completion;
    check_model(o, ctx, d.req);
    const json::value* prompt = field(o, "prompt");
    if (prompt == nullptr) fail("prompt", "you must provide a 'prompt' parameter");
    if (prompt->is_string()) {
      d.req.prompt = std::string(prompt->get_string());
      if (d.req.prompt.empty()) fail("prompt", "'prompt' must not be empty");
    } else if (prompt->is_array()) {
      const auto& arr = prompt->get_array();
      if (arr.size() == 1 && arr[0].is_string()) {
        d.req.prompt = std::string(arr[0].get_string());
      } else {
        if (arr.empty()) fail("prompt", "'prompt' must not be empty");
        for (const auto& x : arr) {
          if (!x.is_int64() || x.get_int64() < 0 || x.get_int64() > INT32_MAX) {
            fail("prompt",
                 "'prompt' must be a string, one string in an array, or an array of token ids");
          }
          d.req.prompt_ids.push_back(static_cast<int32_t>(x.get_int64()));
        }
      }
    } else {
      fail("prompt", "'prompt' must be a string or an array of token ids");
    }
    d.req.echo = get_bool(o, "echo");
    if (d.req.echo && !d.req.prompt_ids.empty()) fail("echo", "'echo' needs a text prompt");
    if (field(o, "suffix") != nullptr) fail("suffix", "'suffix' is not supported");
    decode_sampling(o, d, false);
    return d;
  } catch (const bad_field& e) {
    return e.err;
  }
}

}  // namespace conclave::net
