// Catch2 main for every test binary: quiet logging unless CONCLAVE_TEST_LOG is set, and
// the skip exit code (tests/skip.h) when nothing failed but some case could not run.
#define CATCH_CONFIG_RUNNER
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>

#include "tests/skip.h"

namespace conclave::test {
namespace {
int skips = 0;
}  // namespace

void note_skip(const std::string& why) {
  ++skips;
  // Printed (not a Catch WARN) so that it shows in ctest's --output-on-failure and
  // in the test log whether or not Catch reports the case.
  std::cout << "SKIPPED: " << Catch::getResultCapture().getCurrentTestName() << ": " << why
            << std::endl;
}

int skipped_cases() {
  return skips;
}

}  // namespace conclave::test

int main(int argc, char** argv) {
  spdlog::set_level(std::getenv("CONCLAVE_TEST_LOG") ? spdlog::level::debug : spdlog::level::err);
  const int failed = Catch::Session().run(argc, argv);
  // Catch returns the failed assertion count (capped at 255): a run that failed exactly
  // skip_exit_code assertions must not read as skipped.
  if (failed != 0) return failed == conclave::test::skip_exit_code ? failed + 1 : failed;
  if (conclave::test::skipped_cases() > 0) {
    std::cout << conclave::test::skipped_cases()
              << " test case(s) skipped: they could not run here (see SKIPPED above)" << std::endl;
    return conclave::test::skip_exit_code;
  }
  return 0;
}
