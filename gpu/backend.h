// backend: the one interface every compute backend (cpu, cuda) implements. A backend
// owns the model's weights and KV cache pages on its device and runs one batched
// forward step: any mix of prefill chunks and single decode tokens, each sequence
// reading and writing its keys/values through its block table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/engine_config.h"
#include "gpu/collectives.h"
#include "gpu/expert_map.h"
#include "gpu/sampling_spec.h"
#include "model/model_config.h"

namespace conclave::model {
class checkpoint;
}

namespace conclave::gpu {

/// A block table entry whose block was released behind a sliding window (never read).
inline constexpr int32_t kNoBlock = -1;

/// Leading blocks no query at position >= `next_pos` reads under a sliding window of
/// `window` keys (a query at p reads p - window < j <= p): those wholly below
/// next_pos - window + 1. 0 without a window.
inline int64_t blocks_behind_window(int64_t next_pos, int64_t window, int64_t block_size) {
  return window > 0 && next_pos >= window ? (next_pos - window + 1) / block_size : 0;
}

/// One sequence's part of a forward step.
struct step_sequence {
  std::span<const int32_t> tokens;  ///< tokens to run now (a prompt chunk or one decode token)
  int32_t num_cached = 0;           ///< tokens already in the KV cache; positions start here
  std::span<const int32_t>
      block_table;          ///< blocks covering positions [0, num_cached + tokens.size())
  bool all_logits = false;  ///< logits for every token run, else only for the last
  /// When set (and not all_logits), a backend that samples on its device returns the
  /// token in step_output::sampled and copies no logits for this sequence; one that does
  /// not ignores it (the engine samples the returned row with the same draw).
  const device_sampling* sample = nullptr;
};

/// Logits of a step: rows of `vocab` floats; sequence i owns rows [row_begin[i], row_begin[i+1]).
/// A sequence the backend sampled on its device owns no rows; its token is sampled[i].
struct step_output {
  size_t vocab = 0;
  std::vector<float> logits;
  std::vector<size_t> row_begin;
  /// Empty, or one entry per sequence: the token sampled on the device, else -1.
  std::vector<int32_t> sampled;

  /// The token the backend sampled for sequence i, or -1.
  int32_t sampled_token(size_t i) const { return i < sampled.size() ? sampled[i] : -1; }

  std::span<const float> row(size_t r) const { return {logits.data() + r * vocab, vocab}; }
  /// The last row of sequence i: the distribution over its next token.
  std::span<const float> last(size_t i) const { return row(row_begin[i + 1] - 1); }
};

/// Size of the paged KV cache a backend allocated.
struct kv_cache_shape {
  int32_t block_size = 16;
  int32_t num_blocks = 0;
  size_t bytes_per_block = 0;  ///< keys + values of one block over all layers
  /// Blocks of the host-memory pool preempted sequences are offloaded to (0: none; a
  /// preempted sequence is then recomputed). Host block ids are [0, num_host_blocks).
  int32_t num_host_blocks = 0;
};

/// One block's keys and values (every layer) copied between the device cache and the
/// host pool.
struct kv_block_copy {
  int32_t device_block = 0;
  int32_t host_block = 0;
  bool operator==(const kv_block_copy&) const = default;
};

/// The copies a step needs before its forward pass: first every to_host copy (a
/// preempted sequence's blocks saved before the step reuses them), then every to_device
/// copy (an offloaded sequence coming back).
struct kv_transfer {
  std::vector<kv_block_copy> to_host;
  std::vector<kv_block_copy> to_device;
  bool empty() const { return to_host.empty() && to_device.empty(); }
};

using backend_options = config::backend_config;

/// Where a backend sits in an expert-parallel replica (docs/cluster.md): its rank, the
/// communicator to the other ranks and where every routed expert lives. The default is a
/// replica of one rank, today's path: no communicator, every expert here.
struct rank_context {
  std::shared_ptr<communicator> comm;           ///< null: one rank
  std::shared_ptr<const expert_map> placement;  ///< null: one rank

