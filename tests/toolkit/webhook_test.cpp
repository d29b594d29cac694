// Webhook and browser tools against a scripted HTTP server on loopback: fails twice then succeeds
// (3 attempts, waits following the backoff), always times out (5 attempts, then a tool
// error for the model), bad arguments (no request at all), 4xx (no retry), cancel.
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <functional>
#include <mutex>
#include <thread>

#include "toolkit/browser_tool.h"
#include "toolkit/invoke.h"
#include "toolkit/webhook_tool.h"

using namespace conclave::toolkit;
namespace json = boost::json;
namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;

namespace {

/// What the server does with request number N (0-based): answer `status` with `body`,
/// or hang (never answer).
struct reply {
  int status = 200;
  std::string body;
  bool hang = false;
  std::string location, content_type;
};

class scripted_server {
 public:
  explicit scripted_server(std::function<reply(size_t, const std::string&)> script)
      : script_(std::move(script)), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~scripted_server() {
    io_.stop();
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/hook";
  }
  size_t requests() {
    std::lock_guard lock(mu_);
    return arrivals_.size();
  }
  std::vector<std::chrono::steady_clock::time_point> arrivals() {
    std::lock_guard lock(mu_);
    return arrivals_;
  }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mu_);
    return bodies_;
  }

 private:
  struct conn {
    tcp::socket sock;
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
  };
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (ec) return;
      auto c = std::make_shared<conn>(conn{std::move(s), {}, {}, {}});
      http::async_read(c->sock, c->buf, c->req, [this, c](beast::error_code ec2, size_t) {
        if (ec2) return;
        size_t n;
        {
          std::lock_guard lock(mu_);
          n = arrivals_.size();
          arrivals_.push_back(std::chrono::steady_clock::now());
          bodies_.push_back(c->req.body());
        }
        const reply r = script_(n, c->req.body());
        if (r.hang) {
          held_.push_back(c);  // keep the connection open, never answer
          return;
        }
        c->res = http::response<http::string_body>(static_cast<http::status>(r.status), 11);
        c->res.body() = r.body;
        if (!r.location.empty()) c->res.set(http::field::location, r.location);
        if (!r.content_type.empty()) c->res.set(http::field::content_type, r.content_type);
        c->res.prepare_payload();
        http::async_write(c->sock, c->res, [c](beast::error_code, size_t) {});
      });
      accept();
    });
  }
  std::function<reply(size_t, const std::string&)> script_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::chrono::steady_clock::time_point> arrivals_;
  std::vector<std::string> bodies_;
  std::vector<std::shared_ptr<conn>> held_;
};

webhook_config hook(const std::string& url, milliseconds timeout = milliseconds(2000)) {
  webhook_config c;
  c.def.name = "lookup";
  c.def.parameters =
      R"({"type":"object","required":["id"],"properties":{"id":{"type":"integer"}}})";
  c.url = url;
  c.timeout = timeout;
  return c;
}

/// A real sleeper that also records what it was asked to wait.
struct recording_sleeper {
  std::vector<milliseconds> waits;
  sleeper fn() {
    return [this, real = real_sleeper()](milliseconds d, const cancel_flag& c) {
      waits.push_back(d);
      return real(d, c);
    };
  }
};

}  // namespace

TEST_CASE("webhook failing twice with 5xx then succeeding: 3 attempts, backoff between",
          "[toolkit][webhook]") {
  scripted_server srv([](size_t n, const std::string&) {
    return n < 2 ? reply{503, "busy", false, "", ""}
                 : reply{200, R"({"name":"widget"})", false, "", ""};
  });
  webhook_tool t(hook(srv.url()));
  retry_policy p;
  p.base = milliseconds(50);
  p.jitter = 0.2;
  recording_sleeper s;
  std::mt19937_64 rng(1);
  const auto inv = invoke(
      t, R"({"id":7})", p, s.fn(), [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; },
      std::make_shared<cancel_flag>());
  CHECK(inv.result.status == outcome::ok);
  CHECK(inv.result.content == R"({"name":"widget"})");
  CHECK(inv.attempts == 3);
  REQUIRE(srv.requests() == 3);
  CHECK(srv.bodies()[0] == R"({"id":7})");
  REQUIRE(s.waits.size() == 2);
  // base × 2^attempt within the jitter bounds.
  CHECK(s.waits[0] >= milliseconds(40));
  CHECK(s.waits[0] <= milliseconds(60));
  CHECK(s.waits[1] >= milliseconds(80));
  CHECK(s.waits[1] <= milliseconds(120));
  // The server saw the attempts at least that far apart (no upper bound: timing).
  const auto at = srv.arrivals();
  CHECK(at[1] - at[0] >= s.waits[0]);
  CHECK(at[2] - at[1] >= s.waits[1]);
}

TEST_CASE("webhook that never answers: 5 attempts, then a tool error for the model",
          "[toolkit][webhook]") {
  scripted_server srv([](size_t, const std::string&) { return reply{0, "", true, "", ""}; });
  webhook_tool t(hook(srv.url(), milliseconds(150)));
  retry_policy p;
  p.base = milliseconds(10);
  recording_sleeper s;
  const auto inv = invoke(
      t, R"({"id":1})", p, s.fn(), [] { return 0.5; }, std::make_shared<cancel_flag>());
  CHECK(inv.attempts == 5);
  CHECK(srv.requests() == 5);
  CHECK(inv.result.status == outcome::retryable);
  CHECK(inv.result.content == "error: lookup failed after 5 attempts: timed out after 150 ms");
  CHECK(s.waits == std::vector<milliseconds>{milliseconds(10), milliseconds(20), milliseconds(40),
                                             milliseconds(80)});
}

