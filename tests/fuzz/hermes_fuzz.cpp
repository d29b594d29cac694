// libFuzzer target: the streaming JSON (Qwen3 / Hermes) tool-call parser, with the XML
// parser's invariants (toolcall_fuzz.cpp, built here for the JSON format).
#define CONCLAVE_FUZZ_JSON_CALLS 1
#include "tests/fuzz/toolcall_fuzz.cpp"  // NOLINT(bugprone-suspicious-include)
