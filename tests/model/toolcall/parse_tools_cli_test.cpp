// `conclave parse-tools` through the real binary: the one-object output, the streaming
// deltas (which must add up to the same result), and bad input -> exit 2, one line.
#include <sys/wait.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "tests/fixture.h"

namespace json = boost::json;
using conclave::test::temp_dir;

namespace {

std::filesystem::path tools_data() {
  return CONCLAVE_TOOLS_DATA;
}

struct cli_result {
  int code = -1;
  std::string out;
  std::string err;
};

std::string quoted(const std::filesystem::path& p) {
  // Appended, not "'" + p.string(): GCC 12 at -O3 reports a false -Wrestrict on a
  // literal prepended to a temporary (GCC bug 105329), failing -Werror Release builds.
  std::string q = "'";
  q += p.string();
  q += '\'';
  return q;
}

cli_result parse_tools(const std::string& args, const std::filesystem::path& input) {
  const temp_dir tmp;
  const std::string cmd = std::string("'") + CONCLAVE_BINARY + "' parse-tools " + args + " < " +
                          quoted(input) + " > " + quoted(tmp.path() / "out") + " 2> " +
                          quoted(tmp.path() / "err");
  const int status = std::system(cmd.c_str());
  cli_result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = conclave::test::read_text(tmp.path() / "out");
  r.err = conclave::test::read_text(tmp.path() / "err");
  return r;
}

std::string tools_arg() {
  return "--tools " + quoted(tools_data() / "tools.json");
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

// Folds streaming deltas back into the one-object form.
json::object fold_deltas(const std::string& out) {
  std::string content;
  json::array calls;
  for (const std::string& line : lines(out)) {
    const json::object delta = json::parse(line).as_object();
    REQUIRE(delta.size() == 1);
    if (const json::value* c = delta.if_contains("content")) {
      content += c->as_string();
      continue;
    }
    const json::array& tc = delta.at("tool_calls").as_array();
    REQUIRE(tc.size() == 1);
    const json::object& d = tc[0].as_object();
    const size_t index = static_cast<size_t>(d.at("index").as_int64());
    const json::object& fn = d.at("function").as_object();
    if (const json::value* id = d.if_contains("id")) {  // a call's first delta
      REQUIRE(index == calls.size());
      CHECK(d.at("type") == "function");
      CHECK(fn.at("arguments") == "");
      calls.push_back(
          json::object{{"id", *id},
                       {"type", "function"},
                       {"function", json::object{{"name", fn.at("name")}, {"arguments", ""}}}});
      continue;
    }
    REQUIRE(index < calls.size());
    CHECK(d.size() == 2);
    json::string& args = calls[index].as_object()["function"].as_object()["arguments"].as_string();
    args.append(fn.at("arguments").as_string());
  }
  json::object msg;
  msg["content"] = content.empty() ? json::value(nullptr) : json::value(content);
  msg["tool_calls"] = std::move(calls);
  return msg;
}

}  // namespace

TEST_CASE("parse-tools prints content and OpenAI tool calls as one JSON object",
          "[toolcall][cli]") {
  const auto input = tools_data() / "two_calls.txt";
  const cli_result r = parse_tools(tools_arg() + " --seed 7", input);
  REQUIRE(r.code == 0);
  const auto out = lines(r.out);
  REQUIRE(out.size() == 1);
  const json::object msg = json::parse(out[0]).as_object();
  CHECK(msg.size() == 2);
  CHECK(msg.at("content") == "I'll check both cities.");
  const json::array& calls = msg.at("tool_calls").as_array();
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].at("type") == "function");
  CHECK(calls[0].at("id").as_string().size() == 29);
  CHECK(calls[0].at("id").as_string().starts_with("call_"));
  CHECK(calls[0].at("id") != calls[1].at("id"));
  CHECK(calls[0].at("function").at("name") == "get_weather");
  CHECK(json::parse(calls[0].at("function").at("arguments").as_string()) ==
        json::parse(R"({"city":"Paris","days":3})"));
  CHECK(calls[1].at("function").at("name") == "write_file");
  CHECK(json::parse(calls[1].at("function").at("arguments").as_string()) ==
        json::parse(R"({"path":"notes/a.md","content":"line \"one\""})"));

  // Same seed, same ids; no seed, other ids.
  CHECK(parse_tools(tools_arg() + " --seed 7", input).out == r.out);
  CHECK(parse_tools(tools_arg(), input).out != r.out);

  // Plain prose: content only.
  const temp_dir tmp;
  std::ofstream(tmp.path() / "prose.txt") << "Just text.";
  CHECK(parse_tools(tools_arg(), tmp.path() / "prose.txt").out ==
        "{\"content\":\"Just text.\",\"tool_calls\":[]}\n");
}

