// The tokenizer's tables (shared, immutable after loading) and the added-token matcher.
// Internal to model/tokenizer/.
#pragma once

#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/tokenizer/bpe.h"
#include "model/tokenizer/pretokenizer.h"
#include "model/tokenizer/tokenizer.h"

namespace conclave::tokenizer {
namespace detail {

/// Finds added tokens in text: leftmost match first, the longest one at that position
/// (HF's Aho-Corasick in LeftmostLongest mode).
class added_token_matcher {
 public:
  struct match {
    size_t pos = std::string_view::npos;
    size_t len = 0;
    int32_t id = -1;
  };
  void add(std::string_view content, int32_t id, bool special);
  bool empty() const { return count_ == 0; }
  /// First match at or after `from`. A special token met while `allow_special` is false
  /// is stepped over whole, as HF does with encode_special_tokens.
  match find(std::string_view text, size_t from, bool allow_special) const;

 private:
  struct entry {
    std::string content;
    int32_t id;
    bool special;
  };
  std::array<std::vector<entry>, 256> by_first_;  ///< longest first
  std::array<bool, 256> first_{};
  int only_first_ = -1;  ///< the one first byte all tokens share, else -1
  size_t count_ = 0;
};

/// Where a token's text and bytes live in the arenas.
struct token_entry {
  uint32_t text_off = 0, text_len = 0;
  uint32_t bytes_off = 0, bytes_len = 0;
  bool present = false;
  bool special = false;
};

}  // namespace detail

struct tokenizer::impl {
  std::filesystem::path file;
  uint64_t uid = 0;                          ///< never reused; keys the per-thread scratch
  std::vector<detail::token_entry> entries;  ///< by id
  std::string text_arena, bytes_arena;
  std::unordered_map<std::string, int32_t> added_ids;    ///< added token content -> id
  std::unordered_map<std::string, int32_t> other_vocab;  ///< vocab text not in byte-level form
  detail::added_token_matcher raw_added;                 ///< normalized: false (matched before NFC)
  detail::added_token_matcher normalized_added;          ///< normalized: true (matched after NFC)
  detail::bpe_model bpe;
  std::unique_ptr<detail::split_regex> regex;
  bool nfc = false;

  /// Records `id`'s text and decode bytes (later calls for the same id replace them).
  void set_entry(int32_t id, std::string_view text, std::string_view bytes, bool special);
  static uint64_t next_uid() {
    static std::atomic<uint64_t> counter{0};
    return ++counter;
  }
};

/// Parses and validates `path` (model/tokenizer/tokenizer_json.cpp).
std::shared_ptr<tokenizer::impl> load_tokenizer_json(const std::filesystem::path& path);

}  // namespace conclave::tokenizer
