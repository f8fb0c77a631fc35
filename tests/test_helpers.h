// test_helpers.h: small helpers shared by the test files.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_backend.h"
#if defined(HKT_EMULATE_CUDA)
#include "emulated/block_emulator.h"
#endif
#include "ops.h"
#include "tolerances.h"

namespace hkt::test {

/// A float64 tensor from values and a shape.
inline Tensor f64(const std::vector<double>& values, const Shape& shape) {
  return Tensor::from_vector(values, shape, DType::Float64);
}

/// A float64 leaf that requires grad (a parameter for autodiff tests).
inline Tensor f64_param(const std::vector<double>& values, const Shape& shape) {
  Tensor t = f64(values, shape);
  t.set_requires_grad();
  return t;
}

/// Checks every element of `actual` against `expected` within `tol`, naming the index.
inline void require_close(const Tensor& actual, const std::vector<double>& expected,
                          const Tolerance& tol = kFloat64Exact) {
  const auto a = actual.to_vector();
  REQUIRE(a.size() == expected.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i << ": got " << a[i] << ", expected " << expected[i]);
    if (std::isinf(expected[i]) || std::isnan(expected[i])) {
      CHECK(((std::isnan(expected[i]) && std::isnan(a[i])) || a[i] == expected[i]));
    } else {
      CHECK(std::fabs(a[i] - expected[i]) <= tol.atol + tol.rtol * std::fabs(expected[i]));
    }
  }
}

/// Runs f and requires it to throw hkt::Error whose message contains `fragment`.
template <class F>
void require_error(F&& f, const std::string& fragment) {
  try {
    f();
    FAIL("expected hkt::Error containing: " << fragment);
  } catch (const Error& e) {
    INFO("message: " << e.what());
    CHECK(std::string(e.what()).find(fragment) != std::string::npos);
  }
}

/// The folder of the real public data: $HKT_DATA_DIR if set, else ../shared/data beside
/// the checkout (fixed at configure time).
inline std::string real_data_dir() {
  const char* env = std::getenv("HKT_DATA_DIR");
  return env && *env ? std::string(env) : std::string(HKT_SHARED_DATA_DIR);
}

/// A fresh folder under the system temp directory (named by `tag` and the process id),
/// removed with everything in it at the end of the test.
/// The whole content of a text file, read with an ifstream (empty when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag)
      : path(std::filesystem::temp_directory_path() / ("hkt-test-" + tag + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// The path of `name` inside the folder.
  std::string file(const std::string& name) const { return (path / name).string(); }
  /// Writes `bytes` to `name` in the folder and returns its path.
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string p = file(name);
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  std::string write(const std::string& name, const std::vector<std::uint8_t>& bytes) const {
    return write(name, std::string(bytes.begin(), bytes.end()));
  }
};

/// The committed test fixtures (tests/data).
inline std::string fixture_dir() { return HKT_TEST_DATA_DIR; }

#if defined(HKT_EMULATE_CUDA)
/// Runs `run` (which launches block kernels and returns their outputs) under the block
/// emulator's thread orders: forward, reverse and two seeded shuffles. Returns "" when
/// every order gives bit-identical outputs, else which order differed first and where.
/// A correct kernel is order-independent; a missing barrier or a shared-memory race
/// usually is not (kernels/emulated/block_emulator.h). Leaves the order at forward.
template <class F>
std::string thread_order_difference(F&& run) {
  using cuda::emu::ThreadOrder;
  struct Order {
    ThreadOrder order;
    std::uint64_t seed;
    const char* name;
  };
  const Order orders[] = {{ThreadOrder::Forward, 0, "forward"},
                          {ThreadOrder::Reverse, 0, "reverse"},
                          {ThreadOrder::Shuffled, 1, "shuffled (seed 1)"},
                          {ThreadOrder::Shuffled, 2, "shuffled (seed 2)"}};
  std::vector<std::vector<double>> reference;
  std::string difference;
  for (const auto& o : orders) {
    cuda::emu::set_thread_order(o.order, o.seed);
    std::vector<std::vector<double>> got;
    try {
      got = run();
    } catch (...) {
      cuda::emu::set_thread_order(ThreadOrder::Forward);
      throw;
    }
    if (reference.empty()) {
      reference = got;
      continue;
    }
    for (std::size_t t = 0; t < got.size() && difference.empty(); ++t)
      for (std::size_t i = 0; i < got[t].size(); ++i)
        if (std::memcmp(&got[t][i], &reference[t][i], sizeof(double)) != 0) {
          difference = std::string(o.name) + " order: output " + std::to_string(t) + " element " + std::to_string(i) +
                       " is " + std::to_string(got[t][i]) + ", forward order gave " + std::to_string(reference[t][i]);
          break;
        }
    if (!difference.empty()) break;
  }
  cuda::emu::set_thread_order(ThreadOrder::Forward);
  return difference;
}
#endif

}  // namespace hkt::test

/// Ends the current test as skipped (ctest reports it so, through the
/// SKIP_REGULAR_EXPRESSION "skipped: ") when `path` does not exist.
#define HKT_SKIP_UNLESS_EXISTS(path)                                                      \
  do {                                                                                    \
    if (!std::filesystem::exists(path)) {                                                 \
      std::cout << "skipped: " << (path) << " not found (set HKT_DATA_DIR)" << std::endl; \
      return;                                                                             \
    }                                                                                     \
  } while (0)

/// Ends the current test as skipped (ctest reports it so) when no CUDA device can be
/// used: no CUDA in the build, no driver or no GPU (the EMULATE build has one).
#define HKT_SKIP_UNLESS_CUDA()                                                 \
  do {                                                                         \
    std::string why_not;                                                       \
    if (hkt::cuda::device_count(&why_not) == 0) {                              \
      std::cout << "skipped: no CUDA device (" << why_not << ")" << std::endl; \
      return;                                                                  \
    }                                                                          \
  } while (0)
