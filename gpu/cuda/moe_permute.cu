#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/moe_permute.h"

namespace conclave::gpu::cuda {
namespace {

constexpr int kTile = 4096;

// One block; thread e owns expert e. Two passes over the ids staged through shared
// memory in tiles: count, exclusive scan, then place each pair in ascending order.
__global__ void permute_kernel(const int32_t* ids, size_t n, size_t k, size_t experts,
                               int32_t* offsets, int32_t* row_token, int32_t* slot_row) {
  __shared__ int32_t tile[kTile];
  __shared__ int32_t counts[1024];
  const int e = static_cast<int>(threadIdx.x);
  int32_t count = 0;
  for (size_t base = 0; base < n; base += kTile) {
    const size_t len = min(static_cast<size_t>(kTile), n - base);
    __syncthreads();
    for (size_t i = threadIdx.x; i < len; i += blockDim.x) tile[i] = ids[base + i];
    __syncthreads();
    for (size_t i = 0; i < len; ++i) count += tile[i] == e ? 1 : 0;
  }
  counts[e] = count;
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t run = 0;
    for (size_t x = 0; x < experts; ++x) {
      const int32_t c = counts[x];
      counts[x] = run;
      offsets[x] = run;
      run += c;
    }
    offsets[experts] = run;
  }
  __syncthreads();
  int32_t next = counts[e];
  for (size_t base = 0; base < n; base += kTile) {
    const size_t len = min(static_cast<size_t>(kTile), n - base);
    __syncthreads();
    for (size_t i = threadIdx.x; i < len; i += blockDim.x) tile[i] = ids[base + i];
    __syncthreads();
    if (static_cast<size_t>(e) < experts) {
      for (size_t i = 0; i < len; ++i) {
        if (tile[i] != e) continue;
        const size_t pair = base + i;
        row_token[next] = static_cast<int32_t>(pair / k);
        slot_row[pair] = next;
        ++next;
      }
    }
  }
}

template <class T>
__global__ void gather_kernel(const T* src, const int32_t* index, size_t dim, T* dst) {
  const size_t i = blockIdx.x;
  const T* s = src + static_cast<size_t>(index[i]) * dim;
  T* d = dst + i * dim;
  for (size_t j = threadIdx.x; j < dim; j += blockDim.x) d[j] = s[j];
}

}  // namespace

void moe_permute(const int32_t* ids, size_t tokens, size_t k, size_t experts, int32_t* offsets,
                 int32_t* row_token, int32_t* slot_row, stream_t s) {
  if (experts == 0 || experts > 1024)
    throw std::invalid_argument("moe_permute: experts must be in [1, 1024]");
  const unsigned threads = static_cast<unsigned>((experts + 31) / 32 * 32);
  permute_kernel<<<1, threads, 0, s>>>(ids, tokens * k, k, experts, offsets, row_token, slot_row);
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

void gather_rows(const void* src, elem t, const int32_t* index, size_t n, size_t dim, void* dst,
                 stream_t s) {
  if (n == 0) return;
  CONCLAVE_DISPATCH_ELEM(t, T,
                         gather_kernel<T><<<static_cast<unsigned>(n), 256, 0, s>>>(
                             static_cast<const T*>(src), index, dim, static_cast<T*>(dst)));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
