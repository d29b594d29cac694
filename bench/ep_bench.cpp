// Expert-parallel decode steps, timed. The ranks of a replica are threads here; each step
// they start together (a barrier), run their own sequences' forward (the MoE layers meet
// in the collectives) and pick the greedy token. Only forward() is timed; the prefill and
// one warm-up decode step are not.
#include "bench/ep_bench.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <barrier>
#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include "bench/engine_bench.h"
#include "bench/machine_info.h"
#include "gpu/backend.h"
#include "gpu/collectives.h"
#include "gpu/devices.h"
#include "model/checkpoint.h"

namespace conclave::bench {
namespace {

using clock_type = std::chrono::steady_clock;

struct bench_seq {
  std::vector<int32_t> tokens;  ///< prompt, then the greedy continuation
  int32_t cached = 0;
  size_t rank = 0;
  std::vector<int32_t> table;  ///< its blocks on its rank
};

struct step_time {
  clock_type::time_point start, end;
};

/// One replica: a backend per rank and the communicators (kept to abort a failed step).
struct replica {
  std::vector<std::unique_ptr<gpu::backend>> backends;
  std::vector<std::shared_ptr<gpu::communicator>> comms;
  std::shared_ptr<const gpu::expert_map> placement;
};

/// The weights a replica's ranks run: a checkpoint, or random ones of a preset.
struct weights_source {
  std::optional<model::checkpoint> ckpt;
  model::model_config config;
  std::string name;
  float init_std = 0.02f;
  uint64_t seed = 1;

