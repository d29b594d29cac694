// The rank worker actor (see the header).
#include "actors/rank_worker.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>

#include "actors/messages.h"
#include "actors/rank_step_plan.h"
#include "actors/rendezvous_store.h"
#include "gpu/backend.h"
#include "gpu/collectives.h"
#include "model/checkpoint.h"

namespace conclave::actors {
namespace {

struct worker_state {
  rank_spec spec;
  rank_slot slot;
  std::filesystem::path model_dir;
  std::string host;
  std::shared_ptr<gpu::communicator> comm;
  std::unique_ptr<gpu::backend> backend;
  uint64_t placement_version = 0;  ///< the placement this rank's experts follow
};

/// This rank's communicator: Gloo through the coordinator's rendezvous store, or NCCL on
/// the slot's GPU, whose unique id rank 0 makes and the others read from the store.
std::shared_ptr<gpu::communicator> connect(caf::event_based_actor* self, const worker_state& st) {
  const auto& spec = st.spec;
  const auto timeout =
      std::chrono::milliseconds(static_cast<int64_t>(spec.collective_timeout_s * 1000.0));
  const gpu::rendezvous rv = rendezvous_through(self->system(), spec.store);
  if (spec.collectives != "nccl")
    return gpu::make_gloo_communicator(spec.rank, spec.size, rv, spec.prefix, spec.iface, timeout);
  if (st.slot.device < 0)
    throw std::runtime_error(
        fmt::format("rank {}: NCCL collectives on a cpu rank slot {}", spec.rank, spec.slot));
  // The id comes once rank 0 started: every rank of the bring-up starts at once, but give
  // it the time forming the communicator has, not a collective's.
  const auto form = std::max(timeout, gpu::kNcclFormTimeout);
  const std::string key = spec.prefix + "/nccl_id";
  std::array<char, 128> id{};
  if (spec.rank == 0) {
    id = gpu::nccl_unique_id();
    rv.set(key, std::vector<char>(id.begin(), id.end()));
  } else {
    const auto got = rv.get(key, form);
    if (got.size() != id.size())
      throw std::runtime_error(fmt::format("rank {}: the NCCL id under {} has {} bytes, not {}",
                                           spec.rank, key, got.size(), id.size()));
    std::copy(got.begin(), got.end(), id.begin());
  }
  // NCCL's own sockets take [cluster] data_iface too, unless the environment names one.
  if (!spec.iface.empty()) setenv("NCCL_SOCKET_IFNAME", spec.iface.c_str(), 0);
  return gpu::make_nccl_communicator(spec.rank, spec.size, id, st.slot.device, nullptr, timeout);
}

rank_ready start(caf::event_based_actor* self, worker_state& st) {
  const auto& spec = st.spec;
  gpu::rank_context ctx;
  ctx.comm = connect(self, st);
  ctx.placement = std::make_shared<const gpu::expert_map>(spec.placement);
  st.comm = ctx.comm;
  gpu::backend_options opts;
  opts.kind = st.slot.kind;
  if (st.slot.device >= 0) opts.device = st.slot.device;
  opts.block_size = spec.block_size;
  opts.num_kv_blocks = spec.num_kv_blocks;
  if (spec.kv_cache_bytes > 0) opts.kv_cache_bytes = spec.kv_cache_bytes;
  opts.kv_offload_bytes = spec.kv_offload_bytes;
  opts.kv_host_prefix_bytes = spec.kv_host_prefix_bytes;
  opts.threads = spec.threads;
  opts.rope_inv_freq_dtype = spec.rope_inv_freq_dtype;
  opts.weight_dtype = spec.weight_dtype;
  opts.kv_cache_dtype = spec.kv_cache_dtype;
  const model::checkpoint ckpt(st.model_dir);
  st.backend = gpu::make_backend(ckpt, opts, ctx);
  st.placement_version = spec.placement.version;
  rank_ready r;
  r.rank = spec.rank;
  r.worker = caf::actor_cast<caf::actor>(self);
  const auto kv = st.backend->kv_shape();
  r.block_size = kv.block_size;
  r.num_blocks = kv.num_blocks;
  r.num_host_blocks = kv.num_host_blocks;
  r.bytes_per_block = kv.bytes_per_block;
  r.backend = std::string(st.backend->name());
  r.samples_on_device = st.backend->samples_on_device();
  r.where = st.slot.device >= 0 ? fmt::format("{} {}:{}", st.host, st.slot.kind, st.slot.device)
                                : fmt::format("{} cpu", st.host);
  spdlog::info("rank {} of replica {} (epoch {}) ready on {}: {} KV blocks", spec.rank,
               spec.replica, spec.epoch, r.where, kv.num_blocks);
  return r;
}

rank_step_done run_step(worker_state& st, rank_step& step) {
  if (step.epoch != st.spec.epoch)
    throw std::runtime_error(fmt::format("rank {}: a step of epoch {} reached epoch {}",
                                         st.spec.rank, step.epoch, st.spec.epoch));
  if (step.placement_version != st.placement_version)
    throw std::runtime_error(fmt::format("rank {}: step for placement v{}, this rank has v{}",
                                         st.spec.rank, step.placement_version,
                                         st.placement_version));
  std::vector<gpu::step_sequence> batch;
  batch.reserve(step.seqs.size());
  // Sampling specs (and their penalties) live until forward() returns; a backend that does
  // not sample on its device ignores them and answers rows.
  std::vector<gpu::device_sampling> specs(step.seqs.size());
  std::vector<std::vector<gpu::penalty_entry>> penalties(step.seqs.size());
  const bool sample = st.backend->samples_on_device();
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const auto& s = step.seqs[i];
    batch.push_back({s.tokens, s.num_cached, s.block_table, s.all_logits});
    if (sample && s.sample && !s.all_logits) {
      specs[i] = from_wire(s, penalties[i]);
      batch.back().sample = &specs[i];
    }
  }
  gpu::kv_transfer transfer;
  const auto pairs = [](const std::vector<int32_t>& flat, std::vector<gpu::kv_block_copy>& out) {
    if (flat.size() % 2 != 0) throw std::runtime_error("rank step: odd KV transfer list");
    for (size_t i = 0; i < flat.size(); i += 2) out.push_back({flat[i], flat[i + 1]});
  };
  pairs(step.to_host, transfer.to_host);
  pairs(step.to_device, transfer.to_device);
  const auto t0 = std::chrono::steady_clock::now();
  st.backend->transfer_kv(transfer);
  gpu::step_output out;
  st.backend->forward(batch, out);
  rank_step_done done;
  done.epoch = step.epoch;
  done.step = step.step;
  done.forward_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  done.vocab = out.vocab;
  done.logits = std::move(out.logits);
  done.row_begin.assign(out.row_begin.begin(), out.row_begin.end());
  done.sampled = std::move(out.sampled);
  const auto ep = st.backend->take_ep_stats();
  done.expert_s = ep.expert_s;
  done.dispatch_s = ep.dispatch_s;
  done.combine_s = ep.combine_s;
  done.bytes_sent = ep.bytes_sent;
  if (step.want_load) done.expert_load = st.backend->take_expert_load();
  return done;
}

}  // namespace

