// Resident memory from /proc and the growth rule (see the header).
#include "serve/process_memory.h"

#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <fstream>

namespace conclave::serve {

double resident_mib() {
  std::ifstream f("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (!(f >> pages_total >> pages_resident)) return 0;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) /
         (1024.0 * 1024.0);
}

std::optional<std::string> memory_growth_watch::record(double rss_mib) {
  if (rss_mib <= 0) return std::nullopt;
  readings_.push_back(rss_mib);
  if (readings_.size() > 10) readings_.pop_front();
  if (readings_.size() < 10) return std::nullopt;
  for (size_t i = 1; i < readings_.size(); ++i) {
    if (readings_[i] <= readings_[i - 1]) return std::nullopt;
  }
  if (readings_.back() <= readings_.front() * 1.1) return std::nullopt;
  return fmt::format("resident memory grew at each of the last 10 probes: {:.0f} -> {:.0f} MiB",
                     readings_.front(), readings_.back());
}

}  // namespace conclave::serve
