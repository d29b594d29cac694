// The Jinja engine's own rules: what it refuses when a template is compiled, the errors it
// gives while rendering, and the chat-template layer's handling of checkpoint folders.
#include <catch2/catch.hpp>

#include <fstream>

#include "model/chat/chat_template.h"
#include "model/jinja/template.h"
#include "model/model_error.h"
#include "tests/fixture.h"

using namespace conclave;
namespace fs = std::filesystem;

namespace {

std::string render(const std::string& source, jinja::value ctx = jinja::value::dict()) {
  return jinja::compiled_template(source).render(ctx);
}

std::string compile_error(const std::string& source) {
  try {
    jinja::compiled_template t(source);
  } catch (const jinja::template_error& e) {
    return e.what();
  }
  return "";
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("unsupported template features are refused at compile time, naming the line",
          "[chat][jinja]") {
  CHECK(compile_error("a\n{% include 'x.jinja' %}") == "line 2: unsupported tag 'include'");
  CHECK(compile_error("{% extends 'base' %}") == "line 1: unsupported tag 'extends'");
  CHECK(compile_error("{% import 'm' as m %}") == "line 1: unsupported tag 'import'");
  CHECK(compile_error("{% call m() %}{% endcall %}") == "line 1: unsupported tag 'call'");
  CHECK(compile_error("\n\n{{ x | wordwrap(3) }}") == "line 3: unknown filter 'wordwrap'");
  CHECK(compile_error("{{ x is escaped }}") == "line 1: unknown test 'escaped'");
  CHECK(compile_error("{{ lipsum() }}") == "line 1: unknown function 'lipsum'");
  CHECK(compile_error("{{ 'a {}'.format(1) }}") == "line 1: unsupported method 'format'");
  CHECK(compile_error("{{ x.append(1) }}") == "line 1: unsupported method 'append'");
  CHECK(compile_error("{% for x in y recursive %}{% endfor %}") ==
        "line 1: recursive loops are not supported");
  CHECK(compile_error("{% break %}") == "line 1: 'break' outside a loop");
}

TEST_CASE("template syntax errors name the line", "[chat][jinja]") {
  CHECK(compile_error("{% if x %}") ==
        "line 1: missing '{% endif %}' before the end of the template");
  CHECK(compile_error("{{ x ") == "line 1: unclosed tag '{{'");
  CHECK(compile_error("x\n{# never closed") == "line 2: unclosed comment");
  CHECK(compile_error("{{ 'abc }}") == "line 1: unclosed string literal");
  CHECK(compile_error("{{ x ) }}") == "line 1: unexpected ')'");
  CHECK(compile_error("{% for x y %}{% endfor %}") == "line 1: expected 'in' in a for loop");
  CHECK_FALSE(compile_error("{{ {'a': {'b': 1}} }}").size());  // }} inside brackets is no tag end
  CHECK(render("{{ {'a': {'b': 1}}['a'] }}") == "{'b': 1}");
}

TEST_CASE("render errors: undefined objects, type errors, raise_exception, deep recursion",
          "[chat][jinja]") {
  CHECK_THROWS_WITH(render("\n{{ x.y }}"), "line 2: 'x' is undefined");
  CHECK_THROWS_WITH(render("{{ 1 + 'a' }}"),
                    "line 1: unsupported operand type(s) for +: 'int' and 'str'");
  CHECK_THROWS_WITH(render("{{ 'a' < 1 }}"),
                    "line 1: '<' not supported between instances of 'str' and 'int'");
  CHECK_THROWS_AS(render("{{ raise_exception('no system message allowed') }}"),
                  jinja::raised_error);
  CHECK_THROWS_WITH(render("{{ raise_exception('no system message allowed') }}"),
                    "no system message allowed");
  CHECK_THROWS_WITH(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
                    Catch::Contains("macro calls nested too deeply"));
  CHECK_THROWS_WITH(render("{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}"),
                    Catch::Contains("takes not more than 1 argument"));
  // An undefined value is fine where Jinja allows it: printed, tested, iterated, compared.
  CHECK(
      render(
          "[{{ x }}]{{ x is defined }}{% for a in x %}a{% endfor %}{{ x == y }}{{ x | length }}") ==
      "[]FalseTrue0");
}

TEST_CASE("the chat template a model folder uses, as transformers picks it", "[chat][jinja]") {
  conclave::test::temp_dir dir;
  // No template: the built-in Qwen3-Coder one.
  CHECK(chat::chat_template::for_model(dir.path()).origin() == "built-in Qwen3-Coder template");
  // tokenizer_config.json's chat_template, with its special tokens.
  write(
      dir.path() / "tokenizer_config.json",
      R"({"chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}<tool_call>",
            "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"})");
  chat::message m;
  m.content_parts = {"hi"};
  auto t = chat::chat_template::for_model(dir.path());
  CHECK(t.render({m}, {}, true) == "<s>hi<tool_call>");
  CHECK(t.tools() == chat::tool_format::hermes_json);
  CHECK_FALSE(t.thinks());
  // chat_template.jinja wins over tokenizer_config.json.
  write(dir.path() / "chat_template.jinja", "J{{ messages | length }}{{ eos_token }}\n");
  CHECK(chat::chat_template::for_model(dir.path()).render({m}, {}, true) == "J1</s>");
  // An override file wins over both.
  write(dir.path() / "mine.jinja", "{{ add_generation_prompt }}{{ extra }}");
  CHECK(chat::chat_template::for_model(dir.path(), dir.path() / "mine.jinja")
            .render({m}, {}, false, R"({"extra": [1, 2]})") == "False[1, 2]");
  // Named templates: "tool_use" when tools are given.
  fs::remove(dir.path() / "chat_template.jinja");
  write(
      dir.path() / "tokenizer_config.json",
      R"({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})");
  t = chat::chat_template::for_model(dir.path());
  CHECK(t.render({m}, {}, true) == "D");
  CHECK(t.render({m}, {model::tool_spec{"f", std::nullopt, "{}"}}, true) == "T");
}

TEST_CASE(
    "a bad checkpoint template is a model_error naming the file and line, bad kwargs are "
    "a chat_error",
    "[chat][jinja]") {
  conclave::test::temp_dir dir;
  write(dir.path() / "chat_template.jinja", "ok\n{% include 'other' %}");
  CHECK_THROWS_WITH(
      chat::chat_template::for_model(dir.path()),
      (dir.path() / "chat_template.jinja").string() + ": line 2: unsupported tag 'include'");
  write(dir.path() / "chat_template.jinja", "{{ raise_exception('System role not supported') }}");
  chat::message m;
  m.content_parts = {"hi"};
  const auto t = chat::chat_template::for_model(dir.path());
  try {
    t.render({m}, {}, true);
    FAIL("no error");
  } catch (const chat::chat_error& e) {
    CHECK(e.param() == "messages");
    CHECK(std::string(e.what()) == "messages: System role not supported");
  }
  CHECK_THROWS_AS(chat::chat_template::builtin().render({m}, {}, true, "[1]"), chat::chat_error);
  CHECK_THROWS_WITH(chat::chat_template::builtin().render({m}, {}, true, R"({"messages": []})"),
                    Catch::Contains("'messages' is set by the request itself"));
}
