// device_buffer: an owning block of device memory (cudaMalloc / cudaFree), plus the few
// checked runtime calls plain C++ code needs (copies, fills, sync, device presence).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(size_t bytes);
  ~device_buffer();
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  device_buffer(device_buffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  device_buffer& operator=(device_buffer&& o) noexcept;

  void* get() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }
  /// Grows (never shrinks) to at least `bytes`; contents are not kept.
  void ensure(size_t bytes);

  void upload(const void* src, size_t bytes, size_t offset = 0);
  void download(void* dst, size_t bytes, size_t offset = 0) const;
  /// Fills every byte with `value` (tests poison outputs with 0xff: NaN in fp32 and bf16).
  void fill(uint8_t value);

  template <class T>
  static device_buffer from(const std::vector<T>& v) {
    device_buffer b(v.size() * sizeof(T));
    if (!v.empty()) b.upload(v.data(), v.size() * sizeof(T));
    return b;
  }
  template <class T>
  std::vector<T> to_vector(size_t n) const {
    std::vector<T> v(n);
    if (n) download(v.data(), n * sizeof(T));
    return v;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

/// Pinned (page-locked) host memory that grows, for asynchronous copies.
class pinned_buffer {
 public:
  pinned_buffer() = default;
  ~pinned_buffer();
  pinned_buffer(const pinned_buffer&) = delete;
  pinned_buffer& operator=(const pinned_buffer&) = delete;
  /// Grows (never shrinks) to at least `bytes`; contents are not kept. The caller makes
  /// sure no copy still uses the old memory.
  void* ensure(size_t bytes);
  void* data() const { return p_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

/// True when a CUDA device is usable (never throws; tests skip when false).
bool device_available();
/// How many CUDA devices are visible (0 when none or no driver; never throws).
int device_count();
/// cudaDeviceSynchronize, checked: surfaces asynchronous kernel errors.
void synchronize();
/// Free and total device memory.
std::pair<size_t, size_t> memory_info();

/// Host-side bf16 helpers for tests and loaders (round to nearest even).
std::vector<uint16_t> to_bf16(const std::vector<float>& v);
std::vector<float> from_bf16(const std::vector<uint16_t>& v);

}  // namespace conclave::gpu::cuda
