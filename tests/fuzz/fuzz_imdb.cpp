// fuzz_imdb.cpp: libFuzzer target for the aclImdb reader (datasets/imdb.h).
//
// The reader takes a folder, so the input describes a small aclImdb tree that is
// written to a fixed per-process temporary folder before each call:
//   byte 0   flags: bit 0 replace_br, bits 1-2 val_fraction (0, 0.1, 0.5, 0.9),
//            bit 3 skip creating the standard folders (so "missing folder" is reachable)
//   byte 1   max_len - 1 (1..256)
//   byte 2   seed
//   then records, each ending at a 0 byte:
//     selector byte s: s & 7 picks the place (train/neg, train/pos, test/neg, test/pos,
//       train/, test/, train/urls_neg.txt, train/urls_pos.txt);
//       for places 0-5, if s & 8 the name is "<b1>_<b2 % 12>.txt" from the next two
//       bytes, else the bytes up to ':' (only [A-Za-z0-9_.-], at most 32, never "." or
//       ".."; the filter keeps every write inside the temporary folder);
//     the rest up to the 0 byte is the file's content.
// The whole input is also passed to encode(). hkt::Error is the expected outcome of bad
// input; anything else (another exception, a sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "error.h"
#include "imdb.h"

namespace fs = std::filesystem;

namespace {

// The per-process tree (under $TMPDIR: /dev/shm makes the file writes much faster),
// removed when the fuzzer exits normally.
struct TempRoot {
  fs::path path = fs::temp_directory_path() / ("fuzz_imdb_" + std::to_string(::getpid()));
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

const fs::path& root() {
  static const TempRoot temp;
  return temp.path;
}

// Letters, digits, '_', '.', '-': no '/', so a name cannot leave its folder.
std::string safe_name(const std::string& raw) {
  std::string name;
  for (char c : raw) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (ok && name.size() < 32) name += c;
  }
  return name == "." || name == ".." ? std::string() : name;
}

void write_file(const fs::path& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// Writes the records of `data` (after the 3 header bytes) as files under root().
void build_tree(const std::uint8_t* data, std::size_t size, bool make_folders) {
  std::error_code ec;
  fs::remove_all(root(), ec);
  fs::create_directories(root(), ec);
  const char* places[6] = {"train/neg", "train/pos", "test/neg", "test/pos", "train", "test"};
  if (make_folders)
    for (const char* p : places) fs::create_directories(root() / p, ec);
  std::size_t i = 3;
  while (i < size) {
    const std::uint8_t s = data[i++];
    const int place = s & 7;
    std::string name;
    if (place == 6 || place == 7) {
      name = place == 6 ? "urls_neg.txt" : "urls_pos.txt";
    } else if (s & 8) {
      const int id = i < size ? data[i++] : 0, rating = i < size ? data[i++] % 12 : 0;
      name = std::to_string(id) + "_" + std::to_string(rating) + ".txt";
    } else {
      std::string raw;
      while (i < size && data[i] != ':' && data[i] != 0) raw += static_cast<char>(data[i++]);
      if (i < size && data[i] == ':') ++i;
      name = safe_name(raw);
    }
    std::string content;
    while (i < size && data[i] != 0) content += static_cast<char>(data[i++]);
    ++i;  // the 0 byte
    if (name.empty()) continue;
    const fs::path folder = root() / (place >= 6 ? "train" : places[place]);
    fs::create_directories(folder, ec);
    write_file(folder / name, content);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  hkt::data::imdb::Options options;
  options.replace_br = data[0] & 1;
  const double fractions[4] = {0.0, 0.1, 0.5, 0.9};
  options.val_fraction = fractions[(data[0] >> 1) & 3];
  options.max_len = 1 + data[1];
  options.seed = data[2];

  try {
    const auto tokens = hkt::data::imdb::encode(std::string(reinterpret_cast<const char*>(data), size), options);
    if (static_cast<std::int64_t>(tokens.size()) > options.max_len) __builtin_trap();
    for (auto t : tokens)
      if (t < 1 || t > 256) __builtin_trap();
  } catch (const hkt::Error&) {
  }

  build_tree(data, size, !(data[0] & 8));
  try {
    const auto splits = hkt::data::imdb::read(root().string(), options);
    // What read() promises: train and val together hold every train review.
    if (splits.train.size() + splits.val.size() !=
        static_cast<std::int64_t>(hkt::data::imdb::list_reviews(root().string(), "train").size()))
      __builtin_trap();
  } catch (const hkt::Error&) {
  }
  return 0;
}
