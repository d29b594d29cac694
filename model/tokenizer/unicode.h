// UTF-8 helpers for the tokenizer: strict validation, lossy decoding the way Python's
// errors="replace" and Rust's from_utf8_lossy do it, and NFC with a cheap quick check.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace conclave::tokenizer::detail {

constexpr size_t utf8_valid = static_cast<size_t>(-1);

/// Offset of the first byte that does not start a well-formed UTF-8 sequence (overlongs,
/// surrogates and code points above U+10FFFF are ill-formed), or utf8_valid. `ascii` is set
/// when every byte is below 0x80.
size_t find_invalid_utf8(std::string_view s, bool& ascii);

/// Appends `s` to `out`, replacing each maximal ill-formed subpart with U+FFFD. With
/// `final` false a trailing sequence that is incomplete but could still become valid is
/// left alone. Returns the number of bytes consumed.
size_t append_utf8_lossy(std::string& out, std::string_view s, bool final);

/// NFC of `s` (valid UTF-8). Returns false, leaving `out` alone, when `s` is made only of
/// characters NFC cannot change in any context (the common case, found by a table lookup
/// per non-ASCII character); otherwise writes the NFC form to `out`, running utf8proc only
/// on the short stretches around the other characters.
bool normalize_nfc(std::string_view s, std::string& out);

/// Builds normalize_nfc's table now (a few ms, once per process) rather than on the
/// first non-ASCII text.
void prepare_nfc();

}  // namespace conclave::tokenizer::detail
