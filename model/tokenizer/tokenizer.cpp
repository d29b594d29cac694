// Tokenizer entry points: added-token splitting, NFC, pre-tokenization and BPE for encode;
// byte concatenation and lossy UTF-8 for decode; per-thread scratch.
#include "model/tokenizer/tokenizer.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "model/tokenizer/byte_level.h"
#include "model/tokenizer/tokenizer_impl.h"
#include "model/tokenizer/unicode.h"

namespace conclave::tokenizer {
namespace detail {

void added_token_matcher::add(std::string_view content, int32_t id, bool special) {
  const auto first = static_cast<unsigned char>(content[0]);
  auto& list = by_first_[first];
  for (const auto& e : list) {
    if (e.content == content) return;  // the first of duplicate contents wins
  }
  list.push_back({std::string(content), id, special});
  std::stable_sort(list.begin(), list.end(), [](const entry& a, const entry& b) {
    return a.content.size() > b.content.size();
  });
  only_first_ = count_ == 0 || (first_[first] && only_first_ == first) ? first : -1;
  first_[first] = true;
  ++count_;
}

added_token_matcher::match added_token_matcher::find(std::string_view text, size_t from,
                                                     bool allow_special) const {
  const size_t n = text.size();
  size_t p = from;
  while (p < n) {
    if (only_first_ >= 0) {
      const void* q = std::memchr(text.data() + p, only_first_, n - p);
      if (q == nullptr) return {};
      p = static_cast<size_t>(static_cast<const char*>(q) - text.data());
    } else {
      while (p < n && !first_[static_cast<unsigned char>(text[p])]) ++p;
      if (p == n) return {};
    }
    size_t step = 1;
    for (const auto& e : by_first_[static_cast<unsigned char>(text[p])]) {
      if (e.content.size() > n - p ||
          std::memcmp(text.data() + p, e.content.data(), e.content.size()) != 0) {
        continue;
      }
      if (e.special && !allow_special) {
        step = e.content.size();
        break;
      }
      return {p, e.content.size(), e.id};
    }
    p += step;
  }
  return {};
}

}  // namespace detail

namespace {

struct encode_scratch {
  detail::regex_scratch regex;
  detail::bpe_scratch bpe;
  std::string nfc;
};

// Scratch for this thread and tokenizer; a few tokenizers per thread are kept warm.
encode_scratch& scratch_for(uint64_t uid) {
  struct slot {
    uint64_t uid = 0;
    std::unique_ptr<encode_scratch> scratch;
  };
  thread_local std::array<slot, 4> slots;
  thread_local size_t victim = 0;
  for (auto& s : slots) {
    if (s.uid == uid) return *s.scratch;
  }
  slot& s = slots[victim++ % slots.size()];
  s.scratch = std::make_unique<encode_scratch>();
  s.uid = uid;
  return *s.scratch;
}

void encode_normalized(const tokenizer::impl& im, std::string_view text, std::vector<int32_t>& out,
                       encode_scratch& s) {
  im.regex->split(text, s.regex, [&](std::string_view piece) { im.bpe.encode(piece, out, s.bpe); });
}

void encode_segment(const tokenizer::impl& im, std::string_view seg, bool ascii, bool allow_special,
                    std::vector<int32_t>& out, encode_scratch& s) {
  if (seg.empty()) return;
  if (im.nfc && !ascii && detail::normalize_nfc(seg, s.nfc)) seg = s.nfc;
  if (im.normalized_added.empty()) {
    encode_normalized(im, seg, out, s);
    return;
  }
  for (size_t pos = 0;;) {
    const auto m = im.normalized_added.find(seg, pos, allow_special);
    encode_normalized(im, seg.substr(pos, std::min(m.pos, seg.size()) - pos), out, s);
    if (m.id < 0) break;
    out.push_back(m.id);
    pos = m.pos + m.len;
  }
}

const detail::token_entry& entry_of(const tokenizer::impl& im, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= im.entries.size() ||
      !im.entries[static_cast<size_t>(id)].present) {
    throw std::invalid_argument(fmt::format("{} is not a token id (the vocabulary has ids 0..{})",
                                            id, im.entries.size() - 1));
  }
  return im.entries[static_cast<size_t>(id)];
}

}  // namespace

