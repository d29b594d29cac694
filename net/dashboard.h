// dashboard: the files of the /dashboard page (net/dashboard/, compiled into the binary
// by cmake/embed_files.cmake) and their content types.
#pragma once

#include <optional>
#include <string_view>

namespace conclave::net {

struct dashboard_asset {
  std::string_view body;
  const char* content_type;
};

/// The embedded file `name` ("index.html", "dashboard.js"...), or nothing.
std::optional<dashboard_asset> dashboard_file(std::string_view name);

/// The asset a request path names: "/dashboard" and "/dashboard/" give index.html,
/// "/dashboard/assets/NAME" the file NAME; nothing for anything else.
std::optional<dashboard_asset> dashboard_asset_for(std::string_view path);

}  // namespace conclave::net
