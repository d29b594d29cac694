#include <catch2/catch.hpp>
TEST_CASE("placeholder cli_test") { CHECK(true); }
