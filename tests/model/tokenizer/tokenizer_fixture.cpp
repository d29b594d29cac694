// Tokenizer test helpers (see tokenizer_fixture.h).
#include "tests/model/tokenizer/tokenizer_fixture.h"

#include <simdjson.h>
#include <utf8proc.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>

#include "model/tokenizer/byte_level.h"
#include "model/tokenizer/json_io.h"

namespace conclave::test {

const std::string_view qwen_regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const tokenizer::tokenizer& qwen3() {
  static const tokenizer::tokenizer tok = tokenizer::tokenizer::from_file(qwen3_path());
  return tok;
}

namespace {

std::vector<int32_t> id_list(simdjson::dom::element e) {
  std::vector<int32_t> out;
  for (int64_t v : e.get_array()) out.push_back(static_cast<int32_t>(v));
  return out;
}

}  // namespace

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> texts = [] {
    simdjson::dom::parser parser;
    std::vector<std::string> out;
    for (std::string_view s :
         parser.load((std::filesystem::path(CONCLAVE_TOKENIZER_TEST_DATA) / "corpus.json").string())
             .get_array()) {
      out.emplace_back(s);
    }
    return out;
  }();
  return texts;
}

const std::vector<reference_text>& reference_texts() {
  static const std::vector<reference_text> cases = [] {
    simdjson::dom::parser parser;
    std::vector<reference_text> out;
    const auto root = parser.load(
        (std::filesystem::path(CONCLAVE_TOKENIZER_TEST_DATA) / "expected_ids.json").string());
    for (simdjson::dom::element c : root["cases"].get_array()) {
      reference_text r;
      r.text = std::string(std::string_view(c["text"]));
      r.ids = id_list(c["ids"]);
      r.ids_no_special = id_list(c["ids_no_special"]);
      r.decoded = std::string(std::string_view(c["decoded"]));
      out.push_back(std::move(r));
    }
    return out;
  }();
  return cases;
}

std::string nfc(std::string_view s) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                              static_cast<utf8proc_ssize_t>(s.size()), &out,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  if (n < 0) throw std::runtime_error("utf8proc_map failed");
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp = 0;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()) + i,
                                    static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (n <= 0 || cp < 0) return false;
    i += static_cast<size_t>(n);
  }
  return true;
}

std::string tiny_tokenizer_json(const tiny_spec& spec) {
  const auto level = [](std::string_view bytes) {
    std::string t;
    tokenizer::detail::append_byte_level(t, bytes);
    return t;
  };
  const auto quoted = [](std::string_view s) {
    std::string q;
    tokenizer::append_json_string(q, s);
    return q;
  };
  std::map<std::string, int32_t> vocab;
  for (int b = 0; b < 256; ++b) vocab.emplace(level(std::string(1, static_cast<char>(b))), b);
  int32_t next = 256;
  std::string merges;
  for (const auto& [a, b] : spec.merges) {
    vocab.emplace(level(a + b), next);
    if (vocab.at(level(a + b)) == next) ++next;
    // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict (GCC bug 105329)
    // on a literal prepended to a std::string temporary ("[" + s), which -Werror turns
    // into a failed Release build. Same below.
    if (!merges.empty()) merges += ',';
    if (spec.legacy_merges) {
      merges += quoted(level(a) + " " + level(b));
    } else {
      merges += '[';
      merges += quoted(level(a));
      merges += ',';
      merges += quoted(level(b));
      merges += ']';
    }
  }
  std::string vocab_json;
  for (const auto& [text, id] : vocab) {
    if (!vocab_json.empty()) vocab_json += ',';
    vocab_json += quoted(text);
    vocab_json += ':';
    vocab_json += std::to_string(id);
  }
  std::string added;
  for (const auto& t : spec.added_tokens) {
    if (!added.empty()) added += ',';
    added += R"({"id":)";
    added += std::to_string(t.id);
    added += R"(,"content":)";
    added += quoted(t.content);
    added += R"(,"single_word":false,"lstrip":false,"rstrip":false,"normalized":)";
    added += t.normalized ? "true" : "false";
    added += R"(,"special":)";
    added += t.special ? "true" : "false";
    added += '}';
  }
  const std::string pre =
      !spec.pre_tokenizer.empty()
          ? spec.pre_tokenizer
          : R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":)" +
                quoted(qwen_regex) +
                R"(},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]})";
  return R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":[)" + added +
         R"(],"normalizer":)" + spec.normalizer + R"(,"pre_tokenizer":)" + pre +
         R"(,"post_processor":null,"decoder":)" + spec.decoder +
         R"(,"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":"","end_of_word_suffix":"","fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{)" +
         vocab_json + R"(},"merges":[)" + merges + "]}}";
}

std::string replace_once(std::string text, std::string_view from, std::string_view to) {
  const size_t at = text.find(from);
  if (at == std::string::npos || text.find(from, at + 1) != std::string::npos) {
    throw std::runtime_error("replace_once: not exactly one \"" + std::string(from) + "\"");
  }
  return text.replace(at, from.size(), to);
}

std::filesystem::path write_file(const std::filesystem::path& dir, const std::string& name,
                                 std::string_view text) {
  const auto path = dir / name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!f) throw std::runtime_error("cannot write " + path.string());
  return path;
}

}  // namespace conclave::test
