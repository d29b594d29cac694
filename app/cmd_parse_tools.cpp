// `conclave parse-tools`: raw model output on stdin -> content and OpenAI tool calls as one
// JSON object, or (--stream) one OpenAI delta per line while feeding stdin in chunks.
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "app/commands.h"
#include "model/toolcall/call_parser.h"
#include "model/toolcall/openai.h"

namespace conclave::app {
namespace {

struct parse_tools_args {
  std::string tools_file;
  bool stream = false;
  size_t chunk = 16;
  uint64_t seed = 0;
  std::string unknown_tools = "keep";
  std::string format = "xml";
};

std::vector<toolcall::tool_spec> load_tools(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw std::invalid_argument(
        fmt::format("--tools {}: cannot open: {}", path, std::strerror(errno)));
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(text, ec);
  if (ec)
    throw std::invalid_argument(fmt::format("--tools {}: not valid JSON: {}", path, ec.message()));
  try {
    return toolcall::tools_from_openai(v);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("--tools {}: {}", path, e.what()));
  }
}

std::string read_stdin() {
  std::string text;
  char buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) text.append(buf, n);
  if (std::ferror(stdin)) throw std::runtime_error("cannot read standard input");
  return text;
}

void print_line(const boost::json::object& o) {
  const std::string line = boost::json::serialize(o) + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
}

void warn_rejected(const std::string& name) {
  spdlog::warn("parse-tools: \"{}\" is not one of the tools; its call is kept as content", name);
}

int run_parse_tools(const parse_tools_args& a, bool seed_given) {
  std::vector<toolcall::tool_spec> tools = load_tools(a.tools_file);
  toolcall::parser_options opts;
  opts.unknown_tools = a.unknown_tools == "reject" ? toolcall::unknown_tool_policy::reject
                                                   : toolcall::unknown_tool_policy::keep_as_content;
  if (seed_given) opts.random = [rng = std::mt19937_64(a.seed)]() mutable { return rng(); };
  const std::string input = read_stdin();
  const auto format = a.format == "json" ? model::tool_call_format::hermes_json
                                         : model::tool_call_format::qwen3_coder_xml;

  if (!a.stream) {
    const toolcall::parse_result r =
        toolcall::parse_all(format, input, std::move(tools), std::move(opts));
    for (const auto& name : r.rejected_tools) warn_rejected(name);
    print_line(toolcall::to_openai_message(r));
    return exit_ok;
  }
  toolcall::call_parser parser(format, std::move(tools), std::move(opts));
  const auto print = [](const std::vector<toolcall::event>& events) {
    for (const auto& e : events) {
      if (e.type == toolcall::event::kind::rejected_tool) warn_rejected(e.name);
      if (auto delta = toolcall::to_openai_delta(e)) print_line(*delta);
    }
  };
  const std::string_view all = input;
  for (size_t i = 0; i < all.size(); i += a.chunk) print(parser.feed(all.substr(i, a.chunk)));
  print(parser.finish());
  return exit_ok;
}

}  // namespace

command add_parse_tools(CLI::App& app) {
  auto args = std::make_shared<parse_tools_args>();
  auto* cmd = app.add_subcommand(
      "parse-tools", "parse raw model output (stdin) into content and OpenAI tool calls");
  cmd->add_option("--tools", args->tools_file, "JSON file: an OpenAI `tools` array")->required();
  auto* stream =
      cmd->add_flag("--stream", args->stream, "print OpenAI streaming deltas, one JSON per line");
  cmd->add_option("--chunk", args->chunk, "with --stream: feed stdin this many bytes at a time")
      ->check(CLI::PositiveNumber)
      ->needs(stream)
      ->capture_default_str();
  auto* seed = cmd->add_option("--seed", args->seed, "seed for the call ids (same seed, same ids)");
  cmd->add_option(
         "--unknown-tools", args->unknown_tools,
         "calls of tools not in --tools: keep (as content) or reject (as content, with a warning)")
      ->check(CLI::IsMember({"keep", "reject"}))
      ->capture_default_str();
  cmd->add_option("--format", args->format,
                  "xml: Qwen3-Coder's <function=...> calls; json: Qwen3/Hermes JSON in <tool_call>")
      ->check(CLI::IsMember({"xml", "json"}))
      ->capture_default_str();
  return {cmd, [args, seed] { return run_parse_tools(*args, seed->count() > 0); }};
}

}  // namespace conclave::app
