// stop_matcher: OpenAI `stop` strings over streamed text. Holds back any tail that could
// still become a stop string, so a client never sees part of one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace conclave::engine {

class stop_matcher {
 public:
  explicit stop_matcher(std::vector<std::string> stops);

  struct result {
    std::string text;      ///< safe to emit now
    bool stopped = false;  ///< a stop string was found; nothing after it is emitted
  };

  /// Adds decoded text; returns what can be emitted.
  result feed(std::string_view text);
  /// End of generation: releases the held-back tail.
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace conclave::engine
