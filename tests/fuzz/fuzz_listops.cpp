// fuzz_listops.cpp: libFuzzer target for the ListOps readers, evaluator, tokeniser and
// generator (datasets/listops.h).
//
// Input layout:
//   byte 0  mode (low 3 bits): 0-2 read_lra_tsv, 3-5 read_release (the rest of the
//           input is written to a fixed per-process temporary file), 6 evaluate() and
//           tokenize() on the rest as text, 7 generate() with a small configuration read
//           from the next bytes (at most 5000 attempts)
//   byte 1  max_len - 1 for the readers (1..256)
//   bytes 2.. the file / text / generator parameters
// hkt::Error is the expected outcome of bad input; anything else (another exception, a
// sanitizer report, or a broken invariant, which calls abort()) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <unistd.h>

#include "error.h"
#include "listops.h"

namespace fs = std::filesystem;
namespace lo = hkt::data::listops;

namespace {

// The per-process file, removed when the fuzzer exits normally.
struct TempFile {
  fs::path path = fs::temp_directory_path() / ("fuzz_listops_" + std::to_string(::getpid()) + ".tsv");
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

const std::string& temp_file() {
  static const TempFile temp;
  static const std::string path = temp.path.string();
  return path;
}

void require(bool invariant) {
  if (!invariant) std::abort();
}

// A successfully read dataset must be consistent.
void check_dataset(const hkt::data::Dataset& ds, std::int64_t max_len) {
  require(ds.size() > 0);
  require(ds.offsets.size() == ds.labels.size() + 1);
  require(static_cast<std::size_t>(ds.offsets.back()) == ds.tokens.size());
  for (std::int64_t i = 0; i < ds.size(); ++i) require(ds.length(i) >= 1 && ds.length(i) <= max_len);
  for (auto t : ds.tokens) require(t >= 1 && t <= 15);
  for (auto y : ds.labels) require(y >= 0 && y <= 9);
}

void fuzz_reader(bool lra, std::int64_t max_len, const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream out(temp_file(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  const auto ds =
      lra ? lo::read_lra_tsv(temp_file(), max_len, "train") : lo::read_release(temp_file(), max_len, "test");
  check_dataset(ds, max_len);
}

void fuzz_text(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::uint16_t> tokens;
  try {
    tokens = lo::tokenize(text, "fuzz");
  } catch (const hkt::Error&) {
  }
  const int value = lo::evaluate(text);
  require(value >= 0 && value <= 9);
  // A valid expression has at least one symbol, and tokenising it cannot fail.
  require(!lo::tokenize(text, "fuzz").empty());
}

void fuzz_generator(const std::uint8_t* p, std::size_t size) {
  std::uint8_t b[9] = {};
  for (std::size_t i = 0; i < size && i < 9; ++i) b[i] = p[i];
  lo::GeneratorConfig c{1 + b[0] % 8, b[1] % 7, b[2] / 255.0, b[3] % 20, 0, (b[5] & 1) != 0};
  c.max_len = c.min_len + 1 + b[4] % 40;
  const std::int64_t n_train = b[6] % 8, n_val = b[7] % 4, n_test = b[5] >> 6;
  // A bound of 5000 attempts keeps an impossible configuration cheap.
  const auto s = lo::generate(c, n_train, n_val, n_test, b[8], 5000);
  require(static_cast<std::int64_t>(s.train.size()) == n_train && static_cast<std::int64_t>(s.val.size()) == n_val &&
          static_cast<std::int64_t>(s.test.size()) == n_test);
  std::set<std::string> seen;
  for (const auto* split : {&s.train, &s.val, &s.test})
    for (const auto& e : *split) {
      require(seen.insert(e.expression).second);  // disjoint, no duplicates
      require(lo::evaluate(e.expression) == e.label);
      const auto len = static_cast<std::int64_t>(lo::tokenize(e.expression, "fuzz").size());
      require(len > c.min_len && len <= c.max_len);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const int mode = data[0] & 7;
  const std::int64_t max_len = 1 + data[1];
  try {
    switch (mode) {
      case 0:
      case 1:
      case 2:
        fuzz_reader(true, max_len, data + 2, size - 2);
        break;
      case 3:
      case 4:
      case 5:
        fuzz_reader(false, max_len, data + 2, size - 2);
        break;
      case 6:
        fuzz_text(data + 2, size - 2);
        break;
      default:
        fuzz_generator(data + 2, size - 2);
        break;
    }
  } catch (const hkt::Error&) {
    // Expected for bad input.
  }
  return 0;
}
