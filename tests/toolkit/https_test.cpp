// The browser tool over HTTPS against a TLS server on loopback (certificates made by the
// openssl command): a certificate the CA store trusts and that names the host is fetched;
// an untrusted one, or one for another name, is a TLS error, never a page.
#include <stdlib.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "tests/fixture.h"
#include "tests/skip.h"
#include "toolkit/browser_tool.h"
#include "toolkit/invoke.h"

using namespace conclave::toolkit;
namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

/// A self-signed certificate (its own CA) naming `san` ("DNS:localhost,IP:127.0.0.1").
bool make_cert(const std::filesystem::path& dir, const std::string& name, const std::string& san) {
  const auto cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + name +
                   " -addext subjectAltName=" + san + " -keyout '" +
                   (dir / (name + ".key")).string() + "' -out '" +
                   (dir / (name + ".pem")).string() + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

/// Answers every request over TLS with a small HTML page.
class tls_server {
 public:
  tls_server(const std::filesystem::path& cert, const std::filesystem::path& key)
      : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    ctx_.use_certificate_chain_file(cert.string());
    ctx_.use_private_key_file(key.string(), ssl::context::pem);
    thread_ = std::thread([this] {
      for (;;) {
        beast::error_code ec;
        tcp::socket sock(io_);
        acceptor_.accept(sock, ec);
        if (ec || stop_) return;
        beast::ssl_stream<tcp::socket> s(std::move(sock), ctx_);
        s.handshake(ssl::stream_base::server, ec);
        if (ec) continue;  // the client refused our certificate
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        http::read(s, buf, req, ec);
        if (ec) continue;
        http::response<http::string_body> res(http::status::ok, 11);
        res.set(http::field::content_type, "text/html");
        res.body() = "<html><body><p>Secure " + std::string(req.target()) + "</p></body></html>";
        res.prepare_payload();
        http::write(s, res, ec);
        s.shutdown(ec);
      }
    });
  }
  ~tls_server() {
    stop_ = true;
    beast::error_code ec;
    tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::io_context io_;
  ssl::context ctx_{ssl::context::tls_server};
  tcp::acceptor acceptor_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

invocation fetch(browser_tool& b, const std::string& url) {
  return invoke(
      b, boost::json::serialize(boost::json::object{{"url", url}}), retry_policy{}, real_sleeper(),
      [] { return 0.5; }, std::make_shared<cancel_flag>());
}

}  // namespace

TEST_CASE("browser over https: a trusted certificate naming the host, else a TLS error",
          "[toolkit][browser][tls]") {
  conclave::test::temp_dir dir;
  if (!make_cert(dir.path(), "good", "DNS:localhost,IP:127.0.0.1") ||
      !make_cert(dir.path(), "wrong", "DNS:wrong.example"))
    CONCLAVE_SKIP("the openssl command cannot make test certificates");
  browser_config cfg;
  cfg.allowed_hosts = {"127.0.0.1", "localhost"};

  browser_tool b(cfg);
  {
    tls_server srv(dir.path() / "good.pem", dir.path() / "good.key");
    const std::string port = std::to_string(srv.port());
    // Not in the CA store: refused.
    ::setenv("SSL_CERT_FILE", (dir.path() / "wrong.pem").c_str(), 1);
    const auto untrusted = fetch(b, "https://127.0.0.1:" + port + "/a");
    CHECK(untrusted.result.status != outcome::ok);
    CHECK(untrusted.result.content.find("TLS: ") != std::string::npos);
    CHECK(untrusted.result.content.find("certificate verify failed") != std::string::npos);
    // Trusted: by IP and by name.
    ::setenv("SSL_CERT_FILE", (dir.path() / "good.pem").c_str(), 1);
    const auto by_ip = fetch(b, "https://127.0.0.1:" + port + "/a");
    CHECK(by_ip.result.status == outcome::ok);
    CHECK(by_ip.result.content == "Secure /a");
    const auto by_name = fetch(b, "https://localhost:" + port + "/b");
    CHECK(by_name.result.status == outcome::ok);
    CHECK(by_name.result.content == "Secure /b");
  }
  {
    // A trusted certificate for another name.
    tls_server srv(dir.path() / "wrong.pem", dir.path() / "wrong.key");
    ::setenv("SSL_CERT_FILE", (dir.path() / "wrong.pem").c_str(), 1);
    const auto mismatch = fetch(b, "https://127.0.0.1:" + std::to_string(srv.port()) + "/c");
    CHECK(mismatch.result.status != outcome::ok);
    CHECK(mismatch.result.content.find("TLS: ") != std::string::npos);
  }
  ::unsetenv("SSL_CERT_FILE");
  // The allowlist still applies to https.
  const auto denied = fetch(b, "https://example.com/");
  CHECK(denied.result.content ==
        "error: https://example.com/: host 'example.com' is not on the allowlist");
}
