// Prompts, limits and constraints of a request (see the header).
#include "serve/request_setup.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>

#include "engine/constrained/schema_check.h"
#include "model/chat/chat_template.h"
#include "model/chat/reasoning_parser.h"
#include "serve/replica_pool.h"
#include "serve/tool_constraints.h"

namespace conclave::serve {
namespace {

/// The prompt as token ids, or the error event.
/// Also sets req.output from the template and the rendered prompt.
std::optional<std::vector<int32_t>> build_prompt(generation_request& req, const model_text& text,
                                                 client_event& error) {
  const tokenizer::tokenizer& tok = *text.tok;
  try {
    if (req.type == generation_request::kind::chat) {
      const bool use_tools = req.tool_choice != tool_choice_mode::none && !req.tools.empty();
      const chat::chat_template& tmpl = text.tmpl ? *text.tmpl : chat::chat_template::builtin();
      const std::string prompt =
          tmpl.render(req.messages, use_tools ? req.tools : std::vector<model::tool_spec>{},
                      req.add_generation_prompt, req.chat_template_kwargs);
      req.output.tools = tmpl.tools();
      req.output.one_call = !req.parallel_tool_calls;
      req.output.reasoning = !tmpl.thinks()                        ? reasoning_mode::off
                             : chat::prompt_opens_thinking(prompt) ? reasoning_mode::open
                                                                   : reasoning_mode::detect;
      return tok.encode(prompt, true);
    }
    if (!req.prompt_ids.empty()) return req.prompt_ids;
    return tok.encode(req.prompt, true);
  } catch (const chat::chat_error& e) {
    error = client_event::error(400, e.what(), "invalid_request_error", e.param());
  } catch (const std::invalid_argument& e) {
    error = client_event::error(400, e.what(), "invalid_request_error", "messages");
  } catch (const std::runtime_error& e) {  // the chat template failed on this conversation
    error = client_event::error(400, std::string("chat template: ") + e.what(),
                                "invalid_request_error", "messages");
  }
  return std::nullopt;
}

/// Compiles the tool-call constraint of `req` into req.sampling (none unless tool_choice
/// is required or a function).
std::optional<client_event> set_constraint(generation_request& req, const model_text& text) {
  try {
    req.sampling.constraint = tool_constraint_for(req, text.tok, text.eos_ids);
  } catch (const std::exception& e) {  // a schema too deep or too large to compile
    return client_event::error(400, std::string("tools: ") + e.what(), "invalid_request_error",
                               "tools");
  }
  if (req.response_format == generation_request::response_kind::text) return std::nullopt;
  if (req.sampling.constraint)
    return client_event::error(400,
                               "response_format cannot be combined with tool_choice 'required' "
                               "or a named function: both would constrain the whole output",
                               "invalid_request_error", "response_format");
  const std::string param = req.response_format == generation_request::response_kind::json_schema
                                ? "response_format.json_schema"
                                : "response_format";
  try {
    req.sampling.constraint = response_constraint_for(req, text.tok, text.eos_ids);
  } catch (const engine::constrained::unsupported_schema& e) {
    return client_event::error(400, param + "." + e.what(), "invalid_request_error",
                               param + "." + e.path());
  } catch (const std::exception& e) {
    return client_event::error(400, param + ": " + e.what(), "invalid_request_error", param);
  }
  return std::nullopt;
}

/// Enables the request's server-side tools: their definitions join the request's tools.
std::optional<client_event> enable_server_tools(generation_request& req, const server_tools& tools,
                                                std::optional<server_rounds>& rounds) {
  if (req.server_tools.empty()) return std::nullopt;
  if (req.type != generation_request::kind::chat || !tools.runtime)
    return client_event::error(400, "this server has no server-side tools", "invalid_request_error",
                               "server_tools");
  std::set<std::string> names;
  for (size_t i = 0; i < req.server_tools.size(); ++i) {
    const auto& n = req.server_tools[i];
    auto t = tools.runtime->tools->find(n);
    const std::string param = fmt::format("server_tools[{}]", i);
    if (!t)
      return client_event::error(400, fmt::format("no server-side tool named '{}'", n),
                                 "invalid_request_error", param);
    for (const auto& c : req.tools) {
      if (c.name == n && !names.count(n))
        return client_event::error(400, fmt::format("'{}' is both a client and a server tool", n),
                                   "invalid_request_error", param);
    }
    if (!names.insert(n).second) continue;
    req.tools.push_back(t->definition());
  }
  for (size_t i = 0; i < req.server_tool_choices.size(); ++i) {
    const auto& c = req.server_tool_choices[i];
    bool known = c == "auto" || c == "none" || c == "required";
    for (const auto& t : req.tools) known = known || t.name == c;
    if (!known)
      return client_event::error(400, fmt::format("no tool named '{}'", c), "invalid_request_error",
                                 fmt::format("server_tool_choices[{}]", i));
  }
  rounds.emplace(std::move(names), tools.max_rounds, req.server_tool_choices);
  return std::nullopt;
}

}  // namespace

std::shared_ptr<const chat::chat_template> load_chat_template(const std::string& tokenizer_path,
                                                              const std::string& override_path) {
  using path = std::filesystem::path;
  return std::make_shared<const chat::chat_template>(chat::chat_template::for_model(
      path(tokenizer_path).parent_path(),
      override_path.empty() ? std::nullopt : std::optional<path>(override_path)));
}

std::shared_ptr<const model_text> load_model_text(const std::string& tokenizer_path,
                                                  const std::string& chat_template_path,
                                                  int64_t max_model_len,
                                                  const model::model_config& mc) {
  auto text = std::make_shared<model_text>();
  text->tok =
      std::make_shared<const tokenizer::tokenizer>(tokenizer::tokenizer::from_file(tokenizer_path));
  text->eos_ids = mc.eos_token_ids;
  text->tmpl = load_chat_template(tokenizer_path, chat_template_path);
  text->max_model_len = context_limit(max_model_len, mc.max_position_embeddings);
  return text;
}

bool parses_tool_calls(const generation_request& req) {
  return req.type == generation_request::kind::chat && req.tool_choice != tool_choice_mode::none &&
         !req.tools.empty();
}

std::optional<client_event> prepare_request(generation_request& req, const model_text& text,
                                            const server_tools& tools, prepared_request& out) {
  if (auto err = enable_server_tools(req, tools, out.rounds)) return err;
  for (const auto& [id, bias] : req.sampling.logit_bias) {
    if (static_cast<size_t>(id) >= text.tok->vocab_size())
      return client_event::error(400,
                                 fmt::format("logit_bias: token id {} is not in the vocabulary "
                                             "(size {})",
                                             id, text.tok->vocab_size()),
                                 "invalid_request_error", "logit_bias");
  }
  client_event error;
  auto prompt = build_prompt(req, text, error);
  if (!prompt) return error;
  const int64_t max_len =
      req.max_context > 0 ? std::min(text.max_model_len, req.max_context) : text.max_model_len;
  const auto n = static_cast<int64_t>(prompt->size());
  if (req.sampling.max_tokens == 0)  // not given: the rest of the context
    req.sampling.max_tokens = static_cast<int32_t>(std::max<int64_t>(max_len - n, 1));
  const int64_t want = n + req.sampling.max_tokens;
  if (want > max_len) {
    return client_event::error(
        400,
        fmt::format("This {}'s maximum context length is {} tokens. However, you requested {} "
                    "tokens ({} in the messages, {} in the completion). Please reduce the length "
                    "of the messages or completion.",
                    max_len < text.max_model_len ? "API key" : "model", max_len, want, n,
                    req.sampling.max_tokens),
        "invalid_request_error", "max_tokens", "context_length_exceeded");
  }
  if (auto err = set_constraint(req, text)) return err;
  // Constrained output is exactly the call or the JSON from its first token: no thoughts
  // to split off (a thinking template's open block stays unused).
  if (req.sampling.constraint) req.output.reasoning = reasoning_mode::off;
  out.prompt = std::move(*prompt);
  return std::nullopt;
}

std::optional<client_event> prepare_next_round(generation_request& req, const model_text& text,
                                               std::vector<int32_t>& prompt) {
  prompt.clear();
  client_event error;
  auto next = build_prompt(req, text, error);
  if (!next) return error;
  const int64_t want = static_cast<int64_t>(next->size()) + req.sampling.max_tokens;
  if (want > text.max_model_len) return std::nullopt;
  if (auto err = set_constraint(req, text)) return err;
  if (req.sampling.constraint) req.output.reasoning = reasoning_mode::off;
  prompt = std::move(*next);
  return std::nullopt;
}

std::optional<tool_call_result> tool_restarts::on_down(const tool_call_request& call,
                                                       const std::string& why,
                                                       const std::string& request_id) {
  int& n = counts_[call.call_id];
  if (n < max_tool_restarts) {
    ++n;
    spdlog::warn("request {}: tool {} ({}) stopped ({}); starting it again ({} of {})", request_id,
                 call.name, call.call_id, why, n, max_tool_restarts);
    return std::nullopt;
  }
  tool_call_result r;
  r.call_id = call.call_id;
  r.name = call.name;
  r.status = toolkit::outcome::retryable;  // retries used up: "failed"
  r.content = fmt::format("error: the tool stopped {} times ({})", n + 1, why);
  return r;
}

int tool_restarts::restarts(const std::string& call_id) const {
  auto it = counts_.find(call_id);
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace conclave::serve
