// The gpu_worker actor (see the header).
#include "actors/gpu_worker.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

namespace conclave::actors {

using serve::fault_kind;

gpu_worker_actor::behavior_type gpu_worker(gpu_worker_actor::pointer self,
                                           std::shared_ptr<gpu::backend> backend) {
  return {
      [self, backend](forward_atom, const forward_job& job) -> caf::result<forward_done> {
        switch (job.fault) {
          case serve::fault_kind::fail_step:
            throw std::runtime_error("injected step failure");
          case serve::fault_kind::hang_step:
            spdlog::warn("worker: injected hang of {:.1f} s", job.hang_s);
            std::this_thread::sleep_for(std::chrono::duration<double>(job.hang_s));
            break;
          case serve::fault_kind::crash_worker:
            spdlog::warn("worker: injected crash");
            self->quit(caf::exit_reason::kill);
            return caf::make_error(caf::sec::runtime_error, "injected worker crash");
          default:
            break;
        }
        auto out = std::make_shared<gpu::step_output>();
        // Offloaded KV blocks move first; a step may be only that (an empty batch).
        backend->transfer_kv(job.step->transfer(0));  // throws on device errors: ends this actor
        if (!job.step->batch.empty()) backend->forward(job.step->batch, *out);
        return forward_done{std::move(out)};
      },
  };
}

}  // namespace conclave::actors
