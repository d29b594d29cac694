// nvml: GPU utilisation from NVIDIA's management library, loaded at run time with
// dlopen("libnvidia-ml.so.1"), so the binary builds without the NVML header and runs on
// machines without a driver (every call then answers "unknown").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace conclave::serve {

/// One GPU's state as NVML reports it; a field NVML would not give is empty.
struct gpu_reading {
  int index = 0;  ///< the CUDA device index (after CUDA_VISIBLE_DEVICES)
  std::string name;
  std::optional<double> utilization;  ///< fraction of the last sample period a kernel ran
  std::optional<uint64_t> memory_used_bytes, memory_total_bytes;
  std::optional<double> temperature_c, power_w;
  std::optional<uint64_t> ecc_corrected, ecc_uncorrected;  ///< aggregate counts (ECC on)
};

class nvml_reader {
 public:
  /// Loads and initialises NVML; when that fails, available() is false and
  /// utilization() answers nothing.
  nvml_reader();
  ~nvml_reader();
  nvml_reader(const nvml_reader&) = delete;
  nvml_reader& operator=(const nvml_reader&) = delete;

  bool available() const;
  /// Fraction of time a kernel ran on CUDA device `cuda_device` since the previous call
  /// for that device (the driver's samples averaged; the latest reading on the first
  /// call). CUDA_VISIBLE_DEVICES is applied to map the CUDA index to NVML's; nothing
  /// when that list is not numeric or NVML cannot answer.
  std::optional<double> utilization(int cuda_device);
  /// Every device this process can use (CUDA_VISIBLE_DEVICES applied when numeric; when it
  /// names UUIDs or MIG instances, every device NVML sees, in NVML's order); empty without
  /// NVML.
  std::vector<gpu_reading> devices();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave::serve
