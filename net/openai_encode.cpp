// Encoding responses exactly as OpenAI sends them: chunk objects for SSE (role first,
// then deltas, then the finish chunk and, when asked, a usage chunk) and one object for
// non-streamed requests.
#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>

#include "model/tokenizer/unicode.h"
#include "net/openai_protocol.h"

namespace conclave::net {
namespace json = boost::json;

std::string json_string(std::string_view s) {
  return json::serialize(json::string_view(s.data(), s.size()));
}

std::string api_error::json() const {
  json::object e{{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  if (retry_after_s > 0) e["retry_after"] = retry_after_s;  // (HTTP also sends Retry-After)
  return json::serialize(json::object{{"error", e}});
}

response_writer::response_writer(const decoded_request& d, std::string model, int64_t created)
    : chat_(d.req.type == serve::generation_request::kind::chat),
      include_usage_(d.include_usage),
      id_(d.req.id),
      model_(std::move(model)),
      created_(created),
      choices_(static_cast<size_t>(std::max<int32_t>(1, d.req.n))),
      want_logprobs_(d.req.sampling.logprobs >= 0),
      streaming_(d.stream) {}

response_writer::choice_state& response_writer::state(size_t choice) {
  return choices_.at(choice < choices_.size() ? choice : 0);
}

size_t response_writer::num_tool_calls() const {
  size_t n = 0;
  for (const auto& c : choices_) n += c.calls.size();
  return n;
}

namespace {

/// Characters (code points) in valid UTF-8.
size_t code_points(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string lossy(std::string_view bytes) {
  std::string out;
  tokenizer::detail::append_utf8_lossy(out, bytes, true);
  return out;
}

json::array byte_array(std::string_view bytes) {
  json::array a;
  for (unsigned char c : bytes) a.push_back(static_cast<int64_t>(c));
  return a;
}

/// A logprob as JSON: -inf (a token the model rules out) becomes the most negative float,
/// since JSON has no infinities.
double finite(float v) {
  return std::isfinite(v) ? static_cast<double>(v) : -3.4028234663852886e38;
}

}  // namespace

std::string response_writer::logprobs_json(const std::vector<serve::logprob_entry>& entries,
                                           size_t& text_offset) {
  return json::serialize(logprobs_value(entries, text_offset));
}

boost::json::value response_writer::logprobs_value(const std::vector<serve::logprob_entry>& entries,
                                                   size_t& text_offset) {
  if (chat_) {
    json::array content;
    for (const auto& e : entries) {
      json::array top;
      for (const auto& a : e.top) {
        top.push_back(json::object{{"token", lossy(a.token)},
                                   {"logprob", finite(a.logprob)},
                                   {"bytes", byte_array(a.token)}});
      }
      content.push_back(json::object{{"token", lossy(e.token)},
                                     {"logprob", finite(e.logprob)},
                                     {"bytes", byte_array(e.token)},
                                     {"top_logprobs", std::move(top)}});
    }
    return json::object{{"content", std::move(content)}, {"refusal", nullptr}};
  }
  json::array tokens, token_logprobs, top_logprobs, offsets;
  for (const auto& e : entries) {
    const std::string text = lossy(e.token);
    tokens.push_back(json::string(text));
    token_logprobs.push_back(finite(e.logprob));
    json::object top;
    for (const auto& a : e.top) top[lossy(a.token)] = finite(a.logprob);
    top_logprobs.push_back(std::move(top));
    offsets.push_back(static_cast<int64_t>(text_offset));
    text_offset += code_points(text);
  }
  return json::object{{"tokens", std::move(tokens)},
                      {"token_logprobs", std::move(token_logprobs)},
                      {"top_logprobs", std::move(top_logprobs)},
                      {"text_offset", std::move(offsets)}};
}

std::string response_writer::chunk(size_t index, const std::string& body, const char* finish_reason,
                                   const std::vector<serve::logprob_entry>& logprobs) {
  const std::string fr = finish_reason ? json_string(finish_reason) : "null";
  const std::string lp =
      logprobs.empty() ? "null" : logprobs_json(logprobs, state(index).text_offset);
  const std::string choice =
      chat_ ? fmt::format(R"({{"index":{},"delta":{},"logprobs":{},"finish_reason":{}}})", index,
                          body, lp, fr)
            : fmt::format(R"({{"index":{},"text":{},"logprobs":{},"finish_reason":{}}})", index,
                          body, lp, fr);
  return fmt::format(R"({{"id":{},"object":"{}","created":{},"model":{},"choices":[{}]{}}})",
                     json_string(id_), chat_ ? "chat.completion.chunk" : "text_completion",
                     created_, json_string(model_), choice,
                     include_usage_ ? R"(,"usage":null)" : "");
}

std::vector<std::string> response_writer::stream_event(const serve::client_event& e) {
  using kind = serve::client_event::kind;
  accumulate(e);
  std::vector<std::string> out;
  const size_t c = e.choice;
  switch (e.type) {
    case kind::started:
      if (chat_) {
        for (size_t i = 0; i < choices_.size(); ++i)
          out.push_back(chunk(i, R"({"role":"assistant","content":""})", nullptr));
      }
      break;
    case kind::content:
      out.push_back(chunk(
          c, chat_ ? fmt::format(R"({{"content":{}}})", json_string(e.text)) : json_string(e.text),
          nullptr, e.logprobs));
      break;
    case kind::reasoning:  // chat only: completions never split reasoning
      out.push_back(chunk(c, fmt::format(R"({{"reasoning_content":{}}})", json_string(e.text)),
                          nullptr, e.logprobs));
      break;
    case kind::tool_call_start:
      out.push_back(chunk(
          c,
          fmt::format(
              R"({{"tool_calls":[{{"index":{},"id":{},"type":"function","function":{{"name":{},"arguments":""}}}}]}})",
              e.index, json_string(e.call_id), json_string(e.name)),
          nullptr));
      break;
    case kind::tool_call_arguments:
      out.push_back(
          chunk(c,
                fmt::format(R"({{"tool_calls":[{{"index":{},"function":{{"arguments":{}}}}}]}})",
                            e.index, json_string(e.text)),
                nullptr));
      break;
    case kind::tool_call_end:
      break;
    case kind::server_tool_call:
    case kind::tool_result: {
      // Server-side tools: an extension field next to an empty delta, which OpenAI
      // clients ignore (docs/tools.md).
      const bool result = e.type == kind::tool_result;
      json::object ext{{"id", e.call_id}, {"name", e.name}};
      if (result) {
        ext["outcome"] = e.tool_outcome;
        ext["content"] = e.text;
      } else {
        ext["arguments"] = e.text;
      }
      std::string ch = chunk(c, chat_ ? "{}" : "\"\"", nullptr);
      ch.pop_back();
      ch += fmt::format(R"(,"conclave":{{"{}":{}}}}})", result ? "tool_result" : "tool_call",
                        json::serialize(ext));
      out.push_back(std::move(ch));
      break;
    }
    case kind::choice_end:
      out.push_back(chunk(c, chat_ ? "{}" : "\"\"", e.finish_reason.c_str(), e.logprobs));
      break;
    case kind::finished: {
      // With n > 1 every choice's finish chunk went out with its choice_end.
      if (choices_.size() == 1)
        out.push_back(chunk(0, chat_ ? "{}" : "\"\"", e.finish_reason.c_str(), e.logprobs));
      if (include_usage_) {
        out.push_back(fmt::format(
            R"({{"id":{},"object":"{}","created":{},"model":{},"choices":[],"usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}}}})",
            json_string(id_), chat_ ? "chat.completion.chunk" : "text_completion", created_,
            json_string(model_), usage_.prompt_tokens, usage_.completion_tokens,
            usage_.prompt_tokens + usage_.completion_tokens));
      }
      break;
    }
    case kind::error: {
      api_error err;
      err.status = e.status;
      err.message = e.text;
      err.type = e.error_type;
      err.param = e.error_param;
      err.code = e.error_code;
      out.push_back(err.json());
      break;
    }
  }
  return out;
}

