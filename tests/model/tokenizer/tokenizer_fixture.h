// Helpers for the tokenizer tests: the real Qwen3 tokenizer (loaded once), the corpus and
// its reference ids, NFC through utf8proc, and small synthetic tokenizer.json files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer/tokenizer.h"

namespace conclave::test {

/// third_party/qwen3-tokenizer/tokenizer.json, loaded on first use.
const tokenizer::tokenizer& qwen3();
inline std::filesystem::path qwen3_path() {
  return CONCLAVE_QWEN3_TOKENIZER;
}

struct reference_text {
  std::string text;
  std::vector<int32_t> ids;             ///< HF encode(text, add_special_tokens=False)
  std::vector<int32_t> ids_no_special;  ///< the same with encode_special_tokens=True
  std::string decoded;                  ///< HF decode(ids, skip_special_tokens=False)
};

/// tests/data/tokenizer/corpus.json (tools/make_tokenizer_corpus.py).
const std::vector<std::string>& corpus();
/// tests/data/tokenizer/expected_ids.json (see tools/tokenizer_expected.py).
const std::vector<reference_text>& reference_texts();

/// NFC of valid UTF-8 (embedded NULs kept).
std::string nfc(std::string_view s);

/// Whether every byte of `s` is part of well-formed UTF-8.
bool valid_utf8(std::string_view s);

/// A byte-level BPE tokenizer.json small enough to reason about: ids 0-255 are the bytes,
/// each merge adds the next id, added tokens get the ids given.
struct tiny_spec {
  struct added {
    std::string content;
    int32_t id;
    bool special = true;
    bool normalized = false;
  };
  std::vector<std::pair<std::string, std::string>> merges;  ///< raw bytes, in rank order
  std::vector<added> added_tokens;
  bool legacy_merges = false;  ///< write merges as "a b" strings instead of pairs
  std::string normalizer = R"({"type":"NFC"})";
  std::string pre_tokenizer;  ///< empty: Split(Qwen's regex) + ByteLevel
  std::string decoder =
      R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false})";
};

/// The JSON text for `spec` (tests edit other fields with replace_once).
std::string tiny_tokenizer_json(const tiny_spec& spec);
/// `text` with its one occurrence of `from` replaced by `to` (throws when not exactly one).
std::string replace_once(std::string text, std::string_view from, std::string_view to);
/// Writes `text` to dir/name and returns the path.
std::filesystem::path write_file(const std::filesystem::path& dir, const std::string& name,
                                 std::string_view text);

/// Qwen's pre-tokenizer regex (as in its tokenizer.json).
extern const std::string_view qwen_regex;

}  // namespace conclave::test