TEST_CASE("webhook with bad arguments is never called, a 4xx is not retried",
          "[toolkit][webhook]") {
  scripted_server srv([](size_t, const std::string&) {
    return reply{404, "no such id", false, "", ""};
  });
  webhook_tool t(hook(srv.url()));
  recording_sleeper s;
  const auto bad = invoke(
      t, R"({"id":"seven"})", retry_policy{}, s.fn(), [] { return 0.5; },
      std::make_shared<cancel_flag>());
  CHECK(bad.result.status == outcome::invalid_arguments);
  CHECK(bad.result.content ==
        "error: invalid arguments for lookup: id: expected integer, got string");
  CHECK(srv.requests() == 0);
  const auto nf = invoke(
      t, R"({"id":3})", retry_policy{}, s.fn(), [] { return 0.5; },
      std::make_shared<cancel_flag>());
  CHECK(nf.attempts == 1);
  CHECK(nf.result.content == "error: HTTP 404: no such id");
  CHECK(s.waits.empty());
}

TEST_CASE("a connection refused is retryable, a cancelled call stops waiting",
          "[toolkit][webhook]") {
  std::string url;
  {
    scripted_server srv([](size_t, const std::string&) { return reply{}; });
    url = srv.url();
  }  // nothing listens there any more
  webhook_tool t(hook(url));
  recording_sleeper s;
  retry_policy p;
  p.base = milliseconds(1);
  p.max_attempts = 2;
  const auto inv = invoke(
      t, R"({"id":1})", p, s.fn(), [] { return 0.5; }, std::make_shared<cancel_flag>());
  CHECK(inv.attempts == 2);
  CHECK(inv.result.status == outcome::retryable);

  scripted_server hang([](size_t, const std::string&) { return reply{0, "", true, "", ""}; });
  webhook_tool slow(hook(hang.url(), milliseconds(60000)));
  auto cancel = std::make_shared<cancel_flag>();
  std::thread canceller([&] {
    while (hang.requests() == 0) std::this_thread::sleep_for(milliseconds(5));
    cancel->cancel();
  });
  const auto c = invoke(
      slow, R"({"id":1})", retry_policy{}, s.fn(), [] { return 0.5; }, cancel);
  canceller.join();
  CHECK(c.result.status == outcome::cancelled);
  CHECK(c.attempts == 1);
}

TEST_CASE("webhook URLs must be http(s)://host[:port][/path]", "[toolkit][webhook]") {
  CHECK_NOTHROW(webhook_tool(hook("https://x/")));  // TLS, checked as the browser's is
  for (const char* bad : {"ftp://x", "http://", "http://h:x/", "http://u@h/", "https://"}) {
    INFO(bad);
    CHECK_THROWS_AS(webhook_tool(hook(bad)), std::invalid_argument);
  }
}

TEST_CASE("browser: readable text, redirects re-checked against the allowlist, bounded size",
          "[toolkit][browser]") {
  const std::string page =
      "<html><head><title>T</title><style>p{}</style></head><body><h1>Weather</h1>"
      "<script>var x = '<p>';</script><p>Sun &amp; rain<br>tomorrow</p><!-- note --></body></html>";
  std::string self_url;
  scripted_server srv([&](size_t n, const std::string&) {
    if (n == 0) return reply{302, "", false, "/page", ""};
    if (n == 1) return reply{200, page, false, "", "text/html; charset=utf-8"};
    if (n == 2) return reply{301, "", false, "http://localhost:1/elsewhere", ""};
    return reply{200, std::string(5000, 'x'), false, "", "text/plain"};
  });
  browser_config cfg;
  cfg.allowed_hosts = {"127.0.0.1"};
  cfg.max_bytes = 4096;
  browser_tool b(cfg);
  auto run = [&](const std::string& url) {
    return invoke(
        b, json::serialize(json::object{{"url", url}}), retry_policy{}, real_sleeper(),
        [] { return 0.5; }, std::make_shared<cancel_flag>());
  };
  const auto ok = run(srv.url());
  CHECK(ok.result.status == outcome::ok);
  CHECK(ok.result.content == "Weather\nSun & rain\ntomorrow");
  const auto away = run(srv.url());
  CHECK(away.result.status == outcome::error);
  CHECK(away.result.content ==
        "error: http://localhost:1/elsewhere: host 'localhost' is not on the allowlist");
  const auto big = run(srv.url());
  CHECK(big.result.content.find("larger than 4096 bytes") != std::string::npos);
  CHECK(big.attempts == 1);
  const auto denied = run("http://example.com/");
  CHECK(denied.result.content ==
        "error: http://example.com/: host 'example.com' is not on the allowlist");
  CHECK(srv.requests() == 4);
}

TEST_CASE("html_to_text drops markup and keeps the words", "[toolkit][browser]") {
  CHECK(html_to_text("<div>a</div><div>b &lt;c&gt;</div>") == "a\nb <c>");
  CHECK(html_to_text("plain   text\n\n  here") == "plain text here");
  CHECK(html_to_text("<SCRIPT>x</SCRIPT>y") == "y");
}