void response_writer::accumulate(const serve::client_event& e) {
  using kind = serve::client_event::kind;
  choice_state& st = state(e.choice);
  if (want_logprobs_ && !streaming_)
    st.logprobs.insert(st.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
  switch (e.type) {
    case kind::started:
      usage_.prompt_tokens = e.tokens.prompt_tokens;
      break;
    case kind::content:
      st.content += e.text;
      break;
    case kind::reasoning:
      st.reasoning += e.text;
      break;
    case kind::tool_call_start:
      if (st.calls.size() <= e.index) st.calls.resize(e.index + 1);
      st.calls[e.index].id = e.call_id;
      st.calls[e.index].name = e.name;
      break;
    case kind::tool_call_arguments:
      if (st.calls.size() <= e.index) st.calls.resize(e.index + 1);
      st.calls[e.index].arguments += e.text;
      break;
    case kind::tool_call_end:
      break;
    case kind::server_tool_call:
      st.server_calls.push_back({e.call_id, e.name, e.text, "", ""});
      break;
    case kind::tool_result:
      for (auto& sc : st.server_calls) {
        if (sc.id == e.call_id) {
          sc.outcome = e.tool_outcome;
          sc.content = e.text;
        }
      }
      break;
    case kind::choice_end:
      st.finish_reason = e.finish_reason;
      break;
    case kind::finished:
      if (choices_.size() == 1) st.finish_reason = e.finish_reason;
      usage_ = e.tokens;
      engine_seconds_ = e.engine_seconds;
      break;
    case kind::error:
      break;
  }
}

std::string response_writer::final_json() {
  json::object usage{{"prompt_tokens", usage_.prompt_tokens},
                     {"completion_tokens", usage_.completion_tokens},
                     {"total_tokens", usage_.prompt_tokens + usage_.completion_tokens}};
  json::array choices;
  json::array server_calls;
  for (size_t i = 0; i < choices_.size(); ++i) {
    choice_state& st = choices_[i];
    json::object choice{{"index", static_cast<int64_t>(i)},
                        {"logprobs", nullptr},
                        {"finish_reason", st.finish_reason}};
    if (want_logprobs_) {
      size_t offset = 0;
      choice["logprobs"] = logprobs_value(st.logprobs, offset);  // not via text: parsing may round
    }
    if (chat_) {
      json::object message{{"role", "assistant"}, {"content", nullptr}};
      if (!st.content.empty() || st.calls.empty()) message["content"] = st.content;
      if (!st.reasoning.empty()) message["reasoning_content"] = st.reasoning;
      if (!st.calls.empty()) {
        json::array calls;
        for (const auto& c : st.calls) {
          calls.push_back(json::object{
              {"id", c.id},
              {"type", "function"},
              {"function", json::object{{"name", c.name}, {"arguments", c.arguments}}}});
        }
        message["tool_calls"] = std::move(calls);
      }
      choice["message"] = std::move(message);
    } else {
      choice["text"] = st.content;
    }
    choices.push_back(std::move(choice));
    for (const auto& c : st.server_calls) {
      json::object sc{{"id", c.id},
                      {"name", c.name},
                      {"arguments", c.arguments},
                      {"outcome", c.outcome},
                      {"content", c.content}};
      if (choices_.size() > 1) sc["choice"] = static_cast<int64_t>(i);
      server_calls.push_back(std::move(sc));
    }
  }
  json::object r{{"id", id_},
                 {"object", chat_ ? "chat.completion" : "text_completion"},
                 {"created", created_},
                 {"model", model_},
                 {"choices", std::move(choices)},
                 {"usage", std::move(usage)}};
  if (!server_calls.empty()) r["conclave"] = json::object{{"tool_calls", std::move(server_calls)}};
  return json::serialize(r);
}

std::string models_json(const std::vector<serve::model_status>& models, int64_t created) {
  json::array data;
  for (const auto& m : models) {
    json::array aliases;
    for (const auto& a : m.aliases) aliases.emplace_back(a);
    json::object o{{"id", m.name},
                   {"object", "model"},
                   {"created", created},
                   {"owned_by", "conclave"},
                   {"max_model_len", m.max_model_len},
                   {"aliases", std::move(aliases)},
                   {"state", m.state}};
    if (!m.error.empty()) o["error"] = m.error;
    data.push_back(std::move(o));
  }
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

}  // namespace conclave::net
