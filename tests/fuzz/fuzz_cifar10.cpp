// fuzz_cifar10.cpp: libFuzzer target for the CIFAR-10 binary reader (datasets/cifar10.h).
// The input bytes are written to a per-process temp file and read in both modes; any
// hkt::Error is an expected refusal, anything else (a crash, a sanitizer report, another
// exception) is a bug. Build and run:
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address -I engine -I kernels -I datasets
//     tests/fuzz/fuzz_cifar10.cpp datasets/*.cpp engine/*.cpp engine/ops/*.cpp
//     engine/attention/*.cpp kernels/stub/cuda_stub.cpp
//     -fopenmp -lopenblas -lz -o /tmp/fuzz_cifar10 && /tmp/fuzz_cifar10 -max_total_time=60
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "cifar10.h"
#include "error.h"
#include "fuzz_files.h"

namespace {

// One fixed file per process (fuzz_files.h).
const std::string& temp_path() {
  static const std::string path = hkt::fuzz::temp_path("cifar10") + ".bin";
  return path;
}
using hkt::fuzz::write_file;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  write_file(temp_path(), data, size);
  for (auto mode : {hkt::data::cifar10::Mode::Gray, hkt::data::cifar10::Mode::Rgb}) {
    try {
      const auto d = hkt::data::cifar10::read_file(temp_path(), mode, "fuzz");
      // A file that reads must give whole records: 1024 steps and a label 0-9 each.
      if (static_cast<std::size_t>(d.size()) * 3073 != size) __builtin_trap();
      for (auto y : d.labels)
        if (y < 0 || y > 9) __builtin_trap();
    } catch (const hkt::Error&) {
      // expected: malformed input is refused
    }
  }
  return 0;
}
