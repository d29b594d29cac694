// Resumable streams (net/stream_resume.h): an SSE stream and a WebSocket stream cut
// mid-way resume from the chunk after the last one the client saw and finish
// token-identical to an uncut run; also across a server restart on the same SQLite store;
// bad resumes get clear errors.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <regex>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

/// One numbered SSE chunk: `id: <request id>:<n>` then `data: <payload>`.
struct sse_chunk {
  std::string request;
  int64_t n = 0;
  std::string payload;
};

/// The numbered chunks in raw SSE text (a body, or bytes read off the socket with their
/// HTTP chunk framing: the server writes whole events per HTTP chunk).
std::vector<sse_chunk> numbered(const std::string& text) {
  static const std::regex event(R"(id: ([^\n:]+):(\d+)\ndata: ([^\n]*)\n\n)");
  std::vector<sse_chunk> out;
  for (std::sregex_iterator it(text.begin(), text.end(), event), end; it != end; ++it)
    out.push_back({(*it)[1].str(), std::stoll((*it)[2].str()), (*it)[3].str()});
  return out;
}

std::string text_of(const std::string& payload) {
  const json::value v = json::parse(payload);
  const auto& choices = v.at("choices").as_array();
  if (choices.empty()) return {};
  return std::string(choices.at(0).at("text").as_string());
}

std::string completion_body(int max_tokens, const char* seed) {
  return std::string(R"({"model":"tiny","prompt":"Once upon a time","max_tokens":)") +
         std::to_string(max_tokens) + R"(,"ignore_eos":true,"temperature":0.9,)" + seed +
         R"("stream":true})";
}

/// Reads a streamed POST until at least `count` numbered chunks came, then drops the
/// connection: what the client saw.
std::vector<sse_chunk> read_then_drop(uint16_t port, const std::string& body, size_t count) {
  http_client c(port);
  REQUIRE(c.send_and_read_header("/v1/completions", body) == 200);
  std::string raw;
  while (numbered(raw).size() < count) raw += c.read_some();
  c.close();
  auto seen = numbered(raw);
  seen.resize(count);
  return seen;
}

/// The uncut run's text, chunk by chunk (numbered from 1, consecutive).
std::vector<std::string> uncut_texts(uint16_t port, const std::string& body) {
  const auto r = post_json(port, "/v1/completions", body);
  REQUIRE(r.status == 200);
  std::vector<std::string> texts;
  for (const auto& c : numbered(r.body)) {
    REQUIRE(c.n == static_cast<int64_t>(texts.size()) + 1);
    texts.push_back(text_of(c.payload));
  }
  return texts;
}

/// Resumes `request` after chunk `after` over SSE; checks the chunks sent again against
/// `seen` (byte for byte) and returns the texts of seen[0, after) and of every chunk resumed.
std::vector<std::string> resume_sse(
    uint16_t port, const std::string& request, int64_t after, const std::vector<sse_chunk>& seen,
    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  auto h = headers;
  h.emplace_back("Last-Event-ID", request + ":" + std::to_string(after));
  const auto r = post_json(port, "/v1/completions", "", h);
  REQUIRE(r.status == 200);
  CHECK(r.body.find("data: [DONE]") != std::string::npos);
  const auto resumed = numbered(r.body);
  REQUIRE_FALSE(resumed.empty());
  std::vector<std::string> texts;
  for (size_t i = 0; i < seen.size() && static_cast<int64_t>(i) < after; ++i)
    texts.push_back(text_of(seen[i].payload));
  int64_t expect = after + 1;
  for (const auto& c : resumed) {
    CHECK(c.request == request);
    REQUIRE(c.n == expect++);
    if (c.n <= static_cast<int64_t>(seen.size()))
      CHECK(c.payload == seen[static_cast<size_t>(c.n - 1)].payload);  // the very same bytes
    texts.push_back(text_of(c.payload));
  }
  return texts;
}

/// The next WebSocket frame, parsed.
json::object next_frame(ws_client& c) {
  return json::parse(c.next_text()).as_object();
}

}  // namespace

TEST_CASE("resume: an SSE stream cut mid-way resumes after its last chunk, token-identical",
          "[server][resume]") {
  test_server s;
  const std::string body = completion_body(64, R"("seed":11,)");
  const auto uncut = uncut_texts(s.port(), body);
  REQUIRE(uncut.size() > 20);
  const auto seen = read_then_drop(s.port(), body, 8);
  CHECK(seen.front().n == 1);
  // The client saw 8 chunks; it asks from 7 on (chunks 7 and 8 come again, unchanged).
  const auto texts = resume_sse(s.port(), seen.front().request, 6, seen);
  CHECK(texts == uncut);

  // Without a seed the server chose one and journaled it: the run again is the same.
  const auto seen2 = read_then_drop(s.port(), completion_body(48, ""), 5);
  const auto texts2 = resume_sse(s.port(), seen2.front().request, 5, seen2);
  CHECK(texts2.size() > 20);
  // A finished stream resumes too (its last chunks again).
  const auto again = resume_sse(s.port(), seen2.front().request, 40, {});
  CHECK(again.size() == texts2.size() - 40);
  CHECK(std::equal(again.begin(), again.end(), texts2.begin() + 40));
}

