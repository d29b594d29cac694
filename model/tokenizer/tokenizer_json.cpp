// Loads a Hugging Face tokenizer.json (simdjson) into the tokenizer's tables, refusing
// anything outside the byte-level BPE family with a one-line model_error naming the key.
#include <simdjson.h>
#include <spdlog/fmt/fmt.h>

#include <climits>
#include <optional>

#include "model/model_error.h"
#include "model/tokenizer/byte_level.h"
#include "model/tokenizer/tokenizer_impl.h"
#include "model/tokenizer/unicode.h"

namespace conclave::tokenizer {
namespace {

namespace dom = simdjson::dom;

// GPT-2's pattern, used by a ByteLevel pre-tokenizer with use_regex: true.
constexpr std::string_view gpt2_regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class reader {
 public:
  explicit reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(std::string_view key, std::string_view what) const {
    throw model::model_error(fmt::format("{}: {}: {}", file_, key, what));
  }
  std::string_view file() const { return file_; }

  dom::object object(dom::element e, std::string_view key) const {
    dom::object o;
    if (e.get(o)) fail(key, "expected an object");
    return o;
  }
  dom::array array(dom::element e, std::string_view key) const {
    dom::array a;
    if (e.get(a)) fail(key, "expected an array");
    return a;
  }
  std::string_view string(dom::element e, std::string_view key) const {
    std::string_view s;
    if (e.get(s)) fail(key, "expected a string");
    return s;
  }
  /// A field, or nullopt when absent or null.
  static std::optional<dom::element> field(dom::object o, std::string_view name) {
    dom::element e;
    if (o[name].get(e) || e.is_null()) return std::nullopt;
    return e;
  }
  dom::element required(dom::object o, std::string_view name, std::string_view key) const {
    auto e = field(o, name);
    if (!e) fail(key, "missing");
    return *e;
  }
  bool flag(dom::object o, std::string_view name, std::string_view key) const {
    auto e = field(o, name);
    if (!e) return false;
    bool b = false;
    if (e->get(b)) fail(key, "expected true or false");
    return b;
  }
  int32_t id(dom::element e, std::string_view key) const {
    int64_t v = 0;
    if (e.get(v) || v < 0 || v > INT32_MAX) fail(key, "expected a token id (integer >= 0)");
    return static_cast<int32_t>(v);
  }
  void expect_type(dom::object o, std::string_view key, std::string_view expected,
                   std::string_view hint) const {
    const std::string_view type = string(required(o, "type", key), key);
    if (type != expected)
      fail(key, fmt::format("\"{}\" is not supported (expected {})", type, hint));
  }

 private:
  std::string file_;
};

// Returns whether NFC applies.
bool read_normalizer(const reader& r, dom::object root) {
  const auto n = reader::field(root, "normalizer");
  if (!n) return false;
  const dom::object o = r.object(*n, "normalizer");
  const std::string_view type =
      r.string(r.required(o, "type", "normalizer.type"), "normalizer.type");
  if (type == "NFC") return true;
  if (type != "Sequence") {
    r.fail("normalizer.type", fmt::format("\"{}\" is not supported (expected NFC)", type));
  }
  bool nfc = false;
  size_t i = 0;
  for (dom::element e :
       r.array(r.required(o, "normalizers", "normalizer.normalizers"), "normalizer.normalizers")) {
    const std::string key = fmt::format("normalizer.normalizers[{}]", i++);
    r.expect_type(r.object(e, key), key + ".type", "NFC", "NFC");
    nfc = true;
  }
  return nfc;
}

void check_byte_level(const reader& r, dom::object o, const std::string& key) {
  if (r.flag(o, "add_prefix_space", key + ".add_prefix_space")) {
    r.fail(key + ".add_prefix_space", "true is not supported (expected false)");
  }
}

// Returns the split regex.
std::string read_pre_tokenizer(const reader& r, dom::object root) {
  const dom::object o =
      r.object(r.required(root, "pre_tokenizer", "pre_tokenizer"), "pre_tokenizer");
  const std::string_view type =
      r.string(r.required(o, "type", "pre_tokenizer.type"), "pre_tokenizer.type");
  if (type == "ByteLevel") {
    check_byte_level(r, o, "pre_tokenizer");
    const auto use_regex = reader::field(o, "use_regex");
    bool b = true;
    if (use_regex && use_regex->get(b)) r.fail("pre_tokenizer.use_regex", "expected true or false");
    if (!b) r.fail("pre_tokenizer.use_regex", "false needs a Split before it (expected true)");
    return std::string(gpt2_regex);
  }
  if (type != "Sequence") {
    r.fail("pre_tokenizer.type",
           fmt::format("\"{}\" is not supported (expected Sequence of Split and ByteLevel)", type));
  }
  const dom::array steps = r.array(r.required(o, "pretokenizers", "pre_tokenizer.pretokenizers"),
                                   "pre_tokenizer.pretokenizers");
  if (steps.size() != 2) r.fail("pre_tokenizer.pretokenizers", "expected [Split, ByteLevel]");
  const dom::object split = r.object(steps.at(0).value(), "pre_tokenizer.pretokenizers[0]");
  const dom::object byte_level = r.object(steps.at(1).value(), "pre_tokenizer.pretokenizers[1]");
  const std::string s = "pre_tokenizer.pretokenizers[0]", b = "pre_tokenizer.pretokenizers[1]";
  r.expect_type(split, s + ".type", "Split", "Split");
  r.expect_type(byte_level, b + ".type", "ByteLevel", "ByteLevel");
  check_byte_level(r, byte_level, b);
  if (r.flag(byte_level, "use_regex", b + ".use_regex")) {
    r.fail(b + ".use_regex", "true after a Split is not supported (expected false)");
  }
  const std::string_view behavior =
      r.string(r.required(split, "behavior", s + ".behavior"), s + ".behavior");
  if (behavior != "Isolated") {
    r.fail(s + ".behavior", fmt::format("\"{}\" is not supported (expected Isolated)", behavior));
  }
  if (r.flag(split, "invert", s + ".invert")) r.fail(s + ".invert", "true is not supported");
  const dom::object pattern =
      r.object(r.required(split, "pattern", s + ".pattern"), s + ".pattern");
  const auto regex = reader::field(pattern, "Regex");
  if (!regex) r.fail(s + ".pattern", "expected {\"Regex\": ...}");
  return std::string(r.string(*regex, s + ".pattern.Regex"));
}

void read_vocab(const reader& r, dom::object model, tokenizer::impl& im) {
  const dom::object vocab = r.object(r.required(model, "vocab", "model.vocab"), "model.vocab");
  std::string bytes;
  for (auto [key, value] : vocab) {
    const int32_t id = r.id(value, fmt::format("model.vocab[\"{}\"]", key));
    if (static_cast<uint32_t>(id) > detail::bpe_model::max_id) {
      r.fail(fmt::format("model.vocab[\"{}\"]", key),
             fmt::format("id {} is too large (at most {})", id, detail::bpe_model::max_id));
    }
    if (static_cast<size_t>(id) < im.entries.size() &&
        im.entries[static_cast<size_t>(id)].present) {
      r.fail("model.vocab", fmt::format("id {} is given to two tokens (one is \"{}\")", id, key));
    }
    if (detail::byte_level_to_bytes(key, bytes)) {
      im.bpe.add_token(bytes, id);
      im.set_entry(id, key, bytes, false);
    } else {
      // Not reachable by BPE; HF's ByteLevel decoder keeps such a token's own bytes.
      im.other_vocab.emplace(std::string(key), id);
      im.set_entry(id, key, key, false);
    }
  }
}

void read_merges(const reader& r, dom::object model, tokenizer::impl& im) {
  const dom::array merges = r.array(r.required(model, "merges", "model.merges"), "model.merges");
  std::string a_bytes, b_bytes;
  uint32_t rank = 0;
  for (dom::element m : merges) {
    const std::string key = fmt::format("model.merges[{}]", rank);
    std::string_view a, b;
    dom::array pair;
    if (!m.get(pair)) {
      if (pair.size() != 2) r.fail(key, "expected a pair of tokens");
      a = r.string(pair.at(0).value(), key);
      b = r.string(pair.at(1).value(), key);
    } else {
      const std::string_view line = r.string(m, key);
      const size_t space = line.find(' ');
      if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos) {
        r.fail(key, fmt::format("\"{}\" is not two tokens separated by one space", line));
      }
      a = line.substr(0, space);
      b = line.substr(space + 1);
    }
    const bool a_ok = detail::byte_level_to_bytes(a, a_bytes);
    const bool b_ok = detail::byte_level_to_bytes(b, b_bytes);
    if (a_ok && b_ok) {
      if (!im.bpe.add_merge(a_bytes, b_bytes, rank)) {
        r.fail(key,
               fmt::format("\"{}\", \"{}\" or their concatenation is not in model.vocab", a, b));
      }
    } else if ((!a_ok && !im.other_vocab.contains(std::string(a))) ||
               (!b_ok && !im.other_vocab.contains(std::string(b)))) {
      r.fail(key, fmt::format("\"{}\" or \"{}\" is not in model.vocab", a, b));
    }  // else a merge of non-byte-level tokens: BPE can never reach it
    ++rank;
  }
}

bool read_model(const reader& r, dom::object root, tokenizer::impl& im) {
  const dom::object model = r.object(r.required(root, "model", "model"), "model");
  r.expect_type(model, "model.type", "BPE", "BPE");
  if (reader::field(model, "dropout"))
    r.fail("model.dropout", "dropout is not supported (expected null)");
  for (const char* name : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const auto e = reader::field(model, name)) {
      if (!r.string(*e, fmt::format("model.{}", name)).empty()) {
        r.fail(fmt::format("model.{}", name), "is not supported (expected \"\" or null)");
      }
    }
  }
  if (r.flag(model, "byte_fallback", "model.byte_fallback")) {
    r.fail("model.byte_fallback", "true is not supported by a byte-level tokenizer");
  }
  const dom::object vocab = r.object(r.required(model, "vocab", "model.vocab"), "model.vocab");
  const dom::array merges = r.array(r.required(model, "merges", "model.merges"), "model.merges");
  if (merges.size() > detail::bpe_model::max_rank) {
    r.fail("model.merges", fmt::format("{} merges are too many (at most {})", merges.size(),
                                       detail::bpe_model::max_rank));
  }
  im.bpe.reserve(vocab.size(), merges.size());
  read_vocab(r, model, im);
  read_merges(r, model, im);
  return r.flag(model, "ignore_merges", "model.ignore_merges");
}

