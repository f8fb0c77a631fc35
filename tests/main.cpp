// main.cpp: Catch2's main for the hkt_tests executable (every test_*.cpp links into it).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
