#include "file_bytes.h"

#include <filesystem>
#include <fstream>

#include "error.h"

namespace hkt::data {

std::vector<std::uint8_t> read_file_bytes(const std::string& path, const std::string& kind, std::uint64_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  check(!fs::is_directory(path, ec), path + ": is a directory, expected " + kind);
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path + ": cannot open the file");
  // Read in chunks until the end (the size is only a hint for reserve: the file may be
  // a pipe or change under us).
  // Never more than max_bytes (+ 1 to see that there is more): a device such as
  // /dev/zero, or a huge file, is refused by size before it can exhaust memory.
  std::vector<std::uint8_t> bytes;
  try {
    const auto hint = fs::file_size(path, ec);
    if (!ec && hint <= max_bytes) bytes.reserve(static_cast<std::size_t>(hint));
    char chunk[1 << 16];
    while (in && bytes.size() <= max_bytes) {
      in.read(chunk, sizeof chunk);
      bytes.insert(bytes.end(), chunk, chunk + in.gcount());
    }
  } catch (const std::bad_alloc&) {
    throw Error(path + ": not enough memory to read it (" + std::to_string(bytes.size()) + " bytes read so far)");
  }
  check(bytes.size() <= max_bytes, path + ": more than " + std::to_string(max_bytes) + " bytes, larger than " + kind +
                                       " can be; is it the right file?");
  check(!in.bad(), path + ": read error");
  return bytes;
}

}  // namespace hkt::data
