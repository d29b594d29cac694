// machine_info: a one-line description of the host a benchmark ran on.
#pragma once

#include <string>

namespace conclave::bench {

/// "CPU model name, N cores, M GiB RAM" from /proc (Linux).
std::string describe_machine();

}  // namespace conclave::bench
