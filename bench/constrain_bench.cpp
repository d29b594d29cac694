// `conclave bench constrain` (see the header). Each generation samples from random
// logits (the model's cost is not part of what is measured); per step the constraint's
// own work (walking the output so far, masking the row) is timed apart, next to the
// unconstrained sampler on the same row for scale.
#include "bench/constrain_bench.h"
#include "bench/clock.h"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <random>
#include <vector>

#include "bench/machine_info.h"
#include "engine/constrained/token_constraint.h"
#include "engine/constrained/tool_grammar.h"
#include "engine/sampler.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tool_spec_json.h"

namespace conclave::bench {
namespace {

namespace json = boost::json;
namespace cd = engine::constrained;

const char* bench_tools = R"([
  {"name": "get_weather", "parameters": {"type": "object", "required": ["city"], "properties": {
    "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
    "units": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}},
  {"name": "write_file", "parameters": {"type": "object", "required": ["path", "content"],
    "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}},
  {"name": "set_config", "parameters": {"type": "object", "properties": {
    "config": {"type": "object", "properties": {"retries": {"type": "integer"},
      "verbose": {"type": "boolean"}, "name": {"type": "string"},
      "servers": {"type": "array", "items": {"type": "object",
        "properties": {"port": {"type": "integer"}}}}}},
    "tags": {"type": "array", "items": {"type": "string"}}, "ratio": {"type": "number"},
    "limit": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
    "level": {"enum": [1, 2, 3]}}}}])";

// Structured outputs: the shape of the SDK test's schema (tests/e2e), one level deeper.
const char* bench_schema = R"({"type": "object", "required": ["id", "name", "role", "address"],
  "additionalProperties": false, "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}, "score": {"type": "number"},
    "role": {"type": "string", "enum": ["admin", "user", "guest"]},
    "tags": {"type": "array", "items": {"type": "string"}},
    "address": {"type": "object", "required": ["city"], "properties": {
      "city": {"type": "string"}, "zip": {"type": "string"},
      "geo": {"type": "object", "properties": {"lat": {"type": "number"},
                                               "lon": {"type": "number"}}}}},
    "active": {"type": "boolean"}}})";

struct percentiles {
  double mean = 0, p50 = 0, p99 = 0, max = 0;
};

percentiles summarize(std::vector<double> v) {
  percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / static_cast<double>(v.size());
  p.p50 = v[v.size() / 2];
  p.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  p.max = v.back();
  return p;
}

}  // namespace

void add_constrain_bench_options(CLI::App& cmd, constrain_bench_options& opts) {
  cmd.add_option("--tokenizer", opts.tokenizer_file, "the model's tokenizer.json")
      ->required()
      ->check(CLI::ExistingFile);
  cmd.add_option("--calls", opts.calls, "constrained generations per mode")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd.add_option("--max-tokens", opts.max_tokens, "token budget of each generation")
      ->check(CLI::Range(16, 100000))
      ->capture_default_str();
  cmd.add_option("--seed", opts.seed, "random logits")->capture_default_str();
}

