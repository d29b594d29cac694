// conclave's Jinja engine against Python's jinja2 (Hugging Face's environment): small
// templates that exercise one feature each, then ≥ 200 random conversations per chat
// template (Qwen3's from the tokenizer package, and the built-in Qwen3-Coder one), each
// decoded from an OpenAI request body by net/ exactly as the server does.
// tests/model/chat/template_reference.py writes the references; without python3-jinja2
// the cases skip.
#include <catch2/catch.hpp>

#include <spdlog/fmt/fmt.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "model/chat/chat_template.h"
#include "model/jinja/json_value.h"
#include "model/jinja/template.h"
#include "net/openai_protocol.h"
#include "tests/fixture.h"
#include "tests/skip.h"

using namespace conclave;
namespace fs = std::filesystem;

namespace {

const fs::path kScript = fs::path(CONCLAVE_SOURCE_DIR) / "tests/model/chat/template_reference.py";
const fs::path kQwen3Config = fs::path(CONCLAVE_QWEN3_TOKENIZER_DIR) / "tokenizer_config.json";
const fs::path kCoderTemplate =
    fs::path(CONCLAVE_SOURCE_DIR) / "model/chat/templates/qwen3_coder.jinja";

// Runs the reference script; the JSON lines it wrote, or nullopt when it cannot run here.
std::optional<std::vector<boost::json::object>> reference(const std::string& args,
                                                          const conclave::test::temp_dir& dir) {
  const fs::path out = dir.path() / "cases.jsonl";
  const std::string cmd =
      fmt::format("python3 '{}' {} --out '{}'", kScript.string(), args, out.string());
  const int rc = std::system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) == 77 || WEXITSTATUS(rc) == 127)
    return std::nullopt;
  REQUIRE(WEXITSTATUS(rc) == 0);
  std::vector<boost::json::object> cases;
  std::ifstream in(out);
  std::string line;
  while (std::getline(in, line)) cases.push_back(boost::json::parse(line).as_object());
  return cases;
}

std::string str(const boost::json::object& o, const char* key) {
  return std::string(o.at(key).as_string());
}

// Renders every conversation case with `tmpl` and compares; returns how many were checked.
size_t check_conversations(const std::vector<boost::json::object>& cases,
                           const chat::chat_template& tmpl) {
  net::protocol_context ctx;
  ctx.served_model = "m";
  ctx.max_model_len = 1 << 20;
  size_t checked = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto& body = c.at("body").as_object();
    INFO("case " << i << ": " << boost::json::serialize(body));
    auto decoded = net::decode_chat_request(body, ctx);
    REQUIRE(std::holds_alternative<net::decoded_request>(decoded));
    const auto& req = std::get<net::decoded_request>(decoded).req;
    const bool agp = body.at("add_generation_prompt").as_bool();
    if (c.contains("error")) {
      INFO("jinja2: " << str(c, "error"));
      CHECK_THROWS(tmpl.render(req.messages, req.tools, agp, req.chat_template_kwargs));
    } else {
      const std::string got = tmpl.render(req.messages, req.tools, agp, req.chat_template_kwargs);
      REQUIRE(got == str(c, "expected"));
    }
    ++checked;
  }
  return checked;
}

}  // namespace

TEST_CASE("jinja engine renders feature snippets as jinja2 does", "[chat][jinja][parity]") {
  conclave::test::temp_dir dir;
  auto cases = reference("snippets", dir);
  if (!cases) CONCLAVE_SKIP("python3 with jinja2 is not available");
  REQUIRE(cases->size() >= 60);
  for (const auto& c : *cases) {
    const std::string source = str(c, "template");
    INFO("template: " << source);
    const jinja::value context = jinja::from_json(c.at("context"));
    if (c.contains("error")) {
      INFO("jinja2: " << str(c, "error"));
      CHECK_THROWS_AS(jinja::compiled_template(source).render(context), jinja::template_error);
    } else {
      CHECK(jinja::compiled_template(source).render(context) == str(c, "expected"));
    }
  }
}

TEST_CASE("Qwen3's chat template renders 250 conversations byte-identical to jinja2",
          "[chat][jinja][parity]") {
  conclave::test::temp_dir dir;
  auto cases = reference(fmt::format("conversations --tokenizer-config '{}' --count 250 --seed 11",
                                     kQwen3Config.string()),
                         dir);
  if (!cases) CONCLAVE_SKIP("python3 with jinja2 is not available");
  const auto tmpl = chat::chat_template::for_model(kQwen3Config.parent_path());
  CHECK(tmpl.tools() == chat::tool_format::hermes_json);
  CHECK(tmpl.thinks());
  CHECK(check_conversations(*cases, tmpl) == 250);
}

TEST_CASE("the built-in Qwen3-Coder template renders 250 conversations byte-identical to jinja2",
          "[chat][jinja][parity]") {
  conclave::test::temp_dir dir;
  auto cases = reference(
      fmt::format("conversations --template '{}' --count 250 --seed 12", kCoderTemplate.string()),
      dir);
  if (!cases) CONCLAVE_SKIP("python3 with jinja2 is not available");
  const auto& tmpl = chat::chat_template::builtin();
  CHECK(tmpl.tools() == chat::tool_format::qwen3_coder_xml);
  CHECK_FALSE(tmpl.thinks());
  CHECK(check_conversations(*cases, tmpl) == 250);
}