  std::unique_ptr<gpu::backend> make(const gpu::backend_options& b, gpu::rank_context ctx) const {
    if (ckpt) return gpu::make_backend(*ckpt, b, std::move(ctx));
    return gpu::make_random_backend(config, b, seed, init_std, std::move(ctx));
  }
};

weights_source weights_of(const ep_bench_options& opts) {
  weights_source w;
  if (!opts.random_weights) {
    w.ckpt.emplace(opts.model_dir);
    w.config = w.ckpt->config();
    w.name = opts.model_dir;
    return w;
  }
  const random_model m = random_model_of(opts.preset, opts.layers, opts.quant);
  w.config = m.config;
  w.name = m.name + " (random weights)";
  w.init_std = m.init_std;
  return w;
}

/// The GPU of rank r of a replica of `ranks` under `collectives` (0 for cpu ranks).
int device_of(const ep_bench_options& opts, int32_t r, int32_t ranks) {
  if (opts.backend != "cuda" || opts.collectives == "gloo") return 0;
  const int gpus = gpu::visible_gpus();
  if (gpus <= 0) throw std::runtime_error("bench ep: no GPU is visible");
  if (opts.collectives == "nccl" && ranks > gpus)
    throw std::runtime_error(fmt::format(
        "bench ep: {} NCCL ranks need {} GPUs (one each); {} are visible", ranks, ranks, gpus));
  return r % gpus;
}

replica make_replica(const weights_source& w, const ep_bench_options& opts, int32_t ranks,
                     int32_t kv_blocks) {
  gpu::backend_options b;
  b.kind = opts.backend;
  b.threads = opts.threads_per_rank;
  b.num_kv_blocks = kv_blocks;
  replica rep;
  if (ranks == 1) {
    rep.backends.push_back(w.make(b, {}));
    return rep;
  }
  if (opts.collectives == "gloo" && !gpu::have_gloo())
    throw std::runtime_error(
        "bench ep: R > 1 over gloo needs Gloo, and this conclave was built "
        "without it");
  const auto n = static_cast<size_t>(ranks);
  rep.placement =
      std::make_shared<const gpu::expert_map>(gpu::expert_map::contiguous(w.config, ranks));
  rep.backends.resize(n);
  rep.comms.resize(n);
  auto rv = gpu::make_local_rendezvous();
  const auto timeout =
      std::chrono::milliseconds(static_cast<int64_t>(opts.collective_timeout_s * 1e3));
  std::array<char, 128> nccl_id{};
  if (opts.collectives == "nccl") nccl_id = gpu::nccl_unique_id();
  auto local = opts.collectives == "local" ? gpu::make_local_device_group(ranks, timeout) : nullptr;
  // Every rank connects to all others at once, so they are made in parallel.
  std::vector<std::future<void>> made;
  for (size_t r = 0; r < n; ++r) {
    made.push_back(std::async(std::launch::async, [&, r] {
      const auto rank = static_cast<int32_t>(r);
      gpu::backend_options rb = b;
      rb.device = device_of(opts, rank, ranks);
      gpu::rank_context ctx;
      if (opts.collectives == "nccl") {
        ctx.comm = gpu::make_nccl_communicator(rank, ranks, nccl_id, rb.device, nullptr, timeout);
      } else if (opts.collectives == "local") {
        ctx.comm = gpu::make_local_device_communicator(local, rank, rb.device);
      } else {
        ctx.comm = gpu::make_gloo_communicator(rank, ranks, *rv, "ep", "", timeout);
      }
      rep.comms[r] = ctx.comm;
      ctx.placement = rep.placement;
      rep.backends[r] = w.make(rb, ctx);
    }));
  }
  std::string error;
  for (auto& m : made) {
    try {
      m.get();
    } catch (const std::exception& e) {
      if (error.empty()) error = e.what();
    }
  }
  if (!error.empty())
    throw std::runtime_error(
        fmt::format("bench ep: the {} backend cannot run a rank of an "
                    "expert-parallel replica of {}: {}",
                    opts.backend, ranks, error));
  return rep;
}

int32_t argmax(std::span<const float> row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

/// Runs `steps` steps on every rank's thread: each step runs what a sequence has not
/// cached, at most `chunk` tokens of it (0: all), and a sequence whose prompt is all in
/// gets its greedy token appended. times[rank][step] gets each forward's start and end. A
/// rank that fails aborts every communicator so no peer waits for it; the first error is
/// rethrown.
void run_steps(replica& rep, std::vector<bench_seq>& seqs, int32_t steps,
               std::vector<std::vector<step_time>>& times, int32_t chunk = 0) {
  const size_t ranks = rep.backends.size();
  times.assign(ranks, {});
  std::barrier sync(static_cast<std::ptrdiff_t>(ranks));
  std::mutex mu;
  std::exception_ptr first_error;
  auto rank_loop = [&](size_t r) {
    try {
      for (int32_t step = 0; step < steps; ++step) {
        std::vector<size_t> mine, run;
        std::vector<gpu::step_sequence> batch;
        for (size_t i = 0; i < seqs.size(); ++i) {
          if (seqs[i].rank != r) continue;
          auto& s = seqs[i];
          const size_t left = s.tokens.size() - static_cast<size_t>(s.cached);
          mine.push_back(i);
          run.push_back(chunk > 0 ? std::min(left, static_cast<size_t>(chunk)) : left);
          batch.push_back({std::span<const int32_t>(s.tokens).subspan(static_cast<size_t>(s.cached),
                                                                      run.back()),
                           s.cached, s.table, false});
        }
        gpu::step_output out;
        sync.arrive_and_wait();
        const auto t0 = clock_type::now();
        rep.backends[r]->forward(batch, out);
        times[r].push_back({t0, clock_type::now()});
        for (size_t j = 0; j < mine.size(); ++j) {
          auto& s = seqs[mine[j]];
          s.cached += static_cast<int32_t>(run[j]);
          if (static_cast<size_t>(s.cached) < s.tokens.size()) continue;  // more prompt
          const int32_t sampled = out.sampled_token(j);
          s.tokens.push_back(sampled >= 0 ? sampled : argmax(out.last(j)));
        }
      }
    } catch (...) {
      {
        std::lock_guard lock(mu);
        if (!first_error) first_error = std::current_exception();
      }
      for (auto& c : rep.comms)
        if (c) c->abort();
      sync.arrive_and_drop();
    }
  };
  std::vector<std::thread> threads;
  for (size_t r = 1; r < ranks; ++r) threads.emplace_back(rank_loop, r);
  rank_loop(0);
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

double ms(clock_type::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

/// From the first rank's start of step `first` to the last rank's end of step `last`.
double span_ms(const std::vector<std::vector<step_time>>& times, size_t first, size_t last) {
  auto start = times[0][first].start, end = times[0][last].end;
  for (const auto& r : times) {
    start = std::min(start, r[first].start);
    end = std::max(end, r[last].end);
  }
  return ms(end - start);
}

/// Drops what the backends counted so far (warm-up, another measurement).
void forget_stats(replica& rep) {
  for (auto& b : rep.backends) {
    b->take_ep_stats();
    b->take_expert_load();
  }
}

/// Busiest rank's routed rows over the mean, with every expert on its placement's holder.
double imbalance(const replica& rep, const std::vector<std::vector<std::vector<int64_t>>>& loads) {
  if (!rep.placement) return 0;
  std::vector<double> per_rank(rep.backends.size(), 0);
  for (const auto& load : loads) {
    for (size_t l = 0; l < load.size(); ++l) {
      for (size_t e = 0; e < load[l].size(); ++e) {
        if (load[l][e] == 0) continue;
        const auto to =
            rep.placement->route(static_cast<int32_t>(l), static_cast<int32_t>(e), 0, 0);
        per_rank[static_cast<size_t>(to)] += static_cast<double>(load[l][e]);
      }
    }
  }
  const double total = std::accumulate(per_rank.begin(), per_rank.end(), 0.0);
  if (total <= 0) return 0;
  return *std::max_element(per_rank.begin(), per_rank.end()) /
         (total / static_cast<double>(per_rank.size()));
}

ep_bench_row measure(replica& rep, const ep_bench_options& opts, int32_t batch, int32_t per_seq,
                     std::mt19937_64& rng, int64_t vocab) {
  const size_t ranks = rep.backends.size();
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::vector<bench_seq> seqs(static_cast<size_t>(batch));
  std::vector<int32_t> next_block(ranks, 0);
  for (size_t i = 0; i < seqs.size(); ++i) {
    auto& s = seqs[i];
    s.tokens.resize(static_cast<size_t>(opts.prompt_len));
    for (auto& t : s.tokens) t = token(rng);
    s.rank = i % ranks;
    s.table.resize(static_cast<size_t>(per_seq));
    std::iota(s.table.begin(), s.table.end(), next_block[s.rank]);
    next_block[s.rank] += per_seq;
  }
  std::vector<std::vector<step_time>> times;
  run_steps(rep, seqs, 2, times);  // the prefill and one warm-up decode step
  forget_stats(rep);
  run_steps(rep, seqs, opts.steps, times);

  ep_bench_row row;
  row.ranks = static_cast<int32_t>(ranks);
  row.batch = batch;
  row.steps = opts.steps;
  row.expert_parallel = rep.placement != nullptr;
  gpu::ep_stats sum;
  std::vector<std::vector<std::vector<int64_t>>> loads;
  for (auto& b : rep.backends) {
    sum += b->take_ep_stats();
    loads.push_back(b->take_expert_load());
  }
  double step_total = 0, forward_total = 0;
  for (size_t s = 0; s < static_cast<size_t>(opts.steps); ++s) {
    for (size_t r = 0; r < ranks; ++r) forward_total += ms(times[r][s].end - times[r][s].start);
    step_total += span_ms(times, s, s);
  }
  const double steps = opts.steps;
  const double rank_steps = steps * static_cast<double>(ranks);
  row.step_ms = step_total / steps;
  row.expert_ms = sum.expert_s * 1e3 / rank_steps;
  row.dispatch_ms = sum.dispatch_s * 1e3 / rank_steps;
  row.combine_ms = sum.combine_s * 1e3 / rank_steps;
  row.rest_ms = forward_total / rank_steps - row.expert_ms - row.dispatch_ms - row.combine_ms;
  row.bytes_per_step = static_cast<double>(sum.bytes_sent) / steps;
  row.tokens_per_s = row.step_ms > 0 ? 1e3 * batch / row.step_ms : 0;
  row.imbalance = imbalance(rep, loads);
  row.moe_layer_calls = sum.layers;
  return row;
}

/// The time to first token of one `len`-token prompt on rank 0 of `rep`, read `chunk`
/// tokens a step (every rank steps together; the others have nothing to run).
ep_prefill_row measure_prefill(replica& rep, int32_t len, int32_t chunk, std::mt19937_64& rng,
                               int64_t vocab, int32_t block_size) {
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::vector<bench_seq> seqs(1);
  auto& s = seqs[0];
  s.tokens.resize(static_cast<size_t>(len));
  for (auto& t : s.tokens) t = token(rng);
  s.rank = 0;
  s.table.resize(static_cast<size_t>((len + 1 + block_size - 1) / block_size));
  std::iota(s.table.begin(), s.table.end(), 0);
  const int32_t steps = (len + chunk - 1) / chunk;
  std::vector<std::vector<step_time>> times;
  run_steps(rep, seqs, steps, times, chunk);
  forget_stats(rep);
  ep_prefill_row row;
  row.ranks = static_cast<int32_t>(rep.backends.size());
  row.tokens = len;
  row.chunk = chunk;
  row.steps = steps;
  row.ttft_ms = span_ms(times, 0, static_cast<size_t>(steps) - 1);
  row.tokens_per_s = row.ttft_ms > 0 ? 1e3 * len / row.ttft_ms : 0;
  return row;
}

std::string prefill_json(const ep_prefill_row& r, const ep_bench_options& o) {
  return fmt::format(
      "{{\"bench\":\"ep_prefill\",\"backend\":\"{}\",\"collectives\":\"{}\",\"ranks\":{},"
      "\"tokens\":{},\"chunk\":{},\"steps\":{},\"ttft_ms\":{:.3f},\"tokens_per_s\":{:.1f},"
      "\"speedup\":{:.3f}}}",
      o.backend, o.collectives, r.ranks, r.tokens, r.chunk, r.steps, r.ttft_ms, r.tokens_per_s,
      r.speedup);
}

std::string collectives_line(const ep_bench_options& o) {
  if (o.collectives == "nccl") return "NCCL, one GPU each (device buffers)";
  if (o.collectives == "local")
    return "the in-process device communicator (device buffers; rank r on GPU r mod the GPUs)";
  return o.backend == "cuda" ? "Gloo on loopback (host-staged; every rank on GPU 0)"
                             : "Gloo on loopback";
}

std::string split_cell(const ep_bench_row& r, double v) {
  return r.expert_parallel ? fmt::format("{:.2f}", v) : std::string("-");
}

void print_row(std::FILE* out, const ep_bench_row& r) {
  std::fprintf(out, "%6d %6d %9.2f %10s %11s %10s %9.2f %11.1f %10.1f %7s %9s\n", r.ranks, r.batch,
               r.step_ms, split_cell(r, r.expert_ms).c_str(), split_cell(r, r.dispatch_ms).c_str(),
               split_cell(r, r.combine_ms).c_str(), r.rest_ms, r.bytes_per_step / 1024.0,
               r.tokens_per_s, r.speedup > 0 ? fmt::format("{:.2f}", r.speedup).c_str() : "-",
               r.expert_parallel ? fmt::format("{:.2f}", r.imbalance).c_str() : "-");
  std::fflush(out);
}

void check(const ep_bench_options& o) {
  if (o.collectives != "gloo" && o.collectives != "nccl" && o.collectives != "local")
    throw std::invalid_argument("bench ep: --collectives must be gloo, nccl or local");
  if (o.quant != "none" && o.quant != "fp8" && o.quant != "awq")
    throw std::invalid_argument("bench ep: --quant must be none, fp8 or awq");
  if (o.random_weights && o.backend != "cuda")
    throw std::invalid_argument("bench ep: --random-weights needs --backend cuda");
  if (o.collectives != "gloo" && o.backend != "cuda")
    throw std::invalid_argument("bench ep: --collectives " + o.collectives +
                                " moves device buffers: it needs --backend cuda");
  const auto positive = [](const std::vector<int32_t>& v) {
    return !v.empty() && std::all_of(v.begin(), v.end(), [](int32_t x) { return x > 0; });
  };
  if (!positive(o.ranks)) throw std::invalid_argument("bench ep: --ranks must be positive");
  if (!positive(o.batches)) throw std::invalid_argument("bench ep: --batches must be positive");
  if (o.steps <= 0 || o.prompt_len <= 0 || o.threads_per_rank <= 0)
    throw std::invalid_argument(
        "bench ep: --steps, --prompt-len and --threads-per-rank must be > 0");
  if (o.prefill_chunk <= 0 ||
      std::any_of(o.prefill_lens.begin(), o.prefill_lens.end(), [](int32_t l) { return l <= 0; }))
    throw std::invalid_argument("bench ep: --prefill-lens and --prefill-chunk must be > 0");
}

}  // namespace

std::string ep_row_json(const ep_bench_row& r, const std::string& backend,
                        const std::string& collectives) {
  return fmt::format(
      "{{\"bench\":\"ep\",\"backend\":\"{}\",\"collectives\":\"{}\",\"ranks\":{},\"batch\":{},"
      "\"steps\":{},"
      "\"expert_parallel\":{},\"step_ms\":{:.4f},\"expert_ms\":{:.4f},\"dispatch_ms\":{:.4f},"
      "\"combine_ms\":{:.4f},\"rest_ms\":{:.4f},\"bytes_per_step\":{:.0f},\"tokens_per_s\":{:.2f},"
      "\"speedup\":{:.3f},\"imbalance\":{:.3f},\"moe_layer_calls\":{}}}",
      backend, collectives, r.ranks, r.batch, r.steps, r.expert_parallel ? "true" : "false",
      r.step_ms, r.expert_ms, r.dispatch_ms, r.combine_ms, r.rest_ms, r.bytes_per_step,
      r.tokens_per_s, r.speedup, r.imbalance, r.moe_layer_calls);
}

std::vector<ep_bench_row> run_ep_bench(const ep_bench_options& opts, std::FILE* out,
                                       std::vector<ep_prefill_row>* prefill) {
  check(opts);
  const weights_source w = weights_of(opts);
  const auto& mc = w.config;
  const int32_t max_batch = *std::max_element(opts.batches.begin(), opts.batches.end());
  const int32_t max_ranks = *std::max_element(opts.ranks.begin(), opts.ranks.end());
  const int32_t block_size = gpu::backend_options{}.block_size;
  const int32_t per_seq = (opts.prompt_len + opts.steps + 2 + block_size - 1) / block_size;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());

  std::fprintf(out,
               "conclave bench ep\n  machine: %s\n  gpus:    %s\n  backend: %s, %d thread(s) per "
               "rank; ranks are threads of this process over %s (R = 1: the "
               "plain backend)\n  model:   %s (%s, %lld layers, hidden %lld, %lld experts, "
               "top-%lld)\n  decode:  %d timed steps after a %d-token prompt and one warm-up "
               "step; sequences round-robin over ranks\n",
               describe_machine().c_str(), gpu::describe_gpus().c_str(), opts.backend.c_str(),
               opts.threads_per_rank, collectives_line(opts).c_str(), w.name.c_str(),
               mc.architecture_name.c_str(), static_cast<long long>(mc.num_layers),
               static_cast<long long>(mc.hidden_size), static_cast<long long>(mc.num_experts),
               static_cast<long long>(mc.num_experts_per_tok), opts.steps, opts.prompt_len);
  if (static_cast<unsigned>(max_ranks * opts.threads_per_rank) > cores)
    std::fprintf(out, "  note:    %d ranks x %d thread(s) > %u cores: the ranks share cores\n",
                 max_ranks, opts.threads_per_rank, cores);
  if (opts.backend == "cuda" && max_ranks > 1) {
    // Gloo puts every cuda rank on GPU 0; the local communicator wraps ranks over the GPUs.
    const int gpus = opts.collectives == "gloo" ? 1 : std::max(1, gpu::visible_gpus());
    if (opts.collectives != "nccl" && max_ranks > gpus)
      std::fprintf(out,
                   "  note:    %d ranks share %d GPU(s): x R=1 shows what the exchange costs, "
                   "not how ranks scale\n",
                   max_ranks, gpus);
  }
  std::fprintf(out,
               "  expert/dispatch/combine/rest: per-rank means per step; KiB/step: sent by all "
               "ranks' MoE layers; x R=1: tok/s over the one-rank row's at the batch\n");
  std::fprintf(out, "%6s %6s %9s %10s %11s %10s %9s %11s %10s %7s %9s\n", "ranks", "batch",
               "step ms", "expert ms", "dispatch ms", "combine ms", "rest ms", "KiB/step", "tok/s",
               "x R=1", "imbalance");

  std::mt19937_64 rng(opts.seed);
  std::vector<ep_bench_row> rows;
  std::vector<ep_prefill_row> prefills;
  const int32_t longest = opts.prefill_lens.empty() ? 0
                                                    : *std::max_element(opts.prefill_lens.begin(),
                                                                        opts.prefill_lens.end());
  for (int32_t ranks : opts.ranks) {
    const int32_t seqs_per_rank = (max_batch + ranks - 1) / ranks;
    const int32_t prompt_blocks = (longest + 1 + block_size - 1) / block_size;
    replica rep =
        make_replica(w, opts, ranks, std::max({1, seqs_per_rank * per_seq, prompt_blocks}));
    for (int32_t len : opts.prefill_lens) {
      prefills.push_back(
          measure_prefill(rep, len, opts.prefill_chunk, rng, mc.vocab_size, block_size));
      for (const auto& one : prefills)
        if (one.ranks == 1 && one.tokens == len && one.tokens_per_s > 0)
          prefills.back().speedup = prefills.back().tokens_per_s / one.tokens_per_s;
    }
    for (int32_t batch : opts.batches) {
      rows.push_back(measure(rep, opts, batch, per_seq, rng, mc.vocab_size));
      for (const auto& one : rows)
        if (one.ranks == 1 && one.batch == batch && one.tokens_per_s > 0)
          rows.back().speedup = rows.back().tokens_per_s / one.tokens_per_s;
      print_row(out, rows.back());
    }
  }
  if (!prefills.empty()) {
    std::fprintf(out, "time to first token: one prompt on rank 0, %d tokens a step\n",
                 opts.prefill_chunk);
    std::fprintf(out, "%6s %8s %6s %10s %11s %7s\n", "ranks", "tokens", "steps", "TTFT ms", "tok/s",
                 "x R=1");
    for (const auto& p : prefills)
      std::fprintf(out, "%6d %8d %6d %10.1f %11.1f %7s\n", p.ranks, p.tokens, p.steps, p.ttft_ms,
                   p.tokens_per_s, p.speedup > 0 ? fmt::format("{:.2f}", p.speedup).c_str() : "-");
  }
  for (const auto& r : rows)
    std::fprintf(out, "%s\n", ep_row_json(r, opts.backend, opts.collectives).c_str());
  for (const auto& p : prefills) std::fprintf(out, "%s\n", prefill_json(p, opts).c_str());
  std::fflush(out);
  if (prefill) *prefill = std::move(prefills);
  return rows;
}

}  // namespace conclave::bench
