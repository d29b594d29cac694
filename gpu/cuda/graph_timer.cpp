#include "gpu/cuda/graph_timer.h"

#include <cuda_runtime.h>

#include <stdexcept>

#include "gpu/cuda/check.h"

namespace conclave::gpu::cuda {
namespace {

/// Owns the events and the graph, so a throw in between leaks nothing.
struct timing_state {
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~timing_state() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
  }
};

}  // namespace

double mean_device_us(stream_t s, const std::function<void()>& body, int iters, bool graph,
                      int warmup) {
  if (iters <= 0) throw std::invalid_argument("mean_device_us: iters must be > 0");
  timing_state st;
  CONCLAVE_CUDA_CHECK(cudaEventCreate(&st.e0));
  CONCLAVE_CUDA_CHECK(cudaEventCreate(&st.e1));
  if (graph) {
    CONCLAVE_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    try {
      body();
    } catch (...) {
      cudaGraph_t dropped = nullptr;
      cudaStreamEndCapture(s, &dropped);
      if (dropped) cudaGraphDestroy(dropped);
      throw;
    }
    CONCLAVE_CUDA_CHECK(cudaStreamEndCapture(s, &st.graph));
    CONCLAVE_CUDA_CHECK(cudaGraphInstantiate(&st.exec, st.graph, 0));
  }
  auto once = [&] {
    if (graph) {
      CONCLAVE_CUDA_CHECK(cudaGraphLaunch(st.exec, s));
    } else {
      body();
    }
  };
  for (int i = 0; i < warmup; ++i) once();
  CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(s));
  CONCLAVE_CUDA_CHECK(cudaEventRecord(st.e0, s));
  for (int i = 0; i < iters; ++i) once();
  CONCLAVE_CUDA_CHECK(cudaEventRecord(st.e1, s));
  CONCLAVE_CUDA_CHECK(cudaEventSynchronize(st.e1));
  float ms = 0;
  CONCLAVE_CUDA_CHECK(cudaEventElapsedTime(&ms, st.e0, st.e1));
  return static_cast<double>(ms) * 1e3 / iters;
}

}  // namespace conclave::gpu::cuda
