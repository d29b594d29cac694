// libFuzzer target: the tokenizer on arbitrary bytes. Invariants: invalid UTF-8 is
// refused with std::invalid_argument (never a crash); valid text encodes to ids inside
// the vocabulary, and decoding them gives exactly the NFC of the input (as Python and
// Rust compute it), with and without special-token matching.
#include <utf8proc.h>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "model/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {
/// Independent UTF-8 check (utf8proc's decoder).
bool valid_utf8(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t len = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(n - i), &cp);
    if (len <= 0) return false;
    i += static_cast<size_t>(len);
  }
  return true;
}

/// NFC via utf8proc, working around utf8proc 2.8's Hangul bug: it "composes" an LV
/// syllable with U+11A7 (the jamo just below the first trailing consonant), dropping the
/// U+11A7; Python and Rust leave both. U+11A7 is a starter that composes with nothing, so
/// NFC(a U+11A7 b) = NFC(a) U+11A7 NFC(b).
std::string reference_nfc(const std::string& text) {
  static const std::string tbase = "\xE1\x86\xA7";
  std::string out;
  size_t start = 0;
  for (;;) {
    const size_t at = text.find(tbase, start);
    const std::string piece =
        text.substr(start, at == std::string::npos ? std::string::npos : at - start);
    uint8_t* nfc = utf8proc_NFC(reinterpret_cast<const uint8_t*>(piece.c_str()));
    FUZZ_CHECK(nfc != nullptr);
    out += reinterpret_cast<const char*>(nfc);
    std::free(nfc);
    if (at == std::string::npos) return out;
    out += tbase;
    start = at + tbase.size();
  }
}

const conclave::tokenizer::tokenizer& qwen() {
  static const auto tok =
      conclave::tokenizer::tokenizer::from_file(CONCLAVE_QWEN3_TOKENIZER_DIR "/tokenizer.json");
  return tok;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto& tok = qwen();
  std::vector<int32_t> ids;
  try {
    ids = tok.encode(text, true);
  } catch (const std::invalid_argument&) {
    FUZZ_CHECK(!valid_utf8(data, size));  // refused only when really invalid
    return 0;
  }
  FUZZ_CHECK(valid_utf8(data, size));
  const bool has_nul = text.find('\0') != std::string::npos;  // utf8proc_NFC stops at NUL
  const std::string expected = has_nul ? std::string() : reference_nfc(text);
  for (int32_t id : ids) FUZZ_CHECK(tok.contains(id));
  if (!has_nul) FUZZ_CHECK(tok.decode(ids) == expected);
  const auto plain = tok.encode(text, false);
  for (int32_t id : plain) FUZZ_CHECK(!tok.is_special(id));
  if (!has_nul) FUZZ_CHECK(tok.decode(plain) == expected);
  return 0;
}
