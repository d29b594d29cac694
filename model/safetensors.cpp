// Safetensors reader (mmap + strict header validation) and streaming writer.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <simdjson.h>
#include <spdlog/fmt/fmt.h>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "model/model_error.h"

namespace conclave::model {
namespace {

constexpr uint64_t max_header_bytes = 100u << 20;  // the format's own limit

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace

mapped_file::mapped_file(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw model_error(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw model_error(fmt::format("{}: cannot stat: {}", path.string(), std::strerror(err)));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw model_error(fmt::format("{}: cannot mmap: {}", path.string(), std::strerror(err)));
    }
    data_ = static_cast<const std::byte*>(p);
  }
  ::close(fd);
}

mapped_file::~mapped_file() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

size_t tensor_view::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

std::string tensor_view::shape_string() const {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

size_t tensor_plan::nbytes() const {
  size_t n = dtype_size(type);
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

safetensors_file::safetensors_file(const std::filesystem::path& path)
    : map_(std::make_unique<mapped_file>(path)) {
  const std::string file = path.string();
  const size_t size = map_->size();
  if (size < 8) {
    throw model_error(fmt::format(
        "{}: truncated: {} bytes, but a safetensors file starts with an 8-byte header length", file,
        size));
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, map_->data(), 8);  // little-endian on every host we build for
  if (header_len > size - 8) {
    throw model_error(
        fmt::format("{}: header length {} runs past the end of the file ({} bytes): truncated or "
                    "not safetensors",
                    file, header_len, size));
  }
  if (header_len > max_header_bytes) {
    throw model_error(
        fmt::format("{}: header length {} exceeds the 100 MiB limit", file, header_len));
  }
  const std::byte* data_start = map_->data() + 8 + header_len;
  const size_t data_size = size - 8 - header_len;

  simdjson::dom::parser parser;
  simdjson::padded_string header(reinterpret_cast<const char*>(map_->data()) + 8, header_len);
  simdjson::dom::object root;
  if (auto err = parser.parse(header).get(root); err) {
    throw model_error(
        fmt::format("{}: header is not a JSON object: {}", file, simdjson::error_message(err)));
  }
  for (auto [key, value] : root) {
    if (key == "__metadata__") continue;
    const std::string name(key);
    const auto bad = [&](std::string_view what) {
      return model_error(fmt::format("{}: tensor {}: {}", file, name, what));
    };
    simdjson::dom::object entry;
    if (value.get(entry)) throw bad("header entry is not an object");
    std::string_view dtype_str;
    if (entry["dtype"].get(dtype_str)) throw bad("missing \"dtype\"");
    const auto type = parse_dtype(dtype_str);
    if (!type) {
      throw bad(fmt::format("dtype {} is not supported (expected BF16, F16, F32, F8_E4M3 or I32)",
                            dtype_str));
    }
    simdjson::dom::array shape;
    if (entry["shape"].get(shape)) throw bad("missing \"shape\" array");
    tensor_view view;
    view.name = name;
    view.type = *type;
    view.file = &map_->path();
    size_t numel = 1;
    for (auto dim : shape) {
      int64_t d = 0;
      if (dim.get(d) || d < 0) throw bad("shape entries must be non-negative integers");
      if (d > 0 && numel > (SIZE_MAX / 8) / static_cast<size_t>(d)) throw bad("shape overflows");
      numel *= static_cast<size_t>(d);
      view.shape.push_back(d);
    }
    simdjson::dom::array offsets;
    if (entry["data_offsets"].get(offsets) || offsets.size() != 2) {
      throw bad("missing \"data_offsets\" [begin, end]");
    }
    uint64_t begin = 0, end = 0;
    if (offsets.at(0).get(begin) || offsets.at(1).get(end))
      throw bad("data_offsets must be integers");
    if (begin > end || end > data_size) {
      throw bad(fmt::format(
          "data_offsets [{}, {}] lie outside the {} data bytes of the file (truncated?)", begin,
          end, data_size));
    }
    const size_t expected = numel * dtype_size(*type);
    if (end - begin != expected) {
      throw bad(fmt::format("data_offsets span {} bytes but shape {} of {} needs {}", end - begin,
                            view.shape_string(), dtype_str, expected));
    }
    view.data = data_start + begin;
    view.nbytes = expected;
    tensors_.emplace(name, std::move(view));
  }
}

const tensor_view* safetensors_file::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<tensor_plan>& plan,
                       const std::function<void(size_t, std::byte*)>& fill) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  size_t offset = 0;
  for (const auto& t : plan) {
    const size_t n = t.nbytes();
    header += fmt::format(",\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                          json_escape(t.name), dtype_name(t.type), fmt::join(t.shape, ","), offset,
                          offset + n);
    offset += n;
  }
  header += '}';
  while (header.size() % 8 != 0) header += ' ';

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw model_error(fmt::format("{}: cannot open for writing", path.string()));
  const uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  std::vector<std::byte> buffer;
  for (size_t i = 0; i < plan.size(); ++i) {
    buffer.assign(plan[i].nbytes(), std::byte{0});
    fill(i, buffer.data());
    out.write(reinterpret_cast<const char*>(buffer.data()),
              static_cast<std::streamsize>(buffer.size()));
  }
  out.flush();
  if (!out) throw model_error(fmt::format("{}: write failed (disk full?)", path.string()));
}

}  // namespace conclave::model
