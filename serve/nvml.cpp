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
struct nvml_memory {
  unsigned long long total, free, used;
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
  nvml_return (*device_count)(unsigned*) = nullptr;
  nvml_return (*name)(nvml_device, char*, unsigned) = nullptr;
  nvml_return (*memory)(nvml_device, nvml_memory*) = nullptr;
  nvml_return (*temperature)(nvml_device, int, unsigned*) = nullptr;
  nvml_return (*power)(nvml_device, unsigned*) = nullptr;
  nvml_return (*ecc)(nvml_device, int, int, unsigned long long*) = nullptr;
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
  // Optional entry points: a reading whose function is missing stays empty.
  p->device_count =
      reinterpret_cast<decltype(p->device_count)>(dlsym(lib, "nvmlDeviceGetCount_v2"));
  p->name = reinterpret_cast<decltype(p->name)>(dlsym(lib, "nvmlDeviceGetName"));
  p->memory = reinterpret_cast<decltype(p->memory)>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
  p->temperature =
      reinterpret_cast<decltype(p->temperature)>(dlsym(lib, "nvmlDeviceGetTemperature"));
  p->power = reinterpret_cast<decltype(p->power)>(dlsym(lib, "nvmlDeviceGetPowerUsage"));
  p->ecc = reinterpret_cast<decltype(p->ecc)>(dlsym(lib, "nvmlDeviceGetTotalEccErrors"));
  if (init == nullptr || p->shutdown == nullptr || p->handle_by_index == nullptr ||
      p->utilization_rates == nullptr || init() != 0) {
    dlclose(lib);
    return;
  }
  spdlog::debug("NVML loaded");
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

std::vector<gpu_reading> nvml_reader::devices() {
  std::vector<gpu_reading> out;
  if (!impl_) return out;
  std::vector<unsigned> indices;
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (visible != nullptr && *visible != '\0') {
    for (int cuda = 0;; ++cuda) {
      const auto i = nvml_index(cuda);
      if (!i) break;
      indices.push_back(*i);
    }
  }
  // Not numeric (GPU UUIDs, MIG names, as Kubernetes and Slurm set it): every device NVML
  // sees, numbered as NVML does.
  if (indices.empty()) {
    unsigned count = 0;
    if (impl_->device_count == nullptr || impl_->device_count(&count) != 0) return out;
    for (unsigned i = 0; i < count; ++i) indices.push_back(i);
  }
  constexpr int temperature_gpu = 0;  // NVML_TEMPERATURE_GPU
  constexpr int ecc_corrected = 0, ecc_uncorrected = 1, ecc_aggregate = 1;
  for (size_t cuda = 0; cuda < indices.size(); ++cuda) {
    nvml_device dev = nullptr;
    if (impl_->handle_by_index(indices[cuda], &dev) != 0) continue;
    gpu_reading g;
    g.index = static_cast<int>(cuda);
    char name[96] = {};
    if (impl_->name != nullptr && impl_->name(dev, name, sizeof name) == 0) g.name = name;
    nvml_utilization u{};
    if (impl_->utilization_rates(dev, &u) == 0) g.utilization = u.gpu / 100.0;
    nvml_memory m{};
    if (impl_->memory != nullptr && impl_->memory(dev, &m) == 0) {
      g.memory_used_bytes = m.used;
      g.memory_total_bytes = m.total;
    }
    unsigned v = 0;
    if (impl_->temperature != nullptr && impl_->temperature(dev, temperature_gpu, &v) == 0)
      g.temperature_c = v;
    if (impl_->power != nullptr && impl_->power(dev, &v) == 0) g.power_w = v / 1000.0;
    unsigned long long n = 0;
    if (impl_->ecc != nullptr && impl_->ecc(dev, ecc_corrected, ecc_aggregate, &n) == 0)
      g.ecc_corrected = n;
    if (impl_->ecc != nullptr && impl_->ecc(dev, ecc_uncorrected, ecc_aggregate, &n) == 0)
      g.ecc_uncorrected = n;
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace conclave::serve