  int rank() const { return comm ? comm->rank() : 0; }
  int size() const { return comm ? comm->size() : 1; }
  bool expert_parallel() const { return comm && placement && size() > 1; }
};

class backend {
 public:
  virtual ~backend() = default;
  virtual std::string_view name() const = 0;
  virtual const model::model_config& config() const = 0;
  virtual kv_cache_shape kv_shape() const = 0;
  /// Runs one step. Throws std::invalid_argument for a malformed batch (a block table
  /// too short for its positions, a token id outside the vocabulary, positions past
  /// max_position_embeddings); the KV cache is unchanged then.
  virtual void forward(std::span<const step_sequence> batch, step_output& out) = 0;
  /// Whether forward() samples sequences that carry a device_sampling spec (else the
  /// engine builds no specs and samples every row on the host).
  virtual bool samples_on_device() const { return false; }
  /// Runs `t`'s copies (to_host first, then to_device), complete before the next forward
  /// reads or writes those blocks. Throws std::invalid_argument for a block id outside the
  /// cache or the host pool (kv_shape().num_host_blocks); nothing is copied then. The
  /// default (a backend without a host pool) accepts only an empty transfer.
  virtual void transfer_kv(const kv_transfer& t);

  /// Expert-parallel backends, between steps: switches to `placement` (a later version),
  /// loading from `ckpt` the experts this rank gains and freeing those it loses. Every
  /// rank of the replica must apply the same version before the next step. Others throw
  /// std::logic_error.
  virtual void apply_placement(const model::checkpoint& ckpt,
                               std::shared_ptr<const expert_map> placement);
  /// The placement version this backend runs (0 when not expert-parallel).
  virtual uint64_t placement_version() const { return 0; }
  /// Per layer and expert, the (token, expert) pairs this rank routed since the last call
  /// ([layers][experts]; dense layers empty). Empty when not expert-parallel.
  virtual std::vector<std::vector<int64_t>> take_expert_load() { return {}; }
  /// What the expert-parallel layers cost since the last call.
  virtual ep_stats take_ep_stats() { return {}; }
};

/// Creates the backend `opts.kind` over an opened checkpoint (weights are copied or
/// converted; the checkpoint may be closed afterwards). Throws std::runtime_error for
/// an unknown or unavailable kind.
std::unique_ptr<backend> make_backend(const model::checkpoint& ckpt, const backend_options& opts);
/// The same as one rank of an expert-parallel replica: only the dense weights and this
/// rank's experts are loaded. Throws std::runtime_error when the kind cannot run
/// expert-parallel or the placement does not fit the model.
std::unique_ptr<backend> make_backend(const model::checkpoint& ckpt, const backend_options& opts,
                                      rank_context rank);

/// A backend over random weights generated in device memory for `config` (gen-model's
/// values for `seed` and `init_std`, no checkpoint file). Only the cuda backend can;
/// throws std::runtime_error otherwise.
std::unique_ptr<backend> make_random_backend(const model::model_config& config,
                                             const backend_options& opts, uint64_t seed,
                                             float init_std, rank_context rank = {});

/// `rank` if it is expert-parallel and its placement fits `c` (every MoE layer's experts
/// placed on ranks of this replica), the default (one rank) if it is not expert-parallel;
/// throws std::runtime_error naming what does not fit.
rank_context checked_rank_context(rank_context rank, const model::model_config& c);

/// Checks a batch against the model and KV cache; throws std::invalid_argument.
void validate_batch(std::span<const step_sequence> batch, const model::model_config& config,
                    const kv_cache_shape& kv);

/// Checks a transfer's block ids against the cache and its host pool; throws
/// std::invalid_argument naming the first bad id.
void validate_transfer(const kv_transfer& t, const kv_cache_shape& kv);

/// Bytes of one token's keys (or values) of one layer in the KV cache: kv_heads x
/// head_dim elements of `element_bytes`, or with fp8 (kv_cache_dtype "fp8") one byte each
/// plus one fp32 scale per KV head, the row padded to 16 bytes (16-byte loads).
size_t kv_row_bytes(const model::model_config& config, size_t element_bytes, bool fp8);

/// How many KV blocks `bytes` holds for `config` with rows of `row_bytes` (kv_row_bytes).
int32_t kv_blocks_for_bytes(const model::model_config& config, int32_t block_size, size_t bytes,
                            size_t row_bytes);

}  // namespace conclave::gpu
