// Safetensors files: a memory-mapped reader that validates every header entry, and a
// streaming writer (header first, then each tensor's bytes in order).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/dtype.h"

namespace conclave::model {

/// A read-only memory mapping of a whole file; unmapped on destruction.
class mapped_file {
 public:
  explicit mapped_file(const std::filesystem::path& path);
  ~mapped_file();
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

/// One tensor inside a mapped safetensors file.
struct tensor_view {
  std::string name;
  dtype type = dtype::f32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  ///< not necessarily aligned
  size_t nbytes = 0;
  const std::filesystem::path* file = nullptr;

  size_t numel() const;
  /// "[a, b, c]"
  std::string shape_string() const;
};

/// A validated, mapped safetensors file. Throws model_error naming the file (and
/// tensor) for a truncated file, a header past the end, bad JSON, unknown dtypes,
/// or data offsets that disagree with the shape.
class safetensors_file {
 public:
  explicit safetensors_file(const std::filesystem::path& path);

  const std::map<std::string, tensor_view, std::less<>>& tensors() const { return tensors_; }
  const tensor_view* find(std::string_view name) const;
  const std::filesystem::path& path() const { return map_->path(); }

 private:
  std::unique_ptr<mapped_file> map_;
  std::map<std::string, tensor_view, std::less<>> tensors_;
};

/// What the writer needs to know about a tensor before any bytes are written.
struct tensor_plan {
  std::string name;
  dtype type = dtype::f32;
  std::vector<int64_t> shape;
  size_t nbytes() const;
};

/// Writes a safetensors file: the header from `plan`, then calls `fill(i, buffer)` for
/// each tensor in order with a buffer of exactly `plan[i].nbytes()` bytes to fill.
/// Tensor data is laid out in plan order; the header is padded to 8 bytes.
void write_safetensors(const std::filesystem::path& path, const std::vector<tensor_plan>& plan,
                       const std::function<void(size_t, std::byte*)>& fill);

}  // namespace conclave::model
