// Encoding responses exactly as OpenAI sends them: chunk objects for SSE (role first,
// then deltas, then the finish chunk and, when asked, a usage chunk) and one object for
// non-streamed requests.
#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>

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
  return json::serialize(json::object{{"error", e}});
}

response_writer::response_writer(const decoded_request& d, std::string model, int64_t created)
    : chat_(d.req.type == actors::generation_request::kind::chat),
      include_usage_(d.include_usage),
      id_(d.req.id),
      model_(std::move(model)),
      created_(created) {}

std::string response_writer::chunk(const std::string& body, const char* finish_reason) const {
  const std::string fr = finish_reason ? json_string(finish_reason) : "null";
  const std::string choice =
      chat_
          ? fmt::format(R"({{"index":0,"delta":{},"logprobs":null,"finish_reason":{}}})", body, fr)
          : fmt::format(R"({{"index":0,"text":{},"logprobs":null,"finish_reason":{}}})", body, fr);
  return fmt::format(R"({{"id":{},"object":"{}","created":{},"model":{},"choices":[{}]{}}})",
                     json_string(id_), chat_ ? "chat.completion.chunk" : "text_completion",
                     created_, json_string(model_), choice,
                     include_usage_ ? R"(,"usage":null)" : "");
}

std::vector<std::string> response_writer::stream_event(const actors::client_event& e) {
  using kind = actors::client_event::kind;
  accumulate(e);
  std::vector<std::string> out;
  switch (e.type) {
    case kind::started:
      if (chat_) out.push_back(chunk(R"({"role":"assistant","content":""})", nullptr));
      break;
    case kind::content:
      out.push_back(chunk(
          chat_ ? fmt::format(R"({{"content":{}}})", json_string(e.text)) : json_string(e.text),
          nullptr));
      break;
    case kind::tool_call_start:
      out.push_back(chunk(
          fmt::format(
              R"({{"tool_calls":[{{"index":{},"id":{},"type":"function","function":{{"name":{},"arguments":""}}}}]}})",
              e.index, json_string(e.call_id), json_string(e.name)),
          nullptr));
      break;
    case kind::tool_call_arguments:
      out.push_back(
          chunk(fmt::format(R"({{"tool_calls":[{{"index":{},"function":{{"arguments":{}}}}}]}})",
                            e.index, json_string(e.text)),
                nullptr));
      break;
    case kind::tool_call_end:
      break;
    case kind::finished: {
      out.push_back(chunk(chat_ ? "{}" : "\"\"", e.finish_reason.c_str()));
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

void response_writer::accumulate(const actors::client_event& e) {
  using kind = actors::client_event::kind;
  switch (e.type) {
    case kind::started:
      usage_.prompt_tokens = e.tokens.prompt_tokens;
      break;
    case kind::content:
      content_ += e.text;
      break;
    case kind::tool_call_start:
      if (calls_.size() <= e.index) calls_.resize(e.index + 1);
      calls_[e.index].id = e.call_id;
      calls_[e.index].name = e.name;
      break;
    case kind::tool_call_arguments:
      if (calls_.size() <= e.index) calls_.resize(e.index + 1);
      calls_[e.index].arguments += e.text;
      break;
    case kind::tool_call_end:
      break;
    case kind::finished:
      finish_reason_ = e.finish_reason;
      usage_ = e.tokens;
      break;
    case kind::error:
      break;
  }
}

std::string response_writer::final_json() const {
  json::object usage{{"prompt_tokens", usage_.prompt_tokens},
                     {"completion_tokens", usage_.completion_tokens},
                     {"total_tokens", usage_.prompt_tokens + usage_.completion_tokens}};
  json::object choice{{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason_}};
  if (chat_) {
    json::object message{{"role", "assistant"}, {"content", nullptr}};
    if (!content_.empty() || calls_.empty()) message["content"] = content_;
    if (!calls_.empty()) {
      json::array calls;
      for (const auto& c : calls_) {
        calls.push_back(
            json::object{{"id", c.id},
                         {"type", "function"},
                         {"function", json::object{{"name", c.name}, {"arguments", c.arguments}}}});
      }
      message["tool_calls"] = std::move(calls);
    }
    choice["message"] = std::move(message);
  } else {
    choice["text"] = content_;
  }
  json::object r{{"id", id_},
                 {"object", chat_ ? "chat.completion" : "text_completion"},
                 {"created", created_},
                 {"model", model_},
                 {"choices", json::array{std::move(choice)}},
                 {"usage", std::move(usage)}};
  return json::serialize(r);
}

std::string models_json(const std::string& served_model, int64_t created, int64_t max_model_len) {
  json::object m{{"id", served_model},
                 {"object", "model"},
                 {"created", created},
                 {"owned_by", "conclave"},
                 {"max_model_len", max_model_len}};
  return json::serialize(json::object{{"object", "list"}, {"data", json::array{std::move(m)}}});
}

}  // namespace conclave::net