void read_added_tokens(const reader& r, dom::object root, tokenizer::impl& im) {
  const auto list = reader::field(root, "added_tokens");
  if (!list) return;
  size_t i = 0;
  std::string bytes;
  for (dom::element e : r.array(*list, "added_tokens")) {
    const std::string key = fmt::format("added_tokens[{}]", i++);
    const dom::object o = r.object(e, key);
    const int32_t id = r.id(r.required(o, "id", key + ".id"), key + ".id");
    if (static_cast<uint32_t>(id) > detail::bpe_model::max_id) {
      r.fail(key + ".id",
             fmt::format("id {} is too large (at most {})", id, detail::bpe_model::max_id));
    }
    const std::string_view content =
        r.string(r.required(o, "content", key + ".content"), key + ".content");
    if (content.empty()) r.fail(key + ".content", "must not be empty");
    for (const char* name : {"lstrip", "rstrip", "single_word"}) {
      if (r.flag(o, name, fmt::format("{}.{}", key, name))) {
        r.fail(fmt::format("{}.{}", key, name), "true is not supported (expected false)");
      }
    }
    const bool special = r.flag(o, "special", key + ".special");
    const bool normalized = r.flag(o, "normalized", key + ".normalized");
    // The ByteLevel decoder maps a token's characters back to bytes when it can.
    if (!detail::byte_level_to_bytes(content, bytes)) bytes.assign(content);
    im.set_entry(id, content, bytes, special);
    im.added_ids.emplace(std::string(content), id);
    (normalized ? im.normalized_added : im.raw_added).add(content, id, special);
  }
}

}  // namespace

