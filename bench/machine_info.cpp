// Host description for benchmark output, read from /proc.
#include "bench/machine_info.h"

#include <spdlog/fmt/fmt.h>
#include <fstream>
#include <thread>

namespace conclave::bench {

std::string describe_machine() {
  std::string cpu = "unknown CPU";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  double mem_gib = 0;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("MemTotal:", 0) == 0) {
      mem_gib = std::stod(line.substr(9)) / (1024.0 * 1024.0);
      break;
    }
  }
  return fmt::format("{}, {} cores, {:.0f} GiB RAM", cpu, std::thread::hardware_concurrency(),
                     mem_gib);
}

}  // namespace conclave::bench
