// sequence: one request's tokens and KV bookkeeping inside the engine (nano-vllm's
// Sequence): prompt + generated ids, how many have keys/values in the cache, and the
// block table that says where.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/sampler.h"
#include "engine/sampling_params.h"

namespace conclave::engine {

/// swapped: preempted with its computed KV blocks offloaded to host memory (host_table),
/// waiting to be copied back rather than recomputed.
enum class sequence_status : uint8_t { waiting, running, swapped, finished };
enum class finish_reason : uint8_t { none, stop, length, aborted };

const char* to_string(finish_reason r);

class sequence {
 public:
  sequence(int64_t id, std::vector<int32_t> prompt, const sampling_params& params);

  int64_t id() const { return id_; }
  sequence_status status = sequence_status::waiting;
  finish_reason finish = finish_reason::none;

  size_t size() const { return tokens_.size(); }
  size_t num_prompt_tokens() const { return num_prompt_; }
  size_t num_output_tokens() const { return tokens_.size() - num_prompt_; }
  std::span<const int32_t> tokens() const { return tokens_; }
  std::span<const int32_t> prompt() const { return {tokens_.data(), num_prompt_}; }
  std::span<const int32_t> output() const {
    return {tokens_.data() + num_prompt_, num_output_tokens()};
  }
  int32_t last_token() const { return tokens_.back(); }
  void append(int32_t token) { tokens_.push_back(token); }

  /// Tokens whose keys/values are in the cache (prefix hits included).
  size_t num_computed = 0;
  /// Tokens still to run before the next token can be sampled.
  size_t num_uncomputed() const { return tokens_.size() - num_computed; }
  std::vector<int32_t> block_table;
  /// The rank whose KV cache holds this sequence (data-parallel attention; block_table
  /// ids are that rank's). Set at admission; 0 with one rank.
  int32_t rank = 0;
  /// The rank to admit it to when that rank can take it (-1: none): where the prefix it
  /// shares with an earlier sequence is cached.
  int32_t preferred_rank = -1;
  /// Leading blocks of the table already registered for prefix caching.
  size_t num_hashed_blocks = 0;
  /// The chain hash through those blocks (computed from the tokens alone, so it holds
  /// even where a block was released behind a sliding window).
  uint64_t prefix_hash = 0;
  /// While swapped: the host-pool blocks holding its first num_computed tokens' keys and
  /// values (block i of the sequence in host_table[i]).
  std::vector<int32_t> host_table;

  size_t num_blocks(size_t block_size) const {
    return (tokens_.size() + block_size - 1) / block_size;
  }
  /// Tokens of block i (the last may be partial).
  std::span<const int32_t> block_tokens(size_t i, size_t block_size) const;

  const sampling_params& params() const { return sampler_.params(); }
  engine::sampler& sampler() { return sampler_; }
  const engine::sampler& sampler() const { return sampler_; }

 private:
  int64_t id_;
  std::vector<int32_t> tokens_;
  size_t num_prompt_;
  engine::sampler sampler_;
};

}  // namespace conclave::engine
