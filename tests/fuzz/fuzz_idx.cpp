// fuzz_idx.cpp: libFuzzer target for the IDX reader and Fashion-MNIST (datasets/idx.h).
// The input bytes go to idx::read as one file (raw or gzip), then, split in two at a
// point given by the first two bytes, to fashion_mnist::read as an images file and a labels
// file. Any hkt::Error is an expected refusal; anything else is a bug. Build and run:
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address -I engine -I kernels -I datasets
//     tests/fuzz/fuzz_idx.cpp datasets/*.cpp engine/*.cpp engine/ops/*.cpp
//     engine/attention/*.cpp kernels/stub/cuda_stub.cpp
//     -fopenmp -lopenblas -lz -o /tmp/fuzz_idx && /tmp/fuzz_idx -max_total_time=60
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

#include "error.h"
#include "fuzz_files.h"
#include "idx.h"

namespace {

// Fixed files per process (fuzz_files.h).
std::string temp_path(const char* which) { return hkt::fuzz::temp_path(std::string("idx_") + which); }
using hkt::fuzz::write_file;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string whole = temp_path("whole"), images = temp_path("images"), labels = temp_path("labels");
  write_file(whole, data, size);
  try {
    const auto a = hkt::data::idx::read(whole);
    // A file that reads must hold exactly prod(dims) elements.
    std::uint64_t n = 1;
    for (auto d : a.dims) n *= d;
    if (n != a.data.size()) __builtin_trap();
  } catch (const hkt::Error&) {
    // expected: malformed input is refused
  }
  // The first two bytes (big-endian) give the length of the images file; the rest after
  // it is the labels file.
  if (size < 2) return 0;
  const std::size_t image_bytes = std::min<std::size_t>(size - 2, (std::size_t{data[0]} << 8) | data[1]);
  write_file(images, data + 2, image_bytes);
  write_file(labels, data + 2 + image_bytes, size - 2 - image_bytes);
  try {
    const auto d = hkt::data::fashion_mnist::read(images, labels, "fuzz");
    for (std::int64_t i = 0; i < d.size(); ++i)
      if (d.length(i) != 784 || d.labels[static_cast<std::size_t>(i)] > 9) __builtin_trap();
  } catch (const hkt::Error&) {
  }
  return 0;
}