TEST_CASE("resume: a WebSocket stream cut mid-way resumes with a resume frame, token-identical",
          "[server][resume][websocket]") {
  test_server s;
  const std::string body = completion_body(64, R"("seed":5,)");
  const auto uncut = uncut_texts(s.port(), body);
  std::string request;
  std::vector<std::string> texts;
  {
    ws_client c(s.port());
    c.send(R"({"type":"request","id":"r1","endpoint":"completions","body":)" + body + "}");
    while (texts.size() < 6) {
      const auto f = next_frame(c);
      REQUIRE(f.at("type").as_string() == "chunk");
      CHECK(f.at("n").as_int64() == static_cast<int64_t>(texts.size()) + 1);
      request = std::string(f.at("data").at("id").as_string());
      texts.push_back(text_of(json::serialize(f.at("data"))));
    }
    c.drop();  // no close frame: the connection is just gone
  }
  ws_client c(s.port());
  c.send(R"({"type":"resume","id":")" + request + R"(","after":6})");
  for (;;) {
    const auto f = next_frame(c);
    REQUIRE(f.at("id").as_string() == request);
    if (f.at("type").as_string() == "done") {
      CHECK(f.at("finish_reason").as_string() == "length");
      break;
    }
    REQUIRE(f.at("type").as_string() == "chunk");
    CHECK(f.at("n").as_int64() == static_cast<int64_t>(texts.size()) + 1);
    texts.push_back(text_of(json::serialize(f.at("data"))));
  }
  CHECK(texts == uncut);
  // Unknown streams and a bad 'after' are error frames.
  c.send(R"({"type":"resume","id":"cmpl-nope","after":1})");
  auto f = next_frame(c);
  CHECK(f.at("type").as_string() == "error");
  CHECK(f.at("error").at("code").as_string() == "stream_not_found");
  c.send(R"({"type":"resume","id":")" + request + R"(","after":"x"})");
  f = next_frame(c);
  CHECK(f.at("error").at("param").as_string() == "after");
}

TEST_CASE("resume: a stream resumes on a restarted server from the SQLite journal",
          "[server][resume]") {
  temp_dir dir;
  const std::string store = "sqlite:" + (dir.path() / "state.db").string();
  const auto with_store = [&](config::server_config& c) { c.gateway.store = store; };
  const std::string body = completion_body(64, R"("seed":23,)");
  std::vector<sse_chunk> seen;
  {
    test_server first(with_store);
    seen = read_then_drop(first.port(), body, 7);
  }  // stopped: the journal's last batch is written
  test_server second(with_store);
  const auto texts = resume_sse(second.port(), seen.front().request, 7, seen);
  CHECK(texts == uncut_texts(second.port(), body));
}

TEST_CASE("resume: bad resumes are clear errors", "[server][resume]") {
  test_server s([](config::server_config& c) { c.api_keys = {"key-a", "key-b"}; });
  const std::vector<std::pair<std::string, std::string>> a = {{"Authorization", "Bearer key-a"}},
                                                         b = {{"Authorization", "Bearer key-b"}};
  auto bad = post_json(s.port(), "/v1/completions", "",
                       {{"Authorization", "Bearer key-a"}, {"Last-Event-ID", "no-number"}});
  CHECK(bad.status == 400);
  CHECK(bad.body.find("Last-Event-ID") != std::string::npos);
  bad = post_json(s.port(), "/v1/completions", "",
                  {{"Authorization", "Bearer key-a"}, {"Last-Event-ID", "cmpl-unknown:3"}});
  CHECK(bad.status == 404);
  CHECK(bad.body.find("stream_not_found") != std::string::npos);
  // Another key's stream is not found either.
  const auto r = post_json(s.port(), "/v1/completions", completion_body(8, ""), a);
  REQUIRE(r.status == 200);
  const auto chunks = numbered(r.body);
  REQUIRE_FALSE(chunks.empty());
  bad = post_json(
      s.port(), "/v1/completions", "",
      {{"Authorization", "Bearer key-b"}, {"Last-Event-ID", chunks.front().request + ":1"}});
  CHECK(bad.status == 404);
  CHECK(resume_sse(s.port(), chunks.front().request, 1, {chunks.front()}, a).size() ==
        chunks.size());

  // Journaling off: resumes are refused, chunks still numbered.
  test_server off([](config::server_config& c) { c.gateway.resume_window_s = 0; });
  const auto plain = post_json(off.port(), "/v1/completions", completion_body(4, ""));
  REQUIRE_FALSE(numbered(plain.body).empty());
  bad = post_json(off.port(), "/v1/completions", "",
                  {{"Last-Event-ID", numbered(plain.body).front().request + ":1"}});
  CHECK(bad.status == 400);
  CHECK(bad.body.find("resume_unavailable") != std::string::npos);
}
