// process_memory: this process's resident memory, and the rule that flags a leak-like
// steady growth across health probes. Plain C++ (the health checker actor calls it).
#pragma once

#include <deque>
#include <optional>
#include <string>

namespace conclave::serve {

/// Resident memory of this process in MiB (0 where unknown).
double resident_mib();

/// Watches resident memory readings, one per probe: growth at each of the last ten
/// readings by more than 10 % in total is flagged.
class memory_growth_watch {
 public:
  /// Records a reading (ignored when <= 0); the finding when the rule fires.
  std::optional<std::string> record(double rss_mib);

 private:
  std::deque<double> readings_;
};

}  // namespace conclave::serve
