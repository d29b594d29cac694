# Finds the Debian packages conclave builds on (scripts/setup.sh installs them).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(simdjson CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
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
