// model_error: the one exception type for bad checkpoints, configs and model input.
// Its message is a single line naming the file, tensor or key at fault and what was
// expected; the `conclave` command prints it and exits with code 2.
#pragma once

#include <stdexcept>
#include <string>

namespace conclave::model {

/// Thrown for any invalid model input; `what()` is one line a user can act on.
class model_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace conclave::model
