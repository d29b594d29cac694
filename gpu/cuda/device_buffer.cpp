// device_buffer and small checked runtime helpers.
#include "gpu/cuda/device_buffer.h"

#include "gpu/cuda/check.h"
#include "model/dtype.h"

namespace conclave::gpu::cuda {

device_buffer::device_buffer(size_t bytes) {
  ensure(bytes);
}

device_buffer::~device_buffer() {
  if (ptr_ != nullptr) cudaFree(ptr_);  // cannot throw from a destructor
}

device_buffer& device_buffer::operator=(device_buffer&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void device_buffer::ensure(size_t bytes) {
  if (bytes <= bytes_ && ptr_ != nullptr) return;
  if (ptr_ != nullptr) {
    CONCLAVE_CUDA_CHECK(cudaFree(ptr_));
    ptr_ = nullptr;
    bytes_ = 0;
  }
  CONCLAVE_CUDA_CHECK(cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes));
  bytes_ = bytes;
}

pinned_buffer::~pinned_buffer() {
  if (p_ != nullptr) cudaFreeHost(p_);  // cannot throw from a destructor
}

void* pinned_buffer::ensure(size_t bytes) {
  if (bytes > bytes_ || p_ == nullptr) {
    if (p_ != nullptr) CONCLAVE_CUDA_CHECK(cudaFreeHost(p_));
    p_ = nullptr;
    bytes_ = 0;
    CONCLAVE_CUDA_CHECK(cudaMallocHost(&p_, bytes == 0 ? 1 : bytes));
    bytes_ = bytes;
  }
  return p_;
}

void device_buffer::upload(const void* src, size_t bytes, size_t offset) {
  if (offset + bytes > bytes_) throw std::out_of_range("device_buffer::upload past the end");
  CONCLAVE_CUDA_CHECK(
      cudaMemcpy(static_cast<char*>(ptr_) + offset, src, bytes, cudaMemcpyHostToDevice));
}

void device_buffer::download(void* dst, size_t bytes, size_t offset) const {
  if (offset + bytes > bytes_) throw std::out_of_range("device_buffer::download past the end");
  CONCLAVE_CUDA_CHECK(
      cudaMemcpy(dst, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost));
}

void device_buffer::fill(uint8_t value) {
  CONCLAVE_CUDA_CHECK(cudaMemset(ptr_, value, bytes_));
}

bool device_available() {
  return device_count() > 0;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

void synchronize() {
  CONCLAVE_CUDA_CHECK(cudaDeviceSynchronize());
}

std::pair<size_t, size_t> memory_info() {
  size_t f = 0, t = 0;
  CONCLAVE_CUDA_CHECK(cudaMemGetInfo(&f, &t));
  return {f, t};
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = model::f32_to_bf16(v[i]);
  return o;
}

std::vector<float> from_bf16(const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = model::bf16_to_f32(v[i]);
  return o;
}

}  // namespace conclave::gpu::cuda
