// Model outputs for the tool-call parser, well-formed and broken in the ways the format
// document lists, with what each must parse to (tools: tests/data/tools/tools.json).
#include "tests/model/toolcall/toolcall_cases.h"

namespace conclave::test {

using toolcall::unknown_tool_policy;

std::string well_formed(const std::string& name,
                        const std::vector<std::pair<std::string, std::string>>& args) {
  std::string s = "<tool_call>\n<function=" + name + ">\n";
  for (const auto& [k, v] : args) s += "<parameter=" + k + ">\n" + v + "\n</parameter>\n";
  return s + "</function>\n</tool_call>";
}

namespace {

const std::string paris = well_formed("get_weather", {{"city", "Paris"}});
const std::string berlin = well_formed("get_weather", {{"city", "Berlin"}});
const std::string unknown_call =
    "<tool_call>\n<function=delete_all>\n<parameter=force>\ntrue\n</parameter>\n</function>\n"
    "</tool_call>";

std::vector<tool_case> make_cases() {
  std::vector<tool_case> c;

  // ---- prose and well-formed calls ----
  c.push_back(
      {"prose only", "Hello, world!\n\nHow are you?\n", "Hello, world!\n\nHow are you?\n", {}});
  c.push_back({"empty text", "", "", {}});
  c.push_back({"whitespace only", "  \n\t\n", "  \n\t\n", {}});
  c.push_back({"well-formed call", paris, "", {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"call after prose",
               "Let me check the weather.\n\n" +
                   well_formed("get_weather", {{"city", "Paris"}, {"days", "3"}}) + "\n",
               "Let me check the weather.",
               {{"get_weather", R"({"city": "Paris", "days": 3})"}}});
  c.push_back(
      {"two calls back to back",
       paris + "\n" + berlin,
       "",
       {{"get_weather", R"({"city": "Paris"})"}, {"get_weather", R"({"city": "Berlin"})"}}});
  c.push_back({"text after the last call",
               paris + "\n\nAll done.",
               "All done.",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"prose around a call keeps one separator",
               "Checking.\n" + paris + "\nDone.\n",
               "Checking.\n\nDone.\n",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back(
      {"prose between calls",
       "A\n" + paris + "\nB\n" + berlin,
       "A\n\nB",
       {{"get_weather", R"({"city": "Paris"})"}, {"get_weather", R"({"city": "Berlin"})"}}});
  c.push_back({"call without parameters",
               "<tool_call>\n<function=list_files>\n</function>\n</tool_call>",
               "",
               {{"list_files", "{}"}}});
  c.push_back({"same-line values",
               "<tool_call><function=get_weather><parameter=city>Paris</parameter><parameter=days>2"
               "</parameter></function></tool_call>",
               "",
               {{"get_weather", R"({"city": "Paris", "days": 2})"}}});

  // ---- missing closers ----
  c.push_back({"missing </parameter> before the next parameter",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n<parameter=days>\n3\n"
               "</parameter>\n</function>\n</tool_call>",
               "",
               {{"get_weather", R"({"city": "Paris", "days": 3})"}}});
  c.push_back(
      {"missing </parameter> before </function>",
       "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n</tool_call>",
       "",
       {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"missing </parameter> and </function> before </tool_call>",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</tool_call>",
               "",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"value runs to the end of text",
               "<tool_call>\n<function=write_file>\n<parameter=path>\na.txt\n</parameter>\n"
               "<parameter=content>\nhello\nworld\n",
               "",
               {{"write_file", R"({"path": "a.txt", "content": "hello\nworld"})"}}});
  c.push_back({"missing </function>",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
               "</tool_call>\nAfter.",
               "After.",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"missing </tool_call> at the end",
               "Sure.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n"
               "</function>",
               "Sure.",
               {{"get_weather", R"({"city": "Rome"})"}}});
  c.push_back({"missing </tool_call> then prose",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n"
               "</function>\nThat is all.",
               "That is all.",
               {{"get_weather", R"({"city": "Rome"})"}}});
  c.push_back({"missing </function> and </tool_call>",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n</parameter>\n",
               "",
               {{"get_weather", R"({"city": "Oslo"})"}}});
  c.push_back({"<function= with no <tool_call> before it",
               "Calling now.\n<function=get_weather>\n<parameter=city>\nLima\n</parameter>\n"
               "</function>\n</tool_call>",
               "Calling now.",
               {{"get_weather", R"({"city": "Lima"})"}}});
  c.push_back({"bare <function= with no closers",
               "<function=get_weather>\n<parameter=city>\nLima\n</parameter>",
               "",
               {{"get_weather", R"({"city": "Lima"})"}}});
  c.push_back(
      {"second <tool_call> before the first is closed",
       "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n" + berlin,
       "",
       {{"get_weather", R"({"city": "Paris"})"}, {"get_weather", R"({"city": "Berlin"})"}}});
  c.push_back({"second call starts inside an unclosed value",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n" +
                   well_formed("write_file", {{"path", "x"}}),
               "",
               {{"get_weather", R"({"city": "Paris"})"}, {"write_file", R"({"path": "x"})"}}});
  c.push_back({"mismatched closers are repaired",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n"
               "</parameter>\n</tool_call>\nok",
               "ok",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"stray closers are ignored",
               "<tool_call>\n<function=get_weather>\n</parameter>\n<parameter=city>\nParis\n"
               "</parameter>\n</parameter>\n</function>\n</function>\n</tool_call>",
               "",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back(
      {"long whitespace before </tool_call> ends the call",
       "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>" +
           std::string(300, ' ') + "</tool_call>",
       "</tool_call>",
       {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"text cut inside a closing tag",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</para",
               "",
               {{"get_weather", R"({"city": "Paris\n</para"})"}}});
  c.push_back({"text cut inside the function tag",
               "Text\n<tool_call>\n<function=get_wea",
               "Text\n<tool_call>\n<function=get_wea",
               {}});

  // ---- tags inside values ----
  c.push_back(
      {"file content containing </parameter>",
       "<tool_call>\n<function=write_file>\n<parameter=path>\ndoc.xml\n</parameter>\n"
       "<parameter=content>\n<a>\n</parameter>\n<b/>\n</parameter>\n</function>\n</tool_call>",
       "",
       {{"write_file", R"({"path": "doc.xml", "content": "<a>\n</parameter>\n<b/>"})"}}});
  c.push_back({"file content containing <parameter= tags",
               "<tool_call>\n<function=write_file>\n<parameter=path>\nt.py\n</parameter>\n"
               "<parameter=content>\nx = '<parameter=path>'\n<parameter=mode>\n</parameter>\n"
               "</function>\n</tool_call>",
               "",
               {{"write_file",
                 R"({"path": "t.py", "content": "x = '<parameter=path>'\n<parameter=mode>"})"}}});
  c.push_back({"file content containing </function> then text",
               well_formed("write_file", {{"path", "f.xml"}, {"content", "end</function>\nmore"}}),
               "",
               {{"write_file", R"({"path": "f.xml", "content": "end</function>\nmore"})"}}});
  c.push_back(
      {"file content with < and </",
       well_formed("write_file", {{"path", "a.cpp"}, {"content", "if (a<b && c</d) x <<= 1;"}}),
       "",
       {{"write_file", R"({"path": "a.cpp", "content": "if (a<b && c</d) x <<= 1;"})"}}});
  c.push_back({"a used parameter name does not start a new parameter",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nA\n</parameter>\n"
               "<parameter=city>\nB\n</parameter>\n</function>\n</tool_call>",
               "",
               {{"get_weather", R"({"city": "A\n</parameter>\n<parameter=city>\nB"})"}}});
  c.push_back(
      {"an undeclared parameter name does not end an unclosed value",
       "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n<parameter=foo>\nbar\n"
       "</parameter>\n</function>\n</tool_call>",
       "",
       {{"get_weather", R"({"city": "Paris\n<parameter=foo>\nbar"})"}}});

  // ---- <tool_call> and <function= in prose ----
  c.push_back({"literal <tool_call> in prose",
               "Wrap calls in a <tool_call> tag, like this.",
               "Wrap calls in a <tool_call> tag, like this.",
               {}});
  c.push_back({"literal <tool_call> at the end of text",
               "The tag is <tool_call>",
               "The tag is <tool_call>",
               {}});
  c.push_back({"<tool_call> followed by JSON is text",
               "<tool_call>\n{\"name\": \"get_weather\"}\n</tool_call>",
               "<tool_call>\n{\"name\": \"get_weather\"}\n</tool_call>",
               {}});
  c.push_back({"literal <tool_call> in prose, then a real call",
               "Use <tool_call> tags.\n" + well_formed("get_weather", {{"city", "Nice"}}),
               "Use <tool_call> tags.",
               {{"get_weather", R"({"city": "Nice"})"}}});
  c.push_back({"bare <function=tool> in prose is text",
               "The <function=get_weather> tag names a tool.",
               "The <function=get_weather> tag names a tool.",
               {}});
  c.push_back({"long whitespace after <tool_call> ends the look-ahead",
               "<tool_call>" + std::string(300, ' ') + "<function=get_weather>\n</function>",
               "<tool_call>",
               {{"get_weather", "{}"}}});

  // ---- typed values ----
  c.push_back(
      {"numbers given as strings with spaces",
       well_formed("get_weather", {{"city", "Paris"}, {"days", " 7 "}}) +
           well_formed("set_config", {{"ratio", "2.5e-1"}}),
       "",
       {{"get_weather", R"({"city": "Paris", "days": 7})"}, {"set_config", R"({"ratio": 0.25})"}}});
  c.push_back({"230.0 and 1e3 for an integer",
               well_formed("get_weather", {{"days", "230.0"}}) +
                   well_formed("get_weather", {{"days", "1e3"}}),
               "",
               {{"get_weather", R"({"days": 230})"}, {"get_weather", R"({"days": 1000})"}}});
  c.push_back({"non-integral integers stay strings",
               well_formed("get_weather", {{"days", "1.5"}}) +
                   well_formed("get_weather", {{"days", "three"}}),
               "",
               {{"get_weather", R"({"days": "1.5"})"}, {"get_weather", R"({"days": "three"})"}}});
  c.push_back({"numbers with signs",
               well_formed("set_config", {{"ratio", "-3"}, {"limit", "+5"}}),
               "",
               {{"set_config", R"({"ratio": -3, "limit": 5})"}}});
  c.push_back({"booleans in any case",
               well_formed("get_weather", {{"metric", "True"}}) +
                   well_formed("get_weather", {{"metric", "fAlSe"}}) +
                   well_formed("set_config", {{"flag", "1"}}) +
                   well_formed("set_config", {{"flag", "0"}}),
               "",
               {{"get_weather", R"({"metric": true})"},
                {"get_weather", R"({"metric": false})"},
                {"set_config", R"({"flag": true})"},
                {"set_config", R"({"flag": false})"}}});
  c.push_back({"a boolean that does not convert stays a string",
               well_formed("get_weather", {{"metric", "yes"}}),
               "",
               {{"get_weather", R"({"metric": "yes"})"}}});
  c.push_back(
      {"None and null",
       well_formed("set_config", {{"limit", "None"}, {"mode", "None"}, {"nothing", "null"}}),
       "",
       {{"set_config", R"({"limit": null, "mode": null, "nothing": null})"}}});
  c.push_back({"nested object as JSON with nested typing",
               well_formed("set_config",
                           {{"config", R"({"retries": "5", "verbose": "TRUE", "name": "x",)"
                                       R"( "servers": [{"port": "8080"}, {"port": 9090.0}]})"}}),
               "",
               {{"set_config", R"({"config": {"retries": 5, "verbose": true, "name": "x",)"
                               R"( "servers": [{"port": 8080}, {"port": 9090}]}})"}}});
  c.push_back(
      {"object in Python syntax",
       well_formed(
           "set_config",
           {{"config",
             R"({'retries': 3, 'verbose': True, 'name': 'it\'s', 'servers': ({'port': 1},)})"}}),
       "",
       {{"set_config",
         R"({"config": {"retries": 3, "verbose": true, "name": "it's", "servers": [{"port": 1}]}})"}}});
  c.push_back(
      {"arrays in Python syntax",
       well_formed("set_config", {{"tags", R"(['a', "b", 'c d',])"}, {"point", "(1.5, 2, -3e2)"}}),
       "",
       {{"set_config", R"({"tags": ["a", "b", "c d"], "point": [1.5, 2, -300]})"}}});
  c.push_back(
      {"values that do not convert stay strings",
       well_formed("set_config",
                   {{"tags", "not, a, list"}, {"config", "{broken"}, {"ratio", "n/a"}}),
       "",
       {{"set_config", R"({"tags": "not, a, list", "config": "{broken", "ratio": "n/a"})"}}});
  c.push_back({"enum",
               well_formed("get_weather", {{"units", "fahrenheit"}}) +
                   well_formed("set_config", {{"level", "2"}}) +
                   well_formed("set_config", {{"level", "5"}}) +
                   well_formed("get_weather", {{"units", "kelvin"}}),
               "",
               {{"get_weather", R"({"units": "fahrenheit"})"},
                {"set_config", R"({"level": 2})"},
                {"set_config", R"({"level": "5"})"},
                {"get_weather", R"({"units": "kelvin"})"}}});
  c.push_back(
      {"anyOf",
       well_formed("set_config", {{"limit", "10"}}) + well_formed("set_config", {{"limit", "ten"}}),
       "",
       {{"set_config", R"({"limit": 10})"}, {"set_config", R"({"limit": "ten"})"}}});
  c.push_back({"a parameter name the schema does not declare is text of the value before it",
               well_formed("get_weather", {{"city", "Paris"}, {"country", "42"}}),
               "",
               {{"get_weather", R"({"city": "Paris\n</parameter>\n<parameter=country>\n42"})"}}});
  c.push_back({"an undeclared first parameter stays a string",
               well_formed("get_weather", {{"country", "42"}, {"city", "Paris"}}),
               "",
               {{"get_weather", R"({"country": "42", "city": "Paris"})"}}});
  c.push_back(
      {"a literal tool-call block inside a file's content is text",
       well_formed("write_file",
                   {{"path", "README.md"},
                    {"content", "Example:\n" + well_formed("get_weather", {{"city", "X"}}) +
                                    "\nThat is all."}}),
       "",
       {{"write_file",
         R"({"path": "README.md", "content": "Example:\n<tool_call>\n<function=get_weather>\n<parameter=city>\nX\n</parameter>\n</function>\n</tool_call>\nThat is all."})"}}});
  c.push_back({"a call after a value whose closers were forgotten, then another call",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n" +
                   well_formed("write_file", {{"path", "x"}}) + "\n" +
                   well_formed("get_weather", {{"city", "Rome"}}),
               "",
               {{"get_weather", R"({"city": "Paris"})"},
                {"write_file", R"({"path": "x"})"},
                {"get_weather", R"({"city": "Rome"})"}}});
  c.push_back({"a drifted </parameter1> closer is dropped",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter1>\n"
               "</function>\n</tool_call>",
               "",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"a bare </parameter at the end of a value is dropped",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter\n"
               "</function>\n</tool_call>",
               "",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"a drifted closer between parameters, and at the end of text",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter12>\n"
               "<parameter=days>\n3\n</parameter",
               "",
               {{"get_weather", R"({"city": "Paris", "days": 3})"}}});
  c.push_back(
      {"drifted closers inside file content followed by more text stay in the value",
       well_formed("write_file",
                   {{"path", "a.xml"}, {"content", "<a></parameter1>\nb </parameter c"}}),
       "",
       {{"write_file", R"({"path": "a.xml", "content": "<a></parameter1>\nb </parameter c"})"}}});
  c.push_back({"a tool without declared parameters",
               well_formed("list_files", {{"dir", "/tmp"}, {"depth", "2"}}),
               "",
               {{"list_files", R"({"dir": "/tmp", "depth": "2"})"}}});

  // ---- text of values ----
  c.push_back({"multi-line values",
               well_formed("write_file", {{"path", "f.py"},
                                          {"content", "def f():\n    return 1\n\n\nprint(f())"}}),
               "",
               {{"write_file",
                 R"~({"path": "f.py", "content": "def f():\n    return 1\n\n\nprint(f())"})~"}}});
  c.push_back({"only one leading and one trailing newline are stripped",
               well_formed("write_file", {{"path", "p"}, {"content", "\n\n  indented\n\n"}}),
               "",
               {{"write_file", R"({"path": "p", "content": "\n\n  indented\n\n"})"}}});
  c.push_back({"spaces around values are kept",
               well_formed("get_weather", {{"city", "  New York  "}}),
               "",
               {{"get_weather", R"({"city": "  New York  "})"}}});
  c.push_back({"unicode values and content",
               "Ça va ? 😀\n" + well_formed("get_weather", {{"city", "Zürich 東京 🌍"}}),
               "Ça va ? 😀",
               {{"get_weather", R"({"city": "Zürich 東京 🌍"})"}}});
  c.push_back(
      {"empty values",
       "<tool_call>\n<function=write_file>\n<parameter=path>\n</parameter>\n<parameter=content>"
       "</parameter>\n</function>\n</tool_call>",
       "",
       {{"write_file", R"({"path": "", "content": ""})"}}});
  c.push_back({"an empty typed value stays an empty string",
               well_formed("get_weather", {{"days", ""}}),
               "",
               {{"get_weather", R"({"days": ""})"}}});
  c.push_back(
      {"JSON escaping of values",
       well_formed("write_file", {{"path", "q"}, {"content", "say \"hi\"\tC:\\path\\\x01"}}),
       "",
       {{"write_file", R"({"path": "q", "content": "say \"hi\"\tC:\\path\\\u0001"})"}}});
  c.push_back({"invalid UTF-8 in a value becomes U+FFFD",
               well_formed("get_weather", {{"city",
                                            "ab\xff\xfe"
                                            "cd x\xe2\x82"}}),
               "",
               {{"get_weather", R"({"city": "ab\ufffd\ufffdcd x\ufffd\ufffd"})"}}});

  // ---- unknown tools ----
  c.push_back({"unknown tool kept as content", unknown_call, unknown_call, {}});
  c.push_back({"unknown tool rejected",
               "Deleting.\n" + unknown_call,
               "Deleting.\n" + unknown_call,
               {},
               unknown_tool_policy::reject,
               {"delete_all"}});
  c.push_back({"unknown tool, then a known one",
               unknown_call + "\n" + paris,
               unknown_call,
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"bare unknown function rejected",
               "<function=nope>\n</function>",
               "<function=nope>\n</function>",
               {},
               unknown_tool_policy::reject,
               {"nope"}});
  return c;
}

}  // namespace

const std::vector<tool_case>& tool_cases() {
  static const std::vector<tool_case> cases = make_cases();
  return cases;
}

}  // namespace conclave::test
