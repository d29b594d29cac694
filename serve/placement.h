// placement: which replica's engine a request goes to, as plain rules (the router actor
// applies them). A request goes to the engine with the fewest outstanding tokens (the
// reservations of the requests placed there that have not finished); among equals, the
// prompt's first tokens pick one, so requests sharing a prefix meet their prefix cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace conclave::serve {

/// Index into `outstanding` of the engine a prompt goes to; `skip` (may be -1: none) is
/// avoided unless it is the only one. `outstanding` must not be empty.
size_t pick_engine(std::span<const int64_t> outstanding, std::span<const int32_t> prompt,
                   int64_t skip);

/// Tokens a request may still make an engine process (its prompt and resumed output are
/// prefilled, the rest of max_tokens decoded): what placement balances on.
inline int64_t reservation(size_t prompt_tokens, int32_t max_tokens) {
  return static_cast<int64_t>(prompt_tokens) + max_tokens;
}

}  // namespace conclave::serve
