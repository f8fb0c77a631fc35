// fuzz_safetensors.cpp: libFuzzer target for the safetensors reader (engine/io/safetensors.h).
//
// The input bytes are written to a per-process temporary file and given to load(). An
// hkt::Error is the expected answer to bad input; anything else (a crash, a sanitizer
// report, another exception) is a bug. When a file loads, saving what was read and
// loading that again must give the same names, metadata and bytes (a cheap check that
// the reader and the writer agree on everything the reader accepts).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "io/safetensors.h"

namespace {

std::string temp_path(const char* suffix) {
  return (std::filesystem::temp_directory_path() / ("hkt-fuzz-safetensors-" + std::to_string(getpid()) + suffix))
      .string();
}

bool same(const hkt::safetensors::File& a, const hkt::safetensors::File& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& [name_a, ta] = a.tensors[i];
    const auto& [name_b, tb] = b.tensors[i];
    if (name_a != name_b || ta.dtype() != tb.dtype() || ta.shape() != tb.shape()) return false;
    if (std::memcmp(ta.raw_data(), tb.raw_data(), ta.nbytes()) != 0) return false;
  }
  return true;
}

const std::string& input_path() {
  static const std::string path = temp_path(".safetensors");
  return path;
}
const std::string& resaved_path() {
  static const std::string path = temp_path("-resaved.safetensors");
  return path;
}

void remove_temp_files() {
  std::remove(input_path().c_str());
  std::remove(resaved_path().c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& input = input_path();
  const std::string& resaved = resaved_path();
  // Registered after the two paths exist, so it runs before they are destroyed.
  static const bool cleanup_registered = std::atexit(remove_temp_files) == 0;
  (void)cleanup_registered;
  std::FILE* f = std::fopen(input.c_str(), "wb");
  if (!f) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  try {
    const hkt::safetensors::File file = hkt::safetensors::load(input);
    hkt::safetensors::save(resaved, file.tensors, file.metadata);
    if (!same(file, hkt::safetensors::load(resaved))) std::abort();  // reader and writer disagree
  } catch (const hkt::Error&) {
    // Expected for malformed input.
  }
  return 0;
}
