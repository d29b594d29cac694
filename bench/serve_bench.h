// serve_bench: a load generator for `conclave serve` (`conclave bench serve`). Streaming
// clients over SSE or WebSocket send completion requests back to back and measure
// TTFT, TPOT, inter-token gaps and end-to-end time per request. Beast stays in the .cpp
// files; this header only has plain types.
#pragma once

#include <CLI/CLI.hpp>
#include <boost/json/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace conclave::bench {

struct serve_bench_options {
  std::string url = "http://127.0.0.1:8080";
  std::string protocol = "sse";  ///< "sse" (one HTTP connection per client) or "ws"
  int32_t clients = 8;           ///< concurrent streams
  int64_t requests = 0;          ///< 0: no count limit (then duration_s must be set)
  int32_t max_tokens = 64;
  int32_t prompt_tokens = 32;  ///< approximate prompt length
  std::string model;           ///< empty: the first id of GET /v1/models
  std::string api_key;
  double duration_s = 0;         ///< 0: no time limit
  std::string json_file;         ///< also write the results here when set
  double stall_timeout_s = 120;  ///< SSE: a request silent this long counts as "timeout"
};

/// Registers the `bench serve` flags on `cmd`.
void add_serve_bench_options(CLI::App& cmd, serve_bench_options& opts);

/// Percentiles of a set of samples. Plain value type; not thread-safe.
class sample_stats {
 public:
  void add(double x);
  size_t count() const { return xs_.size(); }
  bool empty() const { return xs_.empty(); }
  double mean() const;
  double min() const;
  double max() const;
  /// The p-th percentile (0 <= p <= 100), interpolating linearly between the two
  /// closest ranks (numpy's default). Throws std::logic_error when empty and
  /// std::invalid_argument for p outside [0, 100].
  double percentile(double p) const;

 private:
  void sort() const;
  mutable std::vector<double> xs_;
  mutable bool sorted_ = true;
};

/// What one successful stream measured; times are seconds since its request was sent.
struct stream_timing {
  std::vector<double> content_times;  ///< arrival of each chunk with non-empty text
  double end = 0;                     ///< arrival of the end of the stream
  int64_t prompt_tokens = 0;          ///< as the server's usage reports them
  int64_t completion_tokens = 0;
  /// WebSocket: the engine step time the server reports for the request (done frame's
  /// timing.engine_ms, in seconds); negative when not reported.
  double engine_s = -1;
};

/// The numbers of one run.
struct serve_bench_result {
  double wall_s = 0;  ///< first request sent -> last stream ended
  int64_t completed = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  int64_t content_chunks = 0;
  std::map<std::string, int64_t> errors;  ///< by kind ("connect", "http 429", ...)
  sample_stats ttft;  ///< send -> first content chunk (-> end when there is none)
  sample_stats tpot;  ///< per request: mean time between content chunks after the first
  sample_stats gap;   ///< every time between consecutive content chunks
  sample_stats e2e;   ///< send -> end of stream
  /// WebSocket: e2e minus the engine's own step time for the request: what the server
  /// (and the loopback network and this client) add. Meaningful without queueing, i.e.
  /// with fewer streams than the engine runs at once.
  sample_stats overhead;

  /// Folds in a finished stream.
  void add_stream(const stream_timing& t);
  void add_error(const std::string& kind);
  int64_t error_count() const;
  double requests_per_s() const;
  double output_tokens_per_s() const;
};

/// http://host[:port][/prefix] split up; "/v1" at the end of the prefix is dropped so
/// both http://h:p and http://h:p/v1 work.
struct server_url {
  std::string host;
  std::string port = "80";
  std::string prefix;  ///< "" or "/something", prepended to every route
  /// The Host header value.
  std::string host_header() const;
  std::string text() const;
};

/// Throws std::invalid_argument for anything but http://host[:port][/path].
server_url parse_server_url(std::string_view url);

