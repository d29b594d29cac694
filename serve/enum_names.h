// enum_names: an enum's name from a table in declaration order (for to_string).
#pragma once

#include <cstddef>

namespace conclave::serve {

template <typename E, size_t N>
const char* enum_name(E e, const char* const (&names)[N], const char* unknown = "unknown") {
  const auto i = static_cast<size_t>(e);
  return i < N ? names[i] : unknown;
}

}  // namespace conclave::serve
