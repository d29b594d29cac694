// Tokenizer throughput. The text is generated, not read from disk, so the numbers can be
// reproduced from the binary alone; one word in ten is a random syllable string so
// the piece cache sees misses like it would on real text.
#include "bench/tokenizer_bench.h"
#include "bench/clock.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <random>

#include "bench/machine_info.h"
#include "model/tokenizer/tokenizer.h"

namespace conclave::bench {
namespace {

constexpr std::array<std::string_view, 96> english = {"the",
                                                      "of",
                                                      "and",
                                                      "to",
                                                      "in",
                                                      "is",
                                                      "that",
                                                      "for",
                                                      "it",
                                                      "as",
                                                      "was",
                                                      "with",
                                                      "be",
                                                      "by",
                                                      "on",
                                                      "not",
                                                      "he",
                                                      "this",
                                                      "are",
                                                      "or",
                                                      "his",
                                                      "from",
                                                      "at",
                                                      "which",
                                                      "but",
                                                      "have",
                                                      "an",
                                                      "they",
                                                      "you",
                                                      "were",
                                                      "their",
                                                      "one",
                                                      "all",
                                                      "we",
                                                      "can",
                                                      "her",
                                                      "has",
                                                      "there",
                                                      "been",
                                                      "if",
                                                      "more",
                                                      "when",
                                                      "will",
                                                      "would",
                                                      "who",
                                                      "so",
                                                      "no",
                                                      "tokenizer",
                                                      "server",
                                                      "request",
                                                      "model",
                                                      "inference",
                                                      "throughput",
                                                      "latency",
                                                      "memory",
                                                      "scheduler",
                                                      "actor",
                                                      "message",
                                                      "benchmark",
                                                      "deterministic",
                                                      "unicode",
                                                      "normalization",
                                                      "expert",
                                                      "routing",
                                                      "kernel",
                                                      "attention",
                                                      "sequence",
                                                      "batch",
                                                      "prefill",
                                                      "decode",
                                                      "streaming",
                                                      "response",
                                                      "client",
                                                      "function",
                                                      "variable",
                                                      "parameter",
                                                      "implementation",
                                                      "configuration",
                                                      "performance",
                                                      "it's",
                                                      "don't",
                                                      "we'll",
                                                      "they're",
                                                      "I've",
                                                      "She'd",
                                                      "HE'S",
                                                      "quickly",
                                                      "interesting",
                                                      "international",
                                                      "understanding",
                                                      "responsibility",
                                                      "characteristics",
                                                      "approximately",
                                                      "nevertheless",
                                                      "straightforward",
                                                      "e.g."};
constexpr std::array<std::string_view, 40> code_words = {
    "int",    "return", "const",    "auto",     "std::vector", "size_t",      "if",
    "else",   "for",    "while",    "def",      "self",        "None",        "True",
    "import", "from",   "fn",       "let",      "mut",         "impl",        "pub",
    "struct", "class",  "template", "typename", "nullptr",     "static_cast", "SELECT",
    "WHERE",  "JOIN",   "await",    "async",    "function",    "console.log", "=>",
    "->",     "::",     "==",       "!=",       "+="};
constexpr std::array<std::string_view, 24> syllables = {
    "ka", "ro",  "mi",  "tun", "sel", "ba", "vor", "qui", "zen", "lo", "tra", "ph",
    "ex", "ion", "ght", "str", "ea",  "ou", "ck",  "ny",  "ul",  "dr", "im",  "ps"};
constexpr std::string_view cjk =
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子"
    "说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机"
    "当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心"
    "反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程"
    "展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期"
    "根论运农指几九区强放决西被干做必战先回则任取据处理府研";
constexpr std::array<std::string_view, 14> other_words = {
    "Привет", "мир",   "данных", "Ελληνικά",   "مرحبا",    "بالعالم",    "שלום",
    "नमस्ते",   "दुनिया", "สวัสดี",   "こんにちは", "カタカナ", "안녕하세요", "세계"};
constexpr std::array<std::string_view, 10> emoji = {
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵", "1️⃣", "🚀", "❤️", "🤖", "✨", "🎉"};
constexpr std::array<std::string_view, 5> non_nfc = {"e\u0301", "A\u030A", "n\u0303",
                                                     "\u1100\u1161\u11A8", "o\u0308"};

class text_generator {
 public:
  explicit text_generator(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) { return static_cast<size_t>(rng_() % n); }
  template <class C>
  std::string_view pick(const C& c) {
    return c[below(c.size())];
  }
  std::string word() {
    if (below(10) != 0) return std::string(pick(english));
    std::string w;
    for (size_t k = 1 + below(4); k > 0; --k) w += pick(syllables);
    if (below(8) == 0) w[0] = static_cast<char>(w[0] - 'a' + 'A');
    return w;
  }
  void prose(std::string& out, size_t sentences) {
    for (size_t s = 0; s < sentences; ++s) {
      const size_t words = 4 + below(14);
      for (size_t i = 0; i < words; ++i) {
        std::string w = word();
        if (i == 0 && w[0] >= 'a' && w[0] <= 'z') w[0] = static_cast<char>(w[0] - 'a' + 'A');
        out += w;
        if (i + 1 < words) out += below(12) == 0 ? ", " : " ";
      }
      if (below(10) == 0)
        out += fmt::format(" ({} items, {:.2f}%)", rng_() % 100000, (rng_() % 10000) / 100.0);
      out += below(6) == 0 ? "?" : ".";
      out += below(5) == 0 ? "\n\n" : " ";
    }
  }
  void code(std::string& out, size_t lines) {
    size_t depth = 0;
    const bool tabs = below(3) == 0;
    for (size_t l = 0; l < lines; ++l) {
      for (size_t d = 0; d < depth; ++d) out += tabs ? "\t" : "    ";
      const size_t tokens = 2 + below(7);
      for (size_t i = 0; i < tokens; ++i) {
        if (below(3) == 0) {
          out += pick(code_words);
        } else {
          std::string w = word();
          for (char& c : w) c = (c == ' ' || c == '\'' || c == '.') ? '_' : c;
          out += w;
        }
        out += below(4) == 0 ? "(" : below(3) == 0 ? ", " : " ";
      }
      if (below(5) == 0) out += fmt::format("{}", rng_() % 4096);
      out += below(3) == 0 ? ") {\n" : ";\n";
      if (below(4) == 0) depth = std::min<size_t>(depth + 1, 6);
      if (below(5) == 0 && depth > 0) --depth;
      if (below(9) == 0) out += "\n";
    }
  }
  void chinese(std::string& out, size_t chars) {
    for (size_t i = 0; i < chars; ++i) {
      const size_t k = below(cjk.size() / 3) * 3;
      out += cjk.substr(k, 3);
      if (below(18) == 0) out += below(2) == 0 ? "，" : "。";
    }
    out += "\n";
  }
  void mixed(std::string& out, size_t words) {
    for (size_t i = 0; i < words; ++i) {
      switch (below(8)) {
        case 0:
          out += pick(emoji);
          break;
        case 1:
          out += pick(non_nfc);
          break;
        case 2:
          out += fmt::format("{}", rng_() % 1000000007);
          break;
        default:
          out += pick(other_words);
      }
      out += below(10) == 0 ? "\u3000" : " ";
    }
    out += "\n";
  }

 private:
  std::mt19937_64 rng_;
};

// CPU time of this thread: on a shared machine it tracks the work done, not the waiting.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

void add_tokenizer_bench_options(CLI::App& cmd, tokenizer_bench_options& opts) {
  cmd.add_option("--tokenizer", opts.tokenizer_file, "the model's tokenizer.json")->required();
  cmd.add_option("--mib", opts.mib, "MiB of generated text")
      ->check(CLI::Range(0.01, 4096.0))
      ->capture_default_str();
  cmd.add_option("--repeats", opts.repeats, "timed passes (the best is reported)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd.add_option("--seed", opts.seed, "seed of the generated text")->capture_default_str();
}

std::vector<std::string> make_tokenizer_bench_text(size_t bytes, uint64_t seed) {
  text_generator gen(seed);
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < bytes) {
    std::string doc;
    const size_t target = 1024 + gen.below(15 * 1024);
    while (doc.size() < target) {
      // By bytes, roughly: prose 45%, code 30%, Chinese 10%, other scripts and emoji 15%.
      const size_t kind = gen.below(20);
      if (kind < 9) {
        gen.prose(doc, 3 + gen.below(8));
      } else if (kind < 15) {
        gen.code(doc, 5 + gen.below(20));
      } else if (kind < 17) {
        gen.chinese(doc, 40 + gen.below(200));
      } else {
        gen.mixed(doc, 10 + gen.below(40));
      }
    }
    total += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

int run_tokenizer_bench(const tokenizer_bench_options& opts, std::FILE* out) {
  const auto t_load = clock_type::now();
  const auto tok = tokenizer::tokenizer::from_file(opts.tokenizer_file);
  const double load_s = seconds_since(t_load);
  const auto docs =
      make_tokenizer_bench_text(static_cast<size_t>(opts.mib * 1024 * 1024), opts.seed);
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  const double mib = static_cast<double>(bytes) / (1024.0 * 1024.0);

  std::fprintf(
      out,
      "conclave bench tokenizer\n  machine:   %s\n  tokenizer: %s (%zu ids, loaded in %.0f ms)\n",
      describe_machine().c_str(), opts.tokenizer_file.c_str(), tok.vocab_size(), load_s * 1e3);
  std::fprintf(out,
               "  text:      %.2f MiB in %zu documents (prose, code, CJK, other scripts, emoji; "
               "seed %llu)\n",
               mib, docs.size(), static_cast<unsigned long long>(opts.seed));

  // Warm-up on a slice: page in the tables and JIT code without filling the cache with
  // the whole text.
  std::vector<std::vector<int32_t>> ids(docs.size());
  for (size_t i = 0; i < std::min<size_t>(docs.size(), 16); ++i) ids[i] = tok.encode(docs[i]);

  double encode_s = 1e300, decode_s = 1e300, encode_cpu = 1e300, decode_cpu = 1e300;
  size_t tokens = 0, decoded_bytes = 0;
  for (int32_t r = 0; r < opts.repeats; ++r) {
    auto t0 = clock_type::now();
    double c0 = thread_cpu_seconds();
    for (size_t i = 0; i < docs.size(); ++i) ids[i] = tok.encode(docs[i]);
    encode_s = std::min(encode_s, seconds_since(t0));
    encode_cpu = std::min(encode_cpu, thread_cpu_seconds() - c0);
    tokens = 0;
    for (const auto& v : ids) tokens += v.size();

    t0 = clock_type::now();
    c0 = thread_cpu_seconds();
    decoded_bytes = 0;
    for (const auto& v : ids) decoded_bytes += tok.decode(v).size();
    decode_s = std::min(decode_s, seconds_since(t0));
    decode_cpu = std::min(decode_cpu, thread_cpu_seconds() - c0);
  }
  std::fprintf(out, "  tokens:    %zu (%.2f bytes/token)\n", tokens,
               static_cast<double>(bytes) / static_cast<double>(tokens));
  const double decoded_mib = static_cast<double>(decoded_bytes) / (1024.0 * 1024.0);
  const auto n_tokens = static_cast<double>(tokens);
  std::fprintf(out, "  single thread, best of %d passes; wall clock (thread CPU time):\n",
               opts.repeats);
  std::fprintf(out, "  encode:    %8.1f MiB/s (%.1f)  %12.0f tokens/s (%.0f)\n", mib / encode_s,
               mib / encode_cpu, n_tokens / encode_s, n_tokens / encode_cpu);
  std::fprintf(out, "  decode:    %8.1f MiB/s (%.1f)  %12.0f tokens/s (%.0f)\n",
               decoded_mib / decode_s, decoded_mib / decode_cpu, n_tokens / decode_s,
               n_tokens / decode_cpu);
  return 0;
}

}  // namespace conclave::bench
