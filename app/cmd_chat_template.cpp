// `conclave chat-template`: prints the prompt a model folder's chat template makes of a
// conversation, exactly as `serve` would render it (same request decoding, same
// template), for users debugging their templates.
#include <spdlog/fmt/fmt.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "app/commands.h"
#include "model/chat/chat_template.h"
#include "net/openai_protocol.h"

namespace conclave::app {
namespace {

namespace fs = std::filesystem;

struct chat_template_args {
  std::string model_dir;
  std::string messages_file;
  std::string tools_file;
  std::string kwargs;
  std::string template_file;
  bool no_generation_prompt = false;
};

boost::json::value read_json(const std::string& flag, const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream f(path, std::ios::binary);
    if (!f)
      throw std::invalid_argument(
          fmt::format("{} {}: cannot open: {}", flag, path, std::strerror(errno)));
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec)
    throw std::invalid_argument(fmt::format("{} {}: not valid JSON: {}", flag, path, ec.message()));
  return v;
}

int run(const chat_template_args& a) {
  // --messages: an array of messages, or a whole chat request (its tools and kwargs too).
  boost::json::value m = read_json("--messages", a.messages_file);
  boost::json::object body;
  if (m.is_object()) {
    body = m.get_object();
  } else if (m.is_array()) {
    body["messages"] = m;
  } else {
    throw std::invalid_argument(
        "--messages: expected an array of messages or a chat request object");
  }
  body["model"] = "chat-template";
  if (!a.tools_file.empty()) body["tools"] = read_json("--tools", a.tools_file);
  if (!a.kwargs.empty()) {
    boost::system::error_code ec;
    body["chat_template_kwargs"] = boost::json::parse(a.kwargs, ec);
    if (ec) throw std::invalid_argument(fmt::format("--kwargs: not valid JSON: {}", ec.message()));
  }
  if (a.no_generation_prompt) body["add_generation_prompt"] = false;
  net::protocol_context ctx;
  ctx.served_model = "chat-template";
  ctx.max_model_len = INT32_MAX;
  auto decoded = net::decode_chat_request(body, ctx);
  if (auto* err = std::get_if<net::api_error>(&decoded))
    throw std::invalid_argument(err->param.empty() ? err->message
                                                   : err->param + ": " + err->message);
  const auto& req = std::get<net::decoded_request>(decoded).req;

  const auto tmpl = chat::chat_template::for_model(
      a.model_dir,
      a.template_file.empty() ? std::nullopt : std::optional<fs::path>(a.template_file));
  std::fprintf(stderr, "conclave: chat template: %s (tool calls: %s%s)\n", tmpl.origin().c_str(),
               std::string(chat::tool_format_name(tmpl.tools())).c_str(),
               tmpl.thinks() ? "; thinks" : "");
  std::string prompt;
  try {
    prompt =
        tmpl.render(req.messages, req.tools, req.add_generation_prompt, req.chat_template_kwargs);
  } catch (const std::runtime_error& e) {  // the template failed on this conversation
    throw std::invalid_argument(e.what());
  }
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  return exit_ok;
}

}  // namespace

command add_chat_template(CLI::App& app) {
  auto a = std::make_shared<chat_template_args>();
  auto* cmd = app.add_subcommand(
      "chat-template",
      "print the prompt a model's chat template makes of a conversation (as serve "
      "renders it)");
  cmd->add_option("--model", a->model_dir,
                  "model (or tokenizer) folder: chat_template.jinja or tokenizer_config.json; "
                  "neither: the built-in Qwen3-Coder template")
      ->required();
  cmd->add_option("--messages", a->messages_file,
                  "JSON file ('-': stdin): an array of OpenAI messages, or a whole chat request")
      ->required();
  cmd->add_option("--tools", a->tools_file, "JSON file: an array of OpenAI tools");
  cmd->add_option("--kwargs", a->kwargs,
                  "chat_template_kwargs as JSON, e.g. '{\"enable_thinking\": false}'");
  cmd->add_option("--chat-template", a->template_file, "use this Jinja file instead");
  cmd->add_flag("--no-generation-prompt", a->no_generation_prompt,
                "do not end with the assistant's turn opener");
  return {cmd, [a] { return run(*a); }};
}

}  // namespace conclave::app
