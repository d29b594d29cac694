// Stop strings: search the held text, cut at the earliest match, keep back the longest
// suffix that is a proper prefix of some stop string.
#include "engine/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace conclave::engine {

stop_matcher::stop_matcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

stop_matcher::result stop_matcher::feed(std::string_view text) {
  result r;
  if (stopped_) return r;
  if (stops_.empty()) {
    r.text.assign(text);
    return r;
  }
  pending_.append(text);
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    r.text = pending_.substr(0, first);
    r.stopped = stopped_ = true;
    pending_.clear();
    return r;
  }
  size_t keep = 0;
  for (const auto& s : stops_) {
    for (size_t n = std::min(s.size() - 1, pending_.size()); n > keep; --n) {
      if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  r.text = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return r;
}

std::string stop_matcher::finish() {
  if (stopped_) return {};
  return std::exchange(pending_, {});
}

}  // namespace conclave::engine
