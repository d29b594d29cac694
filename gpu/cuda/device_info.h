// device_info: the CUDA devices this process can see (launcher header; the query lives
// in device_info.cu so that host code never includes CUDA headers).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace conclave::gpu::cuda {

struct device_info {
  int index = 0;
  std::string name;
  size_t total_bytes = 0;
  size_t free_bytes = 0;
  int sm_count = 0;
  int major = 0, minor = 0;  ///< compute capability
};

/// Devices visible to this process. Empty, with the reason in `why_none`, when there is
/// no driver or no device; never throws.
std::vector<device_info> list_devices(std::string* why_none = nullptr);

/// The device's UUID as nvidia-smi prints it ("GPU-" and 32 hex digits in 8-4-4-4-12):
/// the same card whatever CUDA_VISIBLE_DEVICES numbers it. "" when the query fails (no
/// driver, no such ordinal); never throws, creates no context.
std::string device_uuid(int ordinal);

/// Multiprocessors of the current device, queried once per process (launch planning);
/// throws std::runtime_error (check.h) when the query fails.
int current_sm_count();

/// One line per visible device ("cuda:0 NVIDIA H200, 139.8 GiB (139.1 free), 132 SMs,
/// sm_90"), or "no GPU: " and why there is none. Never throws.
std::string describe_devices();

}  // namespace conclave::gpu::cuda
