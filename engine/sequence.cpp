// sequence bookkeeping.
#include "engine/sequence.h"

#include <algorithm>

namespace conclave::engine {

const char* to_string(finish_reason r) {
  switch (r) {
    case finish_reason::none:
      return "none";
    case finish_reason::stop:
      return "stop";
    case finish_reason::length:
      return "length";
    case finish_reason::aborted:
      return "abort";
  }
  return "?";
}

sequence::sequence(int64_t id, std::vector<int32_t> prompt, const sampling_params& params)
    : id_(id), tokens_(std::move(prompt)), num_prompt_(tokens_.size()), sampler_(params) {}

std::span<const int32_t> sequence::block_tokens(size_t i, size_t block_size) const {
  const size_t begin = i * block_size;
  const size_t end = std::min(tokens_.size(), begin + block_size);
  return {tokens_.data() + begin, end - begin};
}

}  // namespace conclave::engine
