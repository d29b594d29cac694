// Kernel switches read from the environment (A/B runs), for host code and .cu files alike
// (no other includes). Defined in backend_setup.cpp.
#pragma once

#include <cstddef>

namespace conclave::gpu::cuda {

/// On unless the variable is "0".
bool kernel_switch_on(const char* env);

/// `fallback` when unset; a positive integer otherwise, else std::runtime_error naming the
/// variable.
size_t kernel_size_setting(const char* env, size_t fallback);

}  // namespace conclave::gpu::cuda
