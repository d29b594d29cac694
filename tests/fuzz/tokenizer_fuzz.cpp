// libFuzzer target: the tokenizer on arbitrary bytes. Invariants: invalid UTF-8 is
// refused with std::invalid_argument (never a crash); valid text encodes to ids inside
// the vocabulary, and decoding them gives exactly utf8proc's NFC of the input, with and
// without special-token matching.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utf8proc.h>

#include "model/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {
const conclave::tokenizer::tokenizer& qwen() {
  static const auto tok = conclave::tokenizer::tokenizer::from_file(CONCLAVE_QWEN3_TOKENIZER_DIR "/tokenizer.json");
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
    // Must really be invalid UTF-8 (or contain NUL-free text utf8proc rejects).
    FUZZ_CHECK(utf8proc_iterate(data, 0, nullptr) <= 0 || size > 0);
    return 0;
  }
  uint8_t* nfc = utf8proc_NFC(reinterpret_cast<const uint8_t*>(text.c_str()));
  FUZZ_CHECK(nfc != nullptr || text.find('\0') != std::string::npos);
  const std::string expected = nfc ? reinterpret_cast<const char*>(nfc) : text;
  std::free(nfc);
  for (int32_t id : ids) FUZZ_CHECK(tok.contains(id));
  if (text.find('\0') == std::string::npos) FUZZ_CHECK(tok.decode(ids) == expected);
  const auto plain = tok.encode(text, false);
  for (int32_t id : plain) FUZZ_CHECK(!tok.is_special(id));
  if (text.find('\0') == std::string::npos) FUZZ_CHECK(tok.decode(plain) == expected);
  return 0;
}
