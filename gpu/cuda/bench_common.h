// What the device benchmarks share (cuda_bench.cpp, cuda_long_bench.cpp): the card's
// measured ceilings and a model's sizes for the bytes and FLOPs floors. Plain C++ header.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "model/model_config.h"

namespace conclave::gpu {

struct ceilings {
  double copy_tbps = 0;    ///< bytes read + written per second, device to device
  double gemm_tflops = 0;  ///< cuBLAS bf16 8192^3
};

/// Times a 2 GiB device-to-device copy and a cuBLAS bf16 8192^3 GEMM.
ceilings measure_ceilings();

/// Prints "conclave bench `what` (device, random weights)", the GPUs, then the measured
/// ceilings, and returns them.
ceilings print_header_and_ceilings(std::FILE* out, const char* what);

struct model_sizes {
  double dense_per_layer = 0;  ///< elements every token reads in a layer (attention, router)
  double expert = 0;           ///< elements of one routed expert
  double lm_head = 0;
  double kv_per_token = 0;  ///< K + V elements per position over all layers
  double dense_mlp_layers = 0, dense_mlp = 0;
};

model_sizes sizes_of(const model::model_config& c);

/// CONCLAVE_BENCH_PROFILE="decode+g:1,prefill:512,busy:16" names steps to profile: one
/// step of each named measurement (label:batch for decode, prefill:length; in `bench long`,
/// busy:chunk for the streams next to a chunk at the end of the long prompt and
/// decode_ctx:context for the one-sequence decode step) runs between
/// cudaProfilerStart and cudaProfilerStop, for `ncu --profile-from-start off` or
/// `nsys --capture-range=cudaProfilerApi`.
bool profile_wanted(const std::string& label, int32_t n);

/// Synchronises the device and starts (stops) the profiler's capture.
void profile_begin();
void profile_end();

/// Runs `step` once inside the profiler's capture when `on`.
template <class F>
void maybe_profiled(bool on, F&& step) {
  if (!on) return;
  profile_begin();
  step();
  profile_end();
}

}  // namespace conclave::gpu
