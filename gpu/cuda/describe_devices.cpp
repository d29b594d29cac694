// The visible CUDA devices as text, for logs and benchmark headers (gpu/devices.h shows
// it; the device benchmark prints it). Host code over device_info.cu's query.
#include <spdlog/fmt/fmt.h>

#include "gpu/cuda/device_info.h"

namespace conclave::gpu::cuda {

std::string describe_devices() {
  std::string why;
  const auto devices = list_devices(&why);
  if (devices.empty()) return "no GPU: " + why;
  std::string out;
  for (const auto& d : devices) {
    if (!out.empty()) out += '\n';
    out +=
        fmt::format("cuda:{} {}, {:.1f} GiB ({:.1f} free), {} SMs, sm_{}{}", d.index, d.name,
                    static_cast<double>(d.total_bytes) / (1ull << 30),
                    static_cast<double>(d.free_bytes) / (1ull << 30), d.sm_count, d.major, d.minor);
  }
  return out;
}

}  // namespace conclave::gpu::cuda
