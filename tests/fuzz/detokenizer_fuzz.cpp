// libFuzzer target: the incremental detokenizer. The input is read as a sequence of
// token ids (3 bytes each, modulo the vocabulary). Invariants: every push() returns
// whole UTF-8 characters, and push() over all ids then flush() equals decode(ids).
#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer/tokenizer.h"
#include "model/toolcall/json_text.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tok =
      conclave::tokenizer::tokenizer::from_file(CONCLAVE_QWEN3_TOKENIZER_DIR "/tokenizer.json");
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 2 < size; i += 3) {
    const uint32_t v = static_cast<uint32_t>(data[i]) | (static_cast<uint32_t>(data[i + 1]) << 8) |
                       (static_cast<uint32_t>(data[i + 2]) << 16);
    ids.push_back(static_cast<int32_t>(v % tok.vocab_size()));
  }
  for (bool skip : {false, true}) {
    conclave::tokenizer::incremental_detokenizer d(tok, skip);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = d.push(id);
      // Whole characters only: no incomplete sequence at the end of any piece.
      FUZZ_CHECK(conclave::toolcall::incomplete_utf8_tail(piece) == 0);
      streamed += piece;
    }
    streamed += d.flush();
    FUZZ_CHECK(streamed == tok.decode(ids, skip));
  }
  return 0;
}