struct http_reply {
  int status = 0;
  std::string body;
};
/// One request on a fresh connection, 30 s timeout; throws std::runtime_error when there
/// is no answer. `body`, when given, is sent as JSON.
http_reply http_call(const server_url& url, std::string_view method, const std::string& target,
                     const std::string& api_key, const std::string& body = {},
                     std::chrono::seconds timeout = std::chrono::seconds(30));

/// Writes `text` (a bench's JSON results) to `path`; throws std::runtime_error naming the
/// file when it cannot.
void write_text_file(const std::string& path, const std::string& text);

/// GET `target`, parsed as JSON; throws std::runtime_error for a status other than 200.
boost::json::value get_json(const server_url& url, const std::string& target,
                            const std::string& api_key);
/// The value of an unlabelled Prometheus sample `name` from GET /metrics; 0 when absent.
double metric(const server_url& url, const std::string& api_key, const std::string& name);

/// An OpenAI error body's `type`, with its `code` when there is one ("server_error
/// (session_stopped)"); "unknown" for anything else.
std::string error_label(std::string_view error_json);

/// The first model id of GET /v1/models. Throws std::runtime_error with a one-line
/// message when the server cannot be reached or answers with an error.
std::string fetch_first_model(const server_url& url, const std::string& api_key);

/// A deterministic text prompt of about `tokens` tokens, distinct per request index
/// (so a prefix cache cannot serve it whole).
std::string bench_prompt(int64_t index, int32_t tokens);

/// The JSON body of a streamed /v1/completions request the benchmark sends
/// (ignore_eos, temperature 0; `include_usage` asks for the usage chunk over SSE).
std::string bench_request_body(const serve_bench_options& opts, const std::string& model,
                               int64_t index, bool include_usage);

/// Hands out request slots until the count or the deadline is reached.
class load_plan {
 public:
  using clock_type = std::chrono::steady_clock;
  /// `max_requests` 0: unlimited; `duration_s` 0: no deadline.
  load_plan(int64_t max_requests, double duration_s, clock_type::time_point start);
  /// Claims a slot for a new request; false when none is left.
  bool next();
  int64_t issued() const { return issued_; }

 private:
  int64_t max_requests_;
  bool has_deadline_;
  clock_type::time_point deadline_;
  int64_t issued_ = 0;
};

/// Runs the load described by `opts` against the server (model already resolved) and
/// returns what it measured. Blocks until the last stream ended.
serve_bench_result run_serve_load(const serve_bench_options& opts, const std::string& model);

/// Number of WebSocket connections used for `clients` streams.
int32_t ws_connections(int32_t clients);

/// The results as text (machine, target, settings, then the numbers).
void print_serve_bench(const serve_bench_options& opts, const std::string& model,
                       const std::string& machine, const serve_bench_result& r, std::FILE* out);
/// The same as JSON.
std::string serve_bench_json(const serve_bench_options& opts, const std::string& model,
                             const std::string& machine, const serve_bench_result& r);

/// `conclave bench serve`: resolves the model, runs, prints (and writes --json).
/// Returns 0 when at least one request completed, 1 otherwise.
int run_serve_bench(const serve_bench_options& opts, std::FILE* out);

/// What one streamed OpenAI chunk object carries for the benchmark.
struct chunk_info {
  bool content = false;  ///< choices[0].text or choices[0].delta.content is non-empty
  bool usage = false;    ///< a usage object is present (then the counts are set)
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};
/// Reads a chunk of /v1/completions or /v1/chat/completions; anything unexpected is
/// simply not content.
chunk_info inspect_chunk(const boost::json::value& chunk);

namespace detail {
/// The load clients' pause after a failed connect, so a dead server is not hammered in a
/// tight loop.
constexpr auto connect_retry_delay = std::chrono::milliseconds(100);

/// The two client kinds; run_serve_load picks one.
serve_bench_result run_sse_load(const serve_bench_options& opts, const std::string& model,
                                const server_url& url);
serve_bench_result run_ws_load(const serve_bench_options& opts, const std::string& model,
                               const server_url& url);
}  // namespace detail

}  // namespace conclave::bench
