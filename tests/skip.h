// Skipping a test case that cannot run here (no GPU, no bubblewrap namespaces), so that
// ctest reports it as skipped instead of passed.
//
// Catch2 v2 has no SKIP(), so a skip is recorded here and the shared main
// (tests/test_main.cpp) turns "no failures, at least one skip" into the exit code
// skip_exit_code; conclave_test() in tests/CMakeLists.txt gives every discovered case
// SKIP_RETURN_CODE skip_exit_code. ctest runs each case as its own process, so a case
// that skips is listed as "Skipped"; a binary run by hand runs every case and exits
// with the same code when any of them skipped, never 0.
#pragma once

#include <string>

namespace conclave::test {

/// The exit code of a run in which nothing failed and some case skipped;
/// tests/CMakeLists.txt defines it and passes the same number to ctest.
inline constexpr int skip_exit_code = CONCLAVE_TEST_SKIP_CODE;

/// Prints why the current case cannot run and records the skip for main's exit code.
/// The case must return right after (CONCLAVE_SKIP does both).
void note_skip(const std::string& why);

/// How many cases of this run skipped.
int skipped_cases();

}  // namespace conclave::test

/// Skips the current test case: prints `why`, records the skip and returns from the case.
/// Use only in the TEST_CASE body itself (it returns from the enclosing function).
#define CONCLAVE_SKIP(why)            \
  do {                                \
    ::conclave::test::note_skip(why); \
    return;                           \
  } while (0)
