// The embedded dashboard files (see the header).
#include "net/dashboard.h"

#include <cstddef>

namespace conclave::net {
namespace embedded {
struct file {
  std::string_view name;
  const unsigned char* data;
  std::size_t size;
};
extern const file files[];
extern const std::size_t file_count;
}  // namespace embedded

namespace {

const char* content_type_of(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".LICENSE")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace

std::optional<dashboard_asset> dashboard_file(std::string_view name) {
  for (std::size_t i = 0; i < embedded::file_count; ++i) {
    const auto& f = embedded::files[i];
    if (f.name == name)
      return dashboard_asset{{reinterpret_cast<const char*>(f.data), f.size},
                             content_type_of(name)};
  }
  return std::nullopt;
}

std::optional<dashboard_asset> dashboard_asset_for(std::string_view path) {
  if (path == "/dashboard" || path == "/dashboard/") return dashboard_file("index.html");
  constexpr std::string_view prefix = "/dashboard/assets/";
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  const std::string_view name = path.substr(prefix.size());
  if (name.empty() || name.find('/') != std::string_view::npos) return std::nullopt;
  return dashboard_file(name);
}

}  // namespace conclave::net