caf::behavior rank_worker(caf::event_based_actor* self, rank_spec spec, rank_slot slot,
                          std::filesystem::path model_dir, std::string host) {
  auto st = std::make_shared<worker_state>();
  st->spec = std::move(spec);
  st->slot = std::move(slot);
  st->model_dir = std::move(model_dir);
  st->host = std::move(host);
  self->attach_functor([st] {
    // Fencing: a peer still blocked in a collective with this rank fails at once.
    if (st->comm) st->comm->abort();
  });
  return {
      [self, st](start_atom) -> caf::result<rank_ready> {
        try {
          return start(self, *st);
        } catch (const std::exception& e) {
          spdlog::error("rank {} of replica {}: {}", st->spec.rank, st->spec.replica, e.what());
          self->quit(caf::make_error(caf::sec::runtime_error, e.what()));
          return caf::make_error(caf::sec::runtime_error, e.what());
        }
      },
      [self, st](placement_atom, gpu::expert_map& map) -> caf::result<uint64_t> {
        // Between steps (the engine sends none while a placement is being applied).
        if (!st->backend) return caf::make_error(caf::sec::runtime_error, "rank not started");
        try {
          const uint64_t version = map.version;
          if (st->spec.size > 1) {
            const model::checkpoint ckpt(st->model_dir);
            st->backend->apply_placement(ckpt,
                                         std::make_shared<const gpu::expert_map>(std::move(map)));
          }
          st->placement_version = version;
          spdlog::info("rank {} of replica {}: placement v{} applied", st->spec.rank,
                       st->spec.replica, version);
          return version;
        } catch (const std::exception& e) {
          spdlog::error("rank {} of replica {}: placement failed: {}", st->spec.rank,
                        st->spec.replica, e.what());
          self->quit(caf::make_error(caf::sec::runtime_error, e.what()));
          return caf::make_error(caf::sec::runtime_error, e.what());
        }
      },
      [self, st](rank_step_atom, rank_step& step) -> caf::result<rank_step_done> {
        if (!st->backend) return caf::make_error(caf::sec::runtime_error, "rank not started");
        try {
          return run_step(*st, step);
        } catch (const std::exception& e) {
          // A failed collective leaves the peers out of step: this incarnation is over.
          spdlog::error("rank {} of replica {}: step failed: {}", st->spec.rank, st->spec.replica,
                        e.what());
          self->quit(caf::make_error(caf::sec::runtime_error, e.what()));
          return caf::make_error(caf::sec::runtime_error, e.what());
        }
      },
  };
}

}  // namespace conclave::actors
