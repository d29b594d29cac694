// `conclave chat`: an interactive streaming chat over the server's WebSocket API. Ctrl-C
// while an answer streams cancels that request and returns to the prompt; Ctrl-C at the
// prompt or end of input (Ctrl-D) exits.
#include <poll.h>
#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <deque>
#include <functional>
#include <optional>

#include "app/commands.h"
#include "bench/serve_bench.h"

namespace conclave::app {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;

// Set by the SIGINT handler; polled by the loops below (a handler may do nothing more).
volatile std::sig_atomic_t sigint_seen = 0;
extern "C" void on_sigint(int) {
  sigint_seen = 1;
}

struct chat_args {
  std::string url = "http://127.0.0.1:8080";
  std::string model, system, api_key;
  double temperature = 1.0;
  int32_t max_tokens = 0;
};

/// Lines from stdin through read(2): unlike std::getline, waiting here can be
/// interrupted by Ctrl-C, and `idle` keeps the WebSocket served meanwhile.
class line_reader {
 public:
  enum class status { line, eof, interrupted };

  status read(std::string& line, const std::function<void()>& idle) {
    for (;;) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return status::line;
      }
      if (eof_) {
        if (buf_.empty()) return status::eof;
        line = std::move(buf_);
        buf_.clear();
        return status::line;
      }
      if (sigint_seen) return status::interrupted;
      pollfd p{STDIN_FILENO, POLLIN, 0};
      const int r = ::poll(&p, 1, 100);
      idle();
      if (r <= 0) continue;  // timeout, or EINTR: the flag is checked above
      char tmp[4096];
      const ssize_t n = ::read(STDIN_FILENO, tmp, sizeof tmp);
      if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        eof_ = true;
      }
    }
  }

 private:
  std::string buf_;
  bool eof_ = false;
};

class chat_session {
 public:
  /// `has_temperature`: --temperature was given (else the server's default applies).
  chat_session(const chat_args& args, bench::server_url url, std::string model,
               bool has_temperature)
      : args_(args),
        url_(std::move(url)),
        model_(std::move(model)),
        has_temperature_(has_temperature) {}

