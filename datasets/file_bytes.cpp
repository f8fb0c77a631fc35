#include "file_bytes.h"

#include <filesystem>
#include <fstream>

#include "error.h"

namespace hkt::data {

std::vector<std::uint8_t> read_file_bytes(const std::string& path, const std::string& kind) {
  namespace fs = std::filesystem;
  std::error_code ec;
  check(!fs::is_directory(path, ec), path + ": is a directory, expected " + kind);
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path + ": cannot open the file");
  // Read in chunks until the end (the size is only a hint for reserve: the file may be
  // a pipe or change under us).
  std::vector<std::uint8_t> bytes;
  const auto hint = fs::file_size(path, ec);
  if (!ec) bytes.reserve(static_cast<std::size_t>(hint));
  char chunk[1 << 16];
  while (in) {
    in.read(chunk, sizeof chunk);
    bytes.insert(bytes.end(), chunk, chunk + in.gcount());
  }
  check(!in.bad(), path + ": read error");
  return bytes;
}

}  // namespace hkt::data
