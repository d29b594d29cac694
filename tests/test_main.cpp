// Catch2 main for every test binary: quiet logging unless CONCLAVE_TEST_LOG is set.
#define CATCH_CONFIG_RUNNER
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>
#include <cstdlib>

int main(int argc, char** argv) {
  spdlog::set_level(std::getenv("CONCLAVE_TEST_LOG") ? spdlog::level::debug : spdlog::level::err);
  return Catch::Session().run(argc, argv);
}