std::shared_ptr<tokenizer::impl> load_tokenizer_json(const std::filesystem::path& path) {
  const reader r(path.string());
  simdjson::padded_string text;
  if (auto err = simdjson::padded_string::load(path.string()).get(text); err) {
    throw model::model_error(
        fmt::format("{}: cannot read: {}", path.string(), simdjson::error_message(err)));
  }
  dom::parser parser;
  dom::element doc;
  if (auto err = parser.parse(text).get(doc); err) {
    throw model::model_error(
        fmt::format("{}: not JSON: {}", path.string(), simdjson::error_message(err)));
  }
  const dom::object root = r.object(doc, "(root)");
  auto im = std::make_shared<tokenizer::impl>();
  im->file = path;
  im->uid = tokenizer::impl::next_uid();
  im->nfc = read_normalizer(r, root);
  if (im->nfc) detail::prepare_nfc();
  const std::string regex = read_pre_tokenizer(r, root);
  const bool ignore_merges = read_model(r, root, *im);
  read_added_tokens(r, root, *im);
  const auto decoder = reader::field(root, "decoder");
  if (!decoder) r.fail("decoder", "missing (expected ByteLevel)");
  r.expect_type(r.object(*decoder, "decoder"), "decoder.type", "ByteLevel", "ByteLevel");
  im->regex = std::make_unique<detail::split_regex>(
      regex, fmt::format("{}: pre_tokenizer regex", path.string()));
  if (const int missing = im->bpe.finish(ignore_merges); missing >= 0) {
    r.fail("model.vocab",
           fmt::format("byte 0x{:02X} has no token (not a byte-level vocabulary)", missing));
  }
  return im;
}

}  // namespace conclave::tokenizer
