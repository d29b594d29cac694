// Qwen-family byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json, and an
// incremental detokenizer for streaming. Ids match HF `tokenizers`
// (`encode(text, add_special_tokens=False)` and `decode(ids)`).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace conclave::tokenizer {

/// An immutable tokenizer. Copies share their tables; encode and decode may be called from
/// several threads at once (each thread keeps its own matching state and piece cache).
class tokenizer {
 public:
  /// Loads a tokenizer.json of the supported family: NFC (or no) normalizer, a Split(regex,
  /// Isolated) + ByteLevel pre-tokenizer (or a lone ByteLevel with its GPT-2 regex), a BPE
  /// model and a ByteLevel decoder. Anything else, or a malformed file, throws
  /// conclave::model::model_error naming the file and the key.
  static tokenizer from_file(const std::filesystem::path& path);

  /// Token ids of `text`. Added tokens are matched first (leftmost, longest) on the raw
  /// text and never split; with `allow_special` false the *special* ones among them are
  /// encoded as plain text (HF's encode_special_tokens). Throws std::invalid_argument when
  /// `text` is not valid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;

  /// Text of `ids`: token bytes concatenated, ill-formed UTF-8 replaced by U+FFFD. With
  /// `skip_special` the special added tokens are left out. Throws std::invalid_argument
  /// for an id that is not in the vocabulary.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  /// Id of a token given in its vocabulary form ("Ġthe", "<|im_end|>"), if any.
  std::optional<int32_t> token_id(std::string_view token) const;
  /// Vocabulary form of `id`; throws std::invalid_argument when it is not a token.
  std::string_view token(int32_t id) const;
  /// The bytes `id` decodes to (possibly a fragment of a UTF-8 character); throws
  /// std::invalid_argument when it is not a token.
  std::string_view token_bytes(int32_t id) const;
  /// One past the largest id (vocabulary and added tokens).
  size_t vocab_size() const;
  /// Whether `id` is an added token marked special (false for unknown ids).
  bool is_special(int32_t id) const;
  /// Whether `id` names a token (ids may have gaps).
  bool contains(int32_t id) const;
  /// The file this tokenizer was loaded from.
  const std::filesystem::path& path() const;

  struct impl;  ///< the shared tables (model/tokenizer/tokenizer_impl.h)

 private:
  explicit tokenizer(std::shared_ptr<const impl> p) : impl_(std::move(p)) {}
  std::shared_ptr<const impl> impl_;
};

/// Turns a stream of ids into text without ever emitting part of a UTF-8 character:
/// concatenating push() over all ids and then flush() equals tokenizer::decode(all ids).
class incremental_detokenizer {
 public:
  /// `tok` must outlive this object.
  explicit incremental_detokenizer(const tokenizer& tok, bool skip_special = false);

  /// Text completed by `id` (may be empty). Throws std::invalid_argument for an unknown id.
  std::string push(int32_t id);
  /// What is left, with an incomplete trailing sequence as U+FFFD; resets the state.
  std::string flush();

 private:
  const tokenizer* tok_;
  bool skip_special_;
  std::string pending_;  ///< an incomplete UTF-8 sequence (at most 3 bytes)
};

}  // namespace conclave::tokenizer