int run_constrain_bench(const constrain_bench_options& opts, std::FILE* out) {
  const auto tok = std::make_shared<const tokenizer::tokenizer>(
      tokenizer::tokenizer::from_file(opts.tokenizer_file));
  const auto t_vocab = clock_type::now();
  std::vector<std::string> bytes(tok->vocab_size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    if (tok->contains(id) && !tok->is_special(id)) bytes[i] = std::string(tok->token_bytes(id));
  }
  const auto vocab = std::make_shared<const cd::vocabulary>(bytes);
  const double vocab_s = seconds_since(t_vocab);
  std::vector<cd::tool_spec> tools;
  const json::value parsed = json::parse(bench_tools);
  for (const auto& t : parsed.as_array()) {
    cd::tool_spec& spec = tools.emplace_back();
    spec.name = std::string(t.at("name").as_string());
    conclave::model::set_parameters(spec, t.at("parameters").as_object());
  }
  const int32_t im_end = tok->token_id("<|im_end|>").value_or(151645);
  const size_t rows = 151936;  // Qwen3's LM head (the tokenizer's ids, padded)

  std::fprintf(out,
               "conclave bench constrain\n  machine:    %s\n  vocabulary: %zu ids; trie "
               "built in %.0f ms\n  logits row: %zu floats; %d generations per mode, "
               "max_tokens %d, random logits (seed %llu)\n",
               describe_machine().c_str(), tok->vocab_size(), vocab_s * 1e3, rows, opts.calls,
               opts.max_tokens, static_cast<unsigned long long>(opts.seed));

  // Tool calls (a forced one, then any of three), then structured outputs: json_object
  // and a json_schema with nested objects, arrays, enums, numbers and required fields.
  struct mode {
    std::string label;
    std::function<cd::dfa()> compile;
  };
  const std::vector<mode> modes{
      {"tool_choice {function: get_weather}",
       [&] { return cd::tool_call_dfa(tools, "get_weather"); }},
      {"tool_choice required (3 tools)", [&] { return cd::tool_call_dfa(tools, ""); }},
      {"response_format json_object", [] { return cd::json_value_dfa(""); }},
      {"response_format json_schema (nested)", [] { return cd::json_value_dfa(bench_schema); }},
  };
  for (const mode& md : modes) {
    const auto t_compile = clock_type::now();
    auto c = std::make_shared<const cd::token_constraint>(vocab, md.compile(),
                                                          std::vector<int32_t>{im_end});
    const double compile_s = seconds_since(t_compile);
    std::mt19937_64 rng(opts.seed);
    std::normal_distribution<float> noise(0.0f, 2.0f);
    std::vector<double> overhead, cold, base;
    size_t steps = 0;
    for (int32_t g = 0; g < opts.calls; ++g) {
      engine::sampling_params p;
      p.temperature = 0.7f;
      p.seed = opts.seed + static_cast<uint64_t>(g);
      p.max_tokens = opts.max_tokens;
      engine::sampler plain(p);
      p.constraint = c;
      engine::sampler constrained(p);
      std::vector<int32_t> output;
      std::vector<float> logits(rows);
      const std::vector<int32_t> prompt{1, 2, 3};
      while (static_cast<int32_t>(output.size()) < opts.max_tokens) {
        for (float& x : logits) x = noise(rng);
        const size_t cached = c->cached_states();
        // What the sampler adds for the constraint: the walk over the output so far and
        // the mask over the row.
        std::vector<float> row(logits);
        const auto t0 = clock_type::now();
        cd::matcher m(c);
        for (int32_t o : output) m.advance(o);
        m.apply(row, opts.max_tokens - static_cast<int64_t>(output.size()));
        const double mask_s = seconds_since(t0);
        (c->cached_states() > cached ? cold : overhead).push_back(mask_s);
        const auto t1 = clock_type::now();
        (void)plain.sample(logits, prompt, output);
        base.push_back(seconds_since(t1));
        const int32_t t = constrained.sample(logits, prompt, output);
        ++steps;
        output.push_back(t);
        if (t == im_end) break;
      }
    }
    const auto o = summarize(overhead), k = summarize(cold), b = summarize(base);
    std::fprintf(
        out,
        "\n  %s: DFA %zu states x %zu byte classes, compiled in %.1f ms\n"
        "    steps: %zu (%.1f per call); states whose mask was computed: %zu\n"
        "    sampler alone (temperature 0.7):   mean %7.1f us  p50 %7.1f us (for scale)\n"
        "    mask per step, cached state:       mean %7.1f us  p50 %7.1f us  p99 %7.1f us\n"
        "    mask per step, first visit (%4zu): mean %7.1f us  p50 %7.1f us  max %7.1f us\n",
        md.label.c_str(), c->grammar().num_states(), c->grammar().num_classes(), compile_s * 1e3,
        steps, static_cast<double>(steps) / opts.calls, c->cached_states(), b.mean * 1e6,
        b.p50 * 1e6, o.mean * 1e6, o.p50 * 1e6, o.p99 * 1e6, cold.size(), k.mean * 1e6, k.p50 * 1e6,
        k.max * 1e6);
  }
  return 0;
}

}  // namespace conclave::bench
