// fuzz_files.h: writing a fuzz input to a file, for readers that take a path.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace hkt::fuzz {

/// A fixed temporary path per process and `name`, so parallel fuzzing jobs do not
/// overwrite each other's files.
inline std::string temp_path(const std::string& name) {
  return "/tmp/hkt_fuzz_" + name + "_" + std::to_string(getpid());
}

/// Writes `size` bytes to `path`; traps if the harness itself cannot (a fuzz failure
/// must be the reader's, never the harness's).
inline void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
}

}  // namespace hkt::fuzz
