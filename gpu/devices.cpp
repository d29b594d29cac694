// GPU description for logs and benchmarks.
#include "gpu/devices.h"

#include <spdlog/fmt/fmt.h>

#ifdef CONCLAVE_HAVE_CUDA
#include "gpu/cuda/device_info.h"
#endif

namespace conclave::gpu {

bool cuda_built() {
#ifdef CONCLAVE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::string describe_gpus() {
#ifdef CONCLAVE_HAVE_CUDA
  std::string why;
  const auto devices = cuda::list_devices(&why);
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
#else
  return "no GPU: CUDA backend not built (CONCLAVE_CUDA=OFF or no nvcc)";
#endif
}

}  // namespace conclave::gpu
