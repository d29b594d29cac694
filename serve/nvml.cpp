// NVML through dlopen. The few declarations below follow nvml.h's stable C ABI (the
// _v2 entry points exist since driver 325); we declare them ourselves because the
// toolkit on the build machine ships no nvml.h.
#include "serve/nvml.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace conclave::serve {
namespace {

using nvml_return = int;  // nvmlReturn_t; 0 is NVML_SUCCESS
using nvml_device = struct nvml_device_opaque*;
struct nvml_utilization {
  unsigned int gpu, memory;
};
union nvml_value {
  double d;
  unsigned int ui;
  unsigned long ul;
  unsigned long long ull;
  long long sll;
};
struct nvml_sample {
  unsigned long long timestamp;
  nvml_value value;
};
constexpr int gpu_utilization_samples = 1;  // NVML_GPU_UTILIZATION_SAMPLES
constexpr int value_type_unsigned_int = 1;  // NVML_VALUE_TYPE_UNSIGNED_INT

/// The NVML index of CUDA device `cuda`: CUDA_VISIBLE_DEVICES, when numeric, renumbers.
std::optional<unsigned> nvml_index(int cuda) {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (visible == nullptr || *visible == '\0') return static_cast<unsigned>(cuda);
  std::vector<unsigned> ids;
  std::stringstream ss(visible);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      size_t used = 0;
      const int v = std::stoi(item, &used);
      if (used != item.size() || v < 0) return std::nullopt;  // UUIDs, MIG names
      ids.push_back(static_cast<unsigned>(v));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  if (cuda < 0 || static_cast<size_t>(cuda) >= ids.size()) return std::nullopt;
  return ids[static_cast<size_t>(cuda)];
}

}  // namespace

struct nvml_reader::impl {
  void* lib = nullptr;
  nvml_return (*shutdown)() = nullptr;
  nvml_return (*handle_by_index)(unsigned, nvml_device*) = nullptr;
  nvml_return (*utilization_rates)(nvml_device, nvml_utilization*) = nullptr;
  nvml_return (*samples)(nvml_device, int, unsigned long long, int*, unsigned*,
                         nvml_sample*) = nullptr;
  std::map<int, unsigned long long> last_seen;  ///< per CUDA device: newest sample read
};

nvml_reader::nvml_reader() {
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return;
  auto p = std::make_unique<impl>();
  p->lib = lib;
  auto init = reinterpret_cast<nvml_return (*)()>(dlsym(lib, "nvmlInit_v2"));
  p->shutdown = reinterpret_cast<nvml_return (*)()>(dlsym(lib, "nvmlShutdown"));
  p->handle_by_index =
      reinterpret_cast<decltype(p->handle_by_index)>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  p->utilization_rates =
      reinterpret_cast<decltype(p->utilization_rates)>(dlsym(lib, "nvmlDeviceGetUtilizationRates"));
  p->samples = reinterpret_cast<decltype(p->samples)>(dlsym(lib, "nvmlDeviceGetSamples"));
  if (init == nullptr || p->shutdown == nullptr || p->handle_by_index == nullptr ||
      p->utilization_rates == nullptr || init() != 0) {
    dlclose(lib);
    return;
  }
  spdlog::info("autoscaler: GPU utilisation from NVML");
  impl_ = std::move(p);
}

nvml_reader::~nvml_reader() {
  if (!impl_) return;
  impl_->shutdown();
  dlclose(impl_->lib);
}

bool nvml_reader::available() const {
  return impl_ != nullptr;
}

std::optional<double> nvml_reader::utilization(int cuda_device) {
  if (!impl_) return std::nullopt;
  const auto index = nvml_index(cuda_device);
  nvml_device dev = nullptr;
  if (!index || impl_->handle_by_index(*index, &dev) != 0) return std::nullopt;
  // The driver keeps a sample every 1/6 to 1 s: the mean of those since the last call
  // covers the autoscaler's interval, where one reading would cover only its last second.
  if (impl_->samples != nullptr) {
    auto& seen = impl_->last_seen[cuda_device];
    int type = 0;
    unsigned count = 0;
    if (impl_->samples(dev, gpu_utilization_samples, seen, &type, &count, nullptr) == 0 &&
        count > 0) {
      std::vector<nvml_sample> buf(count);
      if (impl_->samples(dev, gpu_utilization_samples, seen, &type, &count, buf.data()) == 0 &&
          count > 0 && type == value_type_unsigned_int) {
        double sum = 0;
        for (unsigned i = 0; i < count; ++i) {
          sum += buf[i].value.ui;
          seen = std::max(seen, buf[i].timestamp);
        }
        return sum / count / 100.0;
      }
    }
  }
  nvml_utilization u{};
  if (impl_->utilization_rates(dev, &u) != 0) return std::nullopt;
  return u.gpu / 100.0;
}

}  // namespace conclave::serve
