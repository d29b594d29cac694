// Whether this test binary runs under AddressSanitizer (the asan preset), and iteration
// counts scaled for it. Random-walk and property tests run their full counts in the
// default build; under ASan+UBSan each step costs 5-50x more, and a quarter of the walks
// still exercises every code path for memory errors (the asan pass's job).
#pragma once

namespace conclave::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
#else
inline constexpr bool sanitized = false;
#endif

/// n in the default build, a quarter of it (at least 1) under the sanitizers.
constexpr int iterations(int n) {
  return sanitized ? (n / 4 > 0 ? n / 4 : 1) : n;
}

}  // namespace conclave::test
