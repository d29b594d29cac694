// The KV cache's host tier (kv_offload.h): one strided copy per block moves its keys and
// values of every layer (2 x layers chunks, layer_pitch apart on the device, packed on
// the host).
#include "gpu/cuda/kv_offload.h"

#include <cuda_runtime.h>
#include <spdlog/spdlog.h>

#include "gpu/cuda/check.h"

namespace conclave::gpu::cuda {

kv_offload::kv_offload(size_t host_blocks, const kv_cache_layout& layout)
    : layout_(layout), block_bytes_(2 * layout.layers * layout.chunk) {
  host_.ensure(host_blocks * block_bytes_);
  CONCLAVE_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
  cudaEvent_t before = nullptr, after = nullptr;
  CONCLAVE_CUDA_CHECK(cudaEventCreateWithFlags(&before, cudaEventDisableTiming));
  CONCLAVE_CUDA_CHECK(cudaEventCreateWithFlags(&after, cudaEventDisableTiming));
  before_ = before;
  after_ = after;
  spdlog::info("cuda backend: KV offload pool {} blocks ({:.2f} GiB pinned host memory)",
               host_blocks, static_cast<double>(host_blocks * block_bytes_) / (1ull << 30));
}

kv_offload::~kv_offload() {
  cudaStreamSynchronize(side_);
  cudaEventDestroy(static_cast<cudaEvent_t>(before_));
  cudaEventDestroy(static_cast<cudaEvent_t>(after_));
  cudaStreamDestroy(side_);
}

void kv_offload::run(const kv_transfer& t, stream_t compute) {
  if (t.empty()) return;
  auto* before = static_cast<cudaEvent_t>(before_);
  auto* after = static_cast<cudaEvent_t>(after_);
  // The blocks going out were written by kernels already queued on the compute stream.
  CONCLAVE_CUDA_CHECK(cudaEventRecord(before, compute));
  CONCLAVE_CUDA_CHECK(cudaStreamWaitEvent(side_, before, 0));
  auto* host = static_cast<char*>(host_.data());
  const size_t rows = 2 * layout_.layers;
  for (const kv_block_copy& c : t.to_host) {
    CONCLAVE_CUDA_CHECK(
        cudaMemcpy2DAsync(host + static_cast<size_t>(c.host_block) * block_bytes_, layout_.chunk,
                          layout_.base + static_cast<size_t>(c.device_block) * layout_.chunk,
                          layout_.layer_pitch, layout_.chunk, rows, cudaMemcpyDeviceToHost, side_));
  }
  for (const kv_block_copy& c : t.to_device) {
    CONCLAVE_CUDA_CHECK(cudaMemcpy2DAsync(
        layout_.base + static_cast<size_t>(c.device_block) * layout_.chunk, layout_.layer_pitch,
        host + static_cast<size_t>(c.host_block) * block_bytes_, layout_.chunk, layout_.chunk, rows,
        cudaMemcpyHostToDevice, side_));
  }
  // The next kernels on the compute stream (the step's forward) wait for the copies.
  CONCLAVE_CUDA_CHECK(cudaEventRecord(after, side_));
  CONCLAVE_CUDA_CHECK(cudaStreamWaitEvent(compute, after, 0));
}

}  // namespace conclave::gpu::cuda
