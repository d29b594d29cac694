// The tiny_moe fixture checkpoint (tests/data/tiny_moe), loaded once per test binary and
// shared by the tests that only read it.
#pragma once

#include "model/checkpoint.h"
#include "tests/fixture.h"

namespace conclave::test {

inline const model::checkpoint& tiny_moe() {
  static const model::checkpoint ckpt(data_dir() / "tiny_moe");
  return ckpt;
}

}  // namespace conclave::test