  /// Connects to /v1/ws; throws std::runtime_error with a one-line reason.
  void connect() {
    io_.restart();
    ws_.emplace(io_);
    in_.clear();
    out_.clear();
    writing_ = false;
    std::optional<beast::error_code> result;
    const char* step = "connect to";
    tcp::resolver resolver(io_);
    beast::error_code ec;
    const auto endpoints = resolver.resolve(url_.host, url_.port, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot resolve {}: {}", url_.host, ec.message()));
    beast::get_lowest_layer(*ws_).expires_after(std::chrono::seconds(30));
    beast::get_lowest_layer(*ws_).async_connect(
        endpoints, [&](beast::error_code e, const tcp::endpoint&) {
          if (e) return void(result = e);
          step = "open a WebSocket on";
          beast::get_lowest_layer(*ws_).expires_never();
          ws_->set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
          const std::string key = args_.api_key;
          ws_->set_option(websocket::stream_base::decorator([key](websocket::request_type& req) {
            if (!key.empty()) req.set(http::field::authorization, "Bearer " + key);
          }));
          ws_->async_handshake(url_.host_header(), url_.prefix + "/v1/ws",
                               [&](beast::error_code e2) { result = e2; });
        });
    while (!result && !io_.stopped()) io_.run_one();
    if (!result || *result) {
      throw std::runtime_error(fmt::format("cannot {} {}: {}", step, url_.text(),
                                           result ? result->message() : "no answer"));
    }
    connected_ = true;
    do_read();
  }

  /// One user message: sends the conversation, streams the answer to stdout.
  void turn(const std::string& text) {
    if (!connected_) {
      try {
        connect();
      } catch (const std::runtime_error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return;
      }
    }
    history_.push_back(json::object{{"role", "user"}, {"content", text}});
    json::array messages;
    if (!args_.system.empty()) {
      messages.push_back(json::object{{"role", "system"}, {"content", args_.system}});
    }
    for (const auto& m : history_) messages.push_back(m);
    json::object body{{"model", model_}, {"messages", std::move(messages)}, {"stream", true}};
    if (has_temperature_) body["temperature"] = args_.temperature;
    if (args_.max_tokens > 0) body["max_tokens"] = args_.max_tokens;
    turn_id_ = fmt::format("turn-{}", ++turns_);
    answer_.clear();
    error_.clear();
    outcome_ = outcome::open;
    send(json::serialize(json::object{{"type", "request"},
                                      {"id", turn_id_},
                                      {"endpoint", "chat.completions"},
                                      {"body", std::move(body)}}));
    bool cancel_sent = false;
    sigint_seen = 0;
    while (outcome_ == outcome::open) {
      if (io_.stopped()) io_.restart();
      io_.run_for(std::chrono::milliseconds(50));
      if (sigint_seen) {
        sigint_seen = 0;
        if (cancel_sent) {
          outcome_ = outcome::cancelled;  // a second Ctrl-C: stop waiting for the server
        } else {
          send(fmt::format(R"({{"type":"cancel","id":"{}"}})", turn_id_));
          cancel_sent = true;
        }
      }
      if (!connected_ && outcome_ == outcome::open) {
        outcome_ = outcome::failed;
        error_ = fmt::format("connection lost ({}); reconnecting with the next message", lost_);
      }
    }
    turn_id_.clear();
    if (thinking_ && isatty(fileno(stdout))) std::fputs("\x1b[0m", stdout);
    thinking_ = false;
    if (!answer_.empty() || outcome_ == outcome::finished) std::fputs("\n", stdout);
    std::fflush(stdout);
    if (outcome_ == outcome::finished) {
      history_.push_back(json::object{{"role", "assistant"}, {"content", answer_}});
      return;
    }
    // A cancelled or failed exchange leaves the conversation as it was before it.
    history_.pop_back();
    if (outcome_ == outcome::cancelled) {
      std::fputs("[cancelled]\n", stderr);
    } else {
      std::replace(error_.begin(), error_.end(), '\n', ' ');  // one line, whatever the server sent
      std::fprintf(stderr, "error: %s\n", error_.c_str());
    }
  }

  /// While waiting for input: answers pings, notices a closed connection.
  void idle() {
    if (io_.stopped()) io_.restart();
    io_.poll();
  }

  void close() {
    if (!connected_) return;
    ws_->async_close(websocket::close_code::normal, [](beast::error_code) {});
    if (io_.stopped()) io_.restart();
    io_.run_for(std::chrono::milliseconds(500));
  }

 private:
  enum class outcome { open, finished, cancelled, failed };

  void send(std::string frame) {
    out_.push_back(std::move(frame));
    if (!writing_) do_write();
  }

  void do_write() {
    writing_ = true;
    ws_->text(true);
    ws_->async_write(asio::buffer(out_.front()), [this](beast::error_code ec, size_t) {
      writing_ = false;
      if (ec) return;  // the read side reports the connection as lost
      out_.pop_front();
      if (!out_.empty()) do_write();
    });
  }

  void do_read() {
    ws_->async_read(in_, [this](beast::error_code ec, size_t) {
      if (ec) {
        connected_ = false;
        lost_ = ec == websocket::error::closed
                    ? fmt::format("closed by the server, code {}", ws_->reason().code)
                    : ec.message();
        return;
      }
      boost::system::error_code pec;
      const json::value v = json::parse(beast::buffers_to_string(in_.data()), pec);
      in_.consume(in_.size());
      if (!pec && v.is_object()) on_frame(v.get_object());
      do_read();
    });
  }

  void on_frame(const json::object& f) {
    const auto str = [](const json::object& o, const char* key) {
      const json::value* v = o.if_contains(key);
      return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
    };
    const std::string type = str(f, "type");
    const json::value* idv = f.if_contains("id");
    const bool no_id = idv == nullptr || idv->is_null();
    if (turn_id_.empty() || (str(f, "id") != turn_id_ && !(type == "error" && no_id))) return;
    if (type == "chunk") {
      const json::value* data = f.if_contains("data");
      const json::value* choices =
          data && data->is_object() ? data->get_object().if_contains("choices") : nullptr;
      if (choices == nullptr || !choices->is_array() || choices->get_array().empty()) return;
      const json::value& c = choices->get_array()[0];
      const json::value* delta = c.is_object() ? c.get_object().if_contains("delta") : nullptr;
      if (delta == nullptr || !delta->is_object()) return;
      // A thinking model's reasoning is shown dimmed (on a terminal) and kept out of the
      // history; the answer follows on its own line.
      const std::string reasoning = str(delta->get_object(), "reasoning_content");
      if (!reasoning.empty()) {
        if (!thinking_) std::fputs(isatty(fileno(stdout)) ? "\x1b[2m" : "", stdout);
        thinking_ = true;
        std::fwrite(reasoning.data(), 1, reasoning.size(), stdout);
      }
      const std::string content = str(delta->get_object(), "content");
      if (!content.empty() && thinking_) {
        std::fputs(isatty(fileno(stdout)) ? "\x1b[0m\n" : "\n", stdout);
        thinking_ = false;
      }
      answer_ += content;
      std::fwrite(content.data(), 1, content.size(), stdout);
      std::fflush(stdout);
    } else if (type == "done") {
      outcome_ = str(f, "finish_reason") == "cancelled" ? outcome::cancelled : outcome::finished;
    } else if (type == "error") {
      const json::value* e = f.if_contains("error");
      error_ = e != nullptr && e->is_object() ? str(e->get_object(), "message") : "";
      if (error_.empty()) error_ = "the server reported an error";
      outcome_ = outcome::failed;
    }
  }

  const chat_args& args_;
  bool thinking_ = false;  // reasoning_content is being printed
  bench::server_url url_;
  std::string model_;
  bool has_temperature_;
  asio::io_context io_;
  std::optional<websocket::stream<beast::tcp_stream>> ws_;
  beast::flat_buffer in_;
  std::deque<std::string> out_;
  bool writing_ = false;
  bool connected_ = false;
  std::string lost_;
  json::array history_;
  int64_t turns_ = 0;
  std::string turn_id_, answer_, error_;
  outcome outcome_ = outcome::open;
};

int run_chat(const chat_args& args, bool has_temperature) {
  const bench::server_url url = bench::parse_server_url(args.url);
  const std::string model =
      args.model.empty() ? bench::fetch_first_model(url, args.api_key) : args.model;
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  chat_session chat(args, url, model, has_temperature);
  chat.connect();
  std::fprintf(stderr,
               "conclave chat: model \"%s\" at %s. Ctrl-C stops an answer; Ctrl-D (or Ctrl-C "
               "at the prompt) exits.\n",
               model.c_str(), url.text().c_str());

  // No SA_RESTART: a Ctrl-C must wake up poll() and read().
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  struct sigaction previous {};
  sigaction(SIGINT, &sa, &previous);

  line_reader reader;
  for (;;) {
    if (tty) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    sigint_seen = 0;
    std::string line;
    if (reader.read(line, [&chat] { chat.idle(); }) != line_reader::status::line) {
      if (tty) std::fputs("\n", stdout);
      break;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    chat.turn(line);
  }
  chat.close();
  sigaction(SIGINT, &previous, nullptr);
  return exit_ok;
}

}  // namespace

command add_chat(CLI::App& app) {
  auto args = std::make_shared<chat_args>();
  auto* cmd = app.add_subcommand(
      "chat", "interactive streaming chat with a running `conclave serve` (WebSocket API)");
  cmd->add_option("--url", args->url, "server address, http://host:port")->capture_default_str();
  cmd->add_option("--model", args->model, "model name (default: the first of GET /v1/models)");
  cmd->add_option("--system", args->system, "system message that starts the conversation");
  cmd->add_option("--api-key", args->api_key, "sent as 'Authorization: Bearer KEY'");
  cmd->add_option("--temperature", args->temperature,
                  "sampling temperature (default: the server's)")
      ->check(CLI::Range(0.0, 2.0));
  cmd->add_option("--max-tokens", args->max_tokens, "longest answer in tokens (default: no limit)")
      ->check(CLI::PositiveNumber);
  return {cmd, [args, cmd] { return run_chat(*args, cmd->count("--temperature") > 0); }};
}

}  // namespace conclave::app