TEST_CASE("parse-tools --stream prints OpenAI deltas that add up to the same result",
          "[toolcall][cli]") {
  const auto input = tools_data() / "two_calls.txt";
  const cli_result whole = parse_tools(tools_arg() + " --seed 3", input);
  REQUIRE(whole.code == 0);
  const json::value expected = json::parse(whole.out);
  for (const int chunk : {1, 5, 64, 100000}) {
    INFO("chunk " << chunk);
    const cli_result s =
        parse_tools(tools_arg() + " --seed 3 --stream --chunk " + std::to_string(chunk), input);
    REQUIRE(s.code == 0);
    const auto out = lines(s.out);
    REQUIRE(out.size() >= 5);  // content, then start + arguments for each call
    CHECK(json::parse(out[0]).as_object().contains("content"));
    CHECK(json::value(fold_deltas(s.out)) == expected);
  }
  // Small chunks stream string values in several pieces.
  CHECK(lines(parse_tools(tools_arg() + " --stream --chunk 1", input).out).size() > 10);
}

TEST_CASE("parse-tools --unknown-tools reject keeps the call as content and warns",
          "[toolcall][cli]") {
  const temp_dir tmp;
  const std::string text =
      "<tool_call>\n<function=rm>\n<parameter=path>\n/\n</parameter>\n</function>\n</tool_call>";
  std::ofstream(tmp.path() / "in.txt") << text;
  const cli_result r = parse_tools(tools_arg() + " --unknown-tools reject", tmp.path() / "in.txt");
  REQUIRE(r.code == 0);
  const json::object msg = json::parse(r.out).as_object();
  CHECK(msg.at("content") == text.c_str());
  CHECK(msg.at("tool_calls").as_array().empty());
  CHECK(r.err.find("\"rm\" is not one of the tools") != std::string::npos);
  CHECK(parse_tools(tools_arg(), tmp.path() / "in.txt").err.empty());
}

TEST_CASE("parse-tools bad input exits 2 with one line", "[toolcall][cli]") {
  const temp_dir tmp;
  std::ofstream(tmp.path() / "in.txt") << "hi";
  std::ofstream(tmp.path() / "bad.json") << "[{\"type\": ";
  std::ofstream(tmp.path() / "obj.json") << "{\"type\": \"function\"}";
  std::ofstream(tmp.path() / "noname.json") << "[{\"type\": \"function\", \"function\": {}}]";
  const auto in = tmp.path() / "in.txt";
  struct bad_case {
    std::string args, message;
  };
  for (const bad_case& c : std::vector<bad_case>{
           {"--tools " + quoted(tmp.path() / "missing.json"), "cannot open"},
           {"--tools " + quoted(tmp.path() / "bad.json"), "not valid JSON"},
           {"--tools " + quoted(tmp.path() / "obj.json"), "expected a JSON array"},
           {"--tools " + quoted(tmp.path() / "noname.json"), "tools[0]: \"function.name\""},
           {tools_arg() + " --stream --chunk 0", "chunk"},
           {tools_arg() + " --chunk 4", "--stream"},
           {tools_arg() + " --unknown-tools drop", "unknown-tools"},
       }) {
    INFO(c.args);
    const cli_result r = parse_tools(c.args, in);
    CHECK(r.code == 2);
    CHECK(lines(r.err).size() == 1);
    CHECK(r.err.find(c.message) != std::string::npos);
    CHECK(r.out.empty());
  }
}
