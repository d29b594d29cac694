#include "gpu/cuda/attention_timer.h"

#include <cuda_runtime.h>

#include "gpu/cuda/check.h"

namespace conclave::gpu::cuda {

attention_timer::~attention_timer() {
  for (void* e : events_) cudaEventDestroy(static_cast<cudaEvent_t>(e));
}

void attention_timer::enable(bool on, size_t layers) {
  on_ = on;
  if (on && events_.empty()) {
    events_.resize(2 * layers);
    for (void*& e : events_) {
      cudaEvent_t ev = nullptr;
      CONCLAVE_CUDA_CHECK(cudaEventCreate(&ev));
      e = ev;
    }
  }
}

void attention_timer::before(size_t layer, stream_t s) {
  if (armed_) CONCLAVE_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[2 * layer]), s));
}

void attention_timer::after(size_t layer, stream_t s) {
  if (armed_)
    CONCLAVE_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[2 * layer + 1]), s));
}

double attention_timer::total_ms() const {
  if (!armed_) return 0;
  double sum = 0;
  for (size_t i = 0; i + 1 < events_.size(); i += 2) {
    float ms = 0;
    CONCLAVE_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(events_[i]),
                                             static_cast<cudaEvent_t>(events_[i + 1])));
    sum += ms;
  }
  return sum;
}

}  // namespace conclave::gpu::cuda
