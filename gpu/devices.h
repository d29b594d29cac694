// devices: what accelerators this build can use, for logs and benchmark headers. Works
// in CPU-only builds (reports that CUDA was not built).
#pragma once

#include <string>

namespace conclave::gpu {

/// One line per visible GPU ("cuda:0 NVIDIA H200, 139.8 GiB, 132 SMs, sm_90"), or why
/// there is none ("no GPU: CUDA backend not built" / the driver's answer).
std::string describe_gpus();

/// True when this binary was built with the CUDA backend.
bool cuda_built();

/// How many GPUs the CUDA backend can use (0 without CUDA or without a device).
int visible_gpus();

/// The UUID of visible GPU `ordinal` ("GPU-..." as nvidia-smi prints it): one card's name
/// whatever CUDA_VISIBLE_DEVICES numbers it in each process. "" without CUDA or when the
/// driver does not answer.
std::string gpu_uuid(int ordinal);

}  // namespace conclave::gpu