void tokenizer::impl::set_entry(int32_t id, std::string_view text, std::string_view bytes,
                                bool special) {
  const auto i = static_cast<size_t>(id);
  if (i >= entries.size()) entries.resize(i + 1);
  auto& e = entries[i];
  e.text_off = static_cast<uint32_t>(text_arena.size());
  e.text_len = static_cast<uint32_t>(text.size());
  e.bytes_off = static_cast<uint32_t>(bytes_arena.size());
  e.bytes_len = static_cast<uint32_t>(bytes.size());
  e.present = true;
  e.special = special;
  text_arena.append(text);
  bytes_arena.append(bytes);
}

tokenizer tokenizer::from_file(const std::filesystem::path& path) {
  return tokenizer(load_tokenizer_json(path));
}

std::vector<int32_t> tokenizer::encode(std::string_view text, bool allow_special) const {
  bool ascii = false;
  if (const size_t bad = detail::find_invalid_utf8(text, ascii); bad != detail::utf8_valid) {
    throw std::invalid_argument(fmt::format("text is not valid UTF-8 (byte 0x{:02X} at offset {})",
                                            static_cast<unsigned char>(text[bad]), bad));
  }
  const impl& im = *impl_;
  encode_scratch& s = scratch_for(im.uid);
  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 8);
  for (size_t pos = 0;;) {
    const auto m = im.raw_added.find(text, pos, allow_special);
    encode_segment(im, text.substr(pos, std::min(m.pos, text.size()) - pos), ascii, allow_special,
                   out, s);
    if (m.id < 0) break;
    out.push_back(m.id);
    pos = m.pos + m.len;
  }
  return out;
}

std::string tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const impl& im = *impl_;
  std::string bytes;
  for (const int32_t id : ids) {
    const auto& e = entry_of(im, id);
    if (skip_special && e.special) continue;
    bytes.append(im.bytes_arena, e.bytes_off, e.bytes_len);
  }
  bool ascii = false;
  if (detail::find_invalid_utf8(bytes, ascii) == detail::utf8_valid) return bytes;
  std::string text;
  text.reserve(bytes.size() + 16);
  detail::append_utf8_lossy(text, bytes, true);
  return text;
}

std::optional<int32_t> tokenizer::token_id(std::string_view token) const {
  const impl& im = *impl_;
  const std::string key(token);
  if (auto it = im.added_ids.find(key); it != im.added_ids.end()) return it->second;
  std::string bytes;
  if (detail::byte_level_to_bytes(token, bytes)) {
    const int32_t id = im.bpe.find(bytes);
    if (id >= 0) return id;
  }
  if (auto it = im.other_vocab.find(key); it != im.other_vocab.end()) return it->second;
  return std::nullopt;
}

std::string_view tokenizer::token(int32_t id) const {
  const auto& e = entry_of(*impl_, id);
  return std::string_view(impl_->text_arena).substr(e.text_off, e.text_len);
}

std::string_view tokenizer::token_bytes(int32_t id) const {
  const auto& e = entry_of(*impl_, id);
  return std::string_view(impl_->bytes_arena).substr(e.bytes_off, e.bytes_len);
}

size_t tokenizer::vocab_size() const {
  return impl_->entries.size();
}

bool tokenizer::contains(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->entries.size() &&
         impl_->entries[static_cast<size_t>(id)].present;
}

bool tokenizer::is_special(int32_t id) const {
  return contains(id) && impl_->entries[static_cast<size_t>(id)].special;
}

const std::filesystem::path& tokenizer::path() const {
  return impl_->file;
}

incremental_detokenizer::incremental_detokenizer(const tokenizer& tok, bool skip_special)
    : tok_(&tok), skip_special_(skip_special) {}

std::string incremental_detokenizer::push(int32_t id) {
  const std::string_view bytes = tok_->token_bytes(id);  // throws for unknown ids
  std::string out;
  if (skip_special_ && tok_->is_special(id)) return out;
  pending_.append(bytes);
  const size_t used = detail::append_utf8_lossy(out, pending_, false);
  pending_.erase(0, used);
  return out;
}

std::string incremental_detokenizer::flush() {
  std::string out;
  detail::append_utf8_lossy(out, pending_, true);
  pending_.clear();
  return out;
}

}  // namespace conclave::tokenizer
