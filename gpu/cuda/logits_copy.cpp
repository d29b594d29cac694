#include "gpu/cuda/logits_copy.h"

#include <cuda_runtime.h>

#include "gpu/cuda/check.h"

namespace conclave::gpu::cuda {

void copy_host_sampled_logits(std::span<const step_sequence> batch,
                              const std::vector<size_t>& row_begin, const float* logits,
                              size_t vocab, step_output& out, stream_t s) {
  out.vocab = vocab;
  out.row_begin.assign(1, 0);
  size_t n = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!device_sampled(batch[i])) n += row_begin[i + 1] - row_begin[i];
    out.row_begin.push_back(n);
  }
  out.logits.resize(n * vocab);
  for (size_t i = 0; i < batch.size();) {
    if (device_sampled(batch[i])) {
      ++i;
      continue;
    }
    size_t j = i;  // the run [i, j) of host-sampled sequences
    while (j < batch.size() && !device_sampled(batch[j])) ++j;
    const size_t rows = row_begin[j] - row_begin[i];
    if (rows > 0) {
      CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(out.logits.data() + out.row_begin[i] * vocab,
                                          logits + row_begin[i] * vocab,
                                          rows * vocab * sizeof(float), cudaMemcpyDeviceToHost, s));
    }
    i = j;
  }
}

}  // namespace conclave::gpu::cuda
