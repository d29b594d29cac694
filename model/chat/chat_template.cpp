// Finding, compiling and rendering a checkpoint's chat template (see chat_template.h).
#include "model/chat/chat_template.h"

#include <spdlog/fmt/fmt.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "model/chat/template_context.h"
#include "model/jinja/json_value.h"
#include "model/jinja/template.h"
#include "model/model_error.h"
#include "model/pytext/json_exact.h"

namespace conclave::chat {

// The text of model/chat/templates/qwen3_coder.jinja (generated builtin_template.cpp).
extern const char* const kBuiltinQwen3CoderTemplate;

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw model::model_error(fmt::format("{}: cannot read the chat template", p.string()));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A special token of tokenizer_config.json: a string, or an AddedToken object's content.
std::optional<std::string> token_text(const boost::json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_object()) {
    if (const auto* c = v->get_object().if_contains("content"); c && c->is_string())
      return std::string(c->get_string());
  }
  return std::nullopt;
}

}  // namespace

std::string_view tool_format_name(tool_format f) {
  return f == tool_format::qwen3_coder_xml ? "qwen3_coder_xml" : "hermes_json";
}

const chat_template& chat_template::builtin() {
  static const chat_template t =
      from_source(kBuiltinQwen3CoderTemplate, "built-in Qwen3-Coder template");
  return t;
}

chat_template chat_template::from_source(std::string source, std::string origin) {
  chat_template t;
  t.origin_ = std::move(origin);
  try {
    auto compiled = std::make_shared<const jinja::compiled_template>(source);
    t.variants_.push_back(variant{"", std::move(source), std::move(compiled)});
  } catch (const jinja::template_error& e) {
    throw model::model_error(fmt::format("{}: {}", t.origin_, e.what()));
  }
  const std::string& src = t.variants_[0].source;
  // A template that shows <function=...> teaches the XML format; any other that mentions
  // <tool_call> teaches JSON inside it (Qwen3, Hermes).
  t.format_ = src.find("<function=") != std::string::npos ? tool_format::qwen3_coder_xml
                                                          : tool_format::hermes_json;
  t.thinks_ = src.find("<think>") != std::string::npos;
  return t;
}

chat_template chat_template::for_model(const fs::path& model_dir,
                                       const std::optional<fs::path>& override_file) {
  std::vector<std::pair<std::string, std::string>> special;
  boost::json::value config;
  const fs::path config_path = model_dir / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    boost::system::error_code ec;
    config = pytext::parse_json_exact(read_file(config_path), ec);
    if (ec || !config.is_object())
      throw model::model_error(fmt::format("{}: not a JSON object", config_path.string()));
    for (const char* name : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
      if (auto text = token_text(config.get_object().if_contains(name)))
        special.emplace_back(name, std::move(*text));
    }
  }
  chat_template t;
  if (override_file) {
    t = from_source(read_file(*override_file), override_file->string());
  } else if (fs::exists(model_dir / "chat_template.jinja")) {
    const fs::path p = model_dir / "chat_template.jinja";
    t = from_source(read_file(p), p.string());
  } else if (const auto* ct =
                 config.is_object() ? config.get_object().if_contains("chat_template") : nullptr;
             ct && !ct->is_null()) {
    const std::string origin = config_path.string() + " chat_template";
    if (ct->is_string()) {
      t = from_source(std::string(ct->get_string()), origin);
    } else if (ct->is_array()) {
      // Named templates: [{"name": "default", "template": "..."}, ...].
      for (const auto& entry : ct->get_array()) {
        const auto* o = entry.if_object();
        const auto* name = o ? o->if_contains("name") : nullptr;
        const auto* text = o ? o->if_contains("template") : nullptr;
        if (!name || !name->is_string() || !text || !text->is_string())
          throw model::model_error(origin + ": each entry needs a string name and template");
        chat_template one = from_source(std::string(text->get_string()),
                                        fmt::format("{} '{}'", origin, name->get_string()));
        if (t.variants_.empty() || name->get_string() == "default") {
          t.format_ = one.format_;
          t.thinks_ = one.thinks_;
        }
        t.variants_.push_back(variant{std::string(name->get_string()),
                                      std::move(one.variants_[0].source),
                                      std::move(one.variants_[0].compiled)});
      }
      if (t.variants_.empty()) throw model::model_error(origin + ": an empty list");
      t.origin_ = origin;
    } else {
      throw model::model_error(origin + ": must be a string or a list of named templates");
    }
  } else {
    t = builtin();
  }
  t.special_tokens_ = std::move(special);
  return t;
}

std::string chat_template::render(const std::vector<message>& messages,
                                  const std::vector<model::tool_spec>& tools,
                                  bool add_generation_prompt, std::string_view kwargs_json) const {
  validate(messages);
  std::vector<std::pair<std::string, jinja::value>> ctx{
      {"messages", messages_value(messages)},
      {"tools", tools_value(tools)},
      {"documents", jinja::value::none()},
      {"add_generation_prompt", jinja::value(add_generation_prompt)}};
  for (const auto& [name, text] : special_tokens_) ctx.emplace_back(name, jinja::value(text));
  if (!kwargs_json.empty()) {
    boost::system::error_code ec;
    boost::json::value kw = pytext::parse_json_exact(kwargs_json, ec);
    if (ec || !kw.is_object()) throw chat_error("chat_template_kwargs", "must be a JSON object");
    for (const auto& kv : kw.get_object()) {
      const std::string_view key = kv.key();
      if (key == "messages" || key == "tools" || key == "documents" ||
          key == "add_generation_prompt")
        throw chat_error(
            "chat_template_kwargs",
            fmt::format("'{}' is set by the request itself, not a template argument", key));
      jinja::dict_data d{std::move(ctx)};
      d.set(std::string(key), jinja::from_json(kv.value()));
      ctx = std::move(d.items);
    }
  }
  // Named templates: "tool_use" when tools are given and there is one, else "default".
  const variant* v = &variants_[0];
  for (const auto& x : variants_) {
    if (x.name == "default") v = &x;
  }
  if (!tools.empty()) {
    for (const auto& x : variants_)
      if (x.name == "tool_use") v = &x;
  }
  try {
    return v->compiled->render(jinja::value::dict(std::move(ctx)));
  } catch (const jinja::raised_error& e) {
    throw chat_error("messages", e.what());
  } catch (const jinja::template_error& e) {
    throw std::runtime_error(fmt::format("{}: {}", origin_, e.what()));
  }
}

std::string render(const std::vector<message>& messages, const std::vector<model::tool_spec>& tools,
                   bool add_generation_prompt) {
  return chat_template::builtin().render(messages, tools, add_generation_prompt);
}

}  // namespace conclave::chat
