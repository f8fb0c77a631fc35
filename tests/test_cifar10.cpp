// test_cifar10.cpp: the CIFAR-10 binary reader (datasets/cifar10.h) against the test
// vectors of docs/datasets.md, hand-made fixtures (tests/data/images/README.md),
// malformed files, and the 200 real test images of ../shared/data/cifar10.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cifar10.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::data;
using namespace hkt::test;
namespace fs = std::filesystem;

namespace {

// TempDir: tests/test_helpers.h

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// One 3073-byte record: the label, then the R, G, B planes; pixel 0 has red = `tag` (so a
/// test can tell records apart), every other byte is 0.
std::vector<std::uint8_t> record(std::uint8_t label, std::uint8_t tag) {
  std::vector<std::uint8_t> r(3073, 0);
  r[0] = label;
  r[1] = tag;
  return r;
}

/// Records with tags first, first+1, ...; label = tag mod 10.
std::vector<std::uint8_t> records(int first, int count) {
  std::vector<std::uint8_t> bytes;
  for (int i = first; i < first + count; ++i) {
    const auto r = record(static_cast<std::uint8_t>(i % 10), static_cast<std::uint8_t>(i));
    bytes.insert(bytes.end(), r.begin(), r.end());
  }
  return bytes;
}

// float32 arithmetic emulated in double, independently of cifar10::gray: the exact result
// of a float op fits or is rounded to 53 bits in double and then rounded once to float.
// Since 53 >= 2 * 24 + 2, that double rounding equals one float32 rounding for + * /
// (Figueroa, "When is double rounding innocuous?", 1995). The double result goes through
// a volatile: otherwise GCC narrows (float)((double)a * b) to a float multiply and then,
// under its C++ default -ffp-contract=fast with -march=native, fuses it with the next
// add into an FMA (seen here: 40 colours came out different).
float f32_add(float a, float b) {
  volatile double wide = static_cast<double>(a) + static_cast<double>(b);
  return static_cast<float>(wide);
}
float f32_mul(float a, float b) {
  volatile double wide = static_cast<double>(a) * static_cast<double>(b);
  return static_cast<float>(wide);
}
float f32_div(float a, float b) {
  volatile double wide = static_cast<double>(a) / static_cast<double>(b);
  return static_cast<float>(wide);
}

/// datasets.md's formula in float32, in the order written.
int gray_f32_reference(int r, int g, int b) {
  const float sum = f32_add(f32_add(f32_mul(0.2989f, static_cast<float>(r)), f32_mul(0.5870f, static_cast<float>(g))),
                            f32_mul(0.1140f, static_cast<float>(b)));
  return static_cast<int>(f32_div(f32_mul(255.5f, sum), 255.0f));
}

/// The same formula in float64, before truncation.
double gray_f64(int r, int g, int b) { return 255.5 * (0.2989 * r + 0.5870 * g + 0.1140 * b) / 255.0; }

/// float32 and float64 can truncate to different integers only where the float64 value is
/// this close to an integer: the float32 evaluation makes 5 roundings, each at most 7.6e-6
/// on the scale of the result (half an ulp below 256), and its weights are off by at most
/// a relative 2^-24 = 6e-8 (1.5e-5 at 255): under 6e-5 in all, so 1e-4 leaves a margin.
constexpr double kNearInteger = 1e-4;

}  // namespace

TEST_CASE("cifar10: gray test vectors of datasets.md", "[images]") {
  CHECK(cifar10::gray(255, 255, 255) == 255);
  CHECK(cifar10::gray(0, 255, 0) == 149);
  CHECK(cifar10::gray(255, 0, 0) == 76);
  CHECK(cifar10::gray(0, 0, 255) == 29);
  CHECK(cifar10::gray(128, 128, 128) == 128);
  CHECK(cifar10::gray(1, 1, 1) == 1);
  CHECK(cifar10::gray(200, 100, 50) == 124);
  CHECK(cifar10::gray(0, 0, 0) == 0);  // black is gray 0, a real token
}

TEST_CASE("cifar10: gray is the float32 formula for all 2^24 colours", "[images]") {
  // Every colour: exactly the float32 evaluation (emulated independently above), and
  // within 1 of the float64 one, differing only where float64 lies within 1e-4 of an integer.
  std::int64_t mismatches = 0, differ_from_f64 = 0, bad_f64 = 0;
  for (int r = 0; r < 256; ++r)
    for (int g = 0; g < 256; ++g)
      for (int b = 0; b < 256; ++b) {
        const int ours =
            cifar10::gray(static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(g), static_cast<std::uint8_t>(b));
        if (ours != gray_f32_reference(r, g, b)) ++mismatches;
        const double exact = gray_f64(r, g, b);
        if (ours != static_cast<int>(exact)) {
          ++differ_from_f64;
          if (std::abs(ours - static_cast<int>(exact)) > 1 || std::fabs(exact - std::round(exact)) > kNearInteger)
            ++bad_f64;
        }
      }
  CHECK(mismatches == 0);
  CHECK(bad_f64 == 0);
  // (0,122,186): float64 gives 92.999996..., float32 rounds the sum up to give 93.
  CHECK(gray_f64(0, 122, 186) == Approx(92.999996).margin(1e-6));
  CHECK(cifar10::gray(0, 122, 186) == 93);
  INFO("colours whose float32 gray differs from float64: " << differ_from_f64);
  CHECK(differ_from_f64 < 1000);  // a handful of near-integer colours, not a systematic shift
}

TEST_CASE("cifar10: fixture records in gray mode", "[images]") {
  const auto d = cifar10::read_file(test::fixture_dir() + "/images/cifar_two_records.bin", cifar10::Mode::Gray, "test");
  CHECK(d.name == "cifar10-gray");
  CHECK(d.split == "test");
  CHECK(d.max_len == 1024);
  CHECK(d.vocab_size == 256);
  CHECK(d.num_features == 0);
  CHECK(d.num_classes == 10);
  REQUIRE(d.class_names.size() == 10);
  CHECK(d.class_names[0] == "airplane");
  CHECK(d.class_names[3] == "cat");
  CHECK(d.class_names[9] == "truck");
  REQUIRE(d.size() == 2);
  CHECK(d.labels == std::vector<std::int32_t>{3, 9});
  // Black pixels are real tokens: both examples keep all 1024 steps.
  CHECK(d.length(0) == 1024);
  CHECK(d.length(1) == 1024);
  REQUIRE(d.tokens.size() == 2048);
  // Record 0: pixels 0..6 are the datasets.md test-vector colours, the rest black.
  const std::vector<std::uint16_t> first7{255, 149, 76, 29, 128, 1, 124};
  CHECK(std::vector<std::uint16_t>(d.tokens.begin(), d.tokens.begin() + 7) == first7);
  std::int64_t nonzero_rest = 0;
  for (std::size_t p = 7; p < 2048; ++p)
    if (d.tokens[p] != 0 && p != 1024 + 1023) ++nonzero_rest;
  CHECK(nonzero_rest == 0);
  // Record 1: pixel 1023 (row 31, column 31) is white.
  CHECK(d.tokens[1024 + 1023] == 255);
}

TEST_CASE("cifar10: fixture records in rgb mode", "[images]") {
  const auto d = cifar10::read_file(test::fixture_dir() + "/images/cifar_two_records.bin", cifar10::Mode::Rgb, "train");
  CHECK(d.name == "cifar10-rgb");
  CHECK(d.num_features == 3);
  CHECK(d.vocab_size == 0);
  CHECK(d.max_len == 1024);
  REQUIRE(d.size() == 2);
  CHECK(d.length(0) == 1024);
  REQUIRE(d.feature_bytes.size() == 2 * 1024 * 3);
  // Step p holds pixel p's (R, G, B): the planes are interleaved.
  const std::vector<std::uint8_t> first7{255, 255, 255, 0,   255, 0, 255, 0,   0,   0, 0,
                                         255, 128, 128, 128, 1,   1, 1,   200, 100, 50};
  CHECK(std::vector<std::uint8_t>(d.feature_bytes.begin(), d.feature_bytes.begin() + 21) == first7);
  const std::size_t last = 3 * (1024 + 1023);
  CHECK(d.feature_bytes[last] == 255);
  CHECK(d.feature_bytes[last + 1] == 255);
  CHECK(d.feature_bytes[last + 2] == 255);
  CHECK(d.feature_bytes[last - 1] == 0);
  // Through the loader: values are bytes / 255, and the mask is 1 on black pixels too.
  const Loader loader(d, 2, false, 0, false, DType::Float64);
  const Batch batch = loader.batch(0, 0);
  const auto f = batch.features.to_vector();  // [2, 1024, 3]
  CHECK(f[6 * 3 + 0] == 200.0 / 255.0);
  CHECK(f[6 * 3 + 1] == 100.0 / 255.0);
  CHECK(f[6 * 3 + 2] == 50.0 / 255.0);
  const auto mask = batch.mask.to_vector();
  CHECK(std::count(mask.begin(), mask.end(), 1.0) == 2048);
}

TEST_CASE("cifar10: read_folder takes validation from the end of the training files", "[images]") {
  TempDir dir("cifar10-folder");
  // 11 training images (2+2+2+2+3) with tags 0..10, 3 test images with tags 100..102.
  const int sizes[5] = {2, 2, 2, 2, 3};
  int first = 0;
  for (int f = 0; f < 5; ++f) {
    write_bytes(dir.file("data_batch_" + std::to_string(f + 1) + ".bin"), records(first, sizes[f]));
    first += sizes[f];
  }
  write_bytes(dir.file("test_batch.bin"), records(100, 3));

  const auto s = cifar10::read_folder(dir.path.string(), cifar10::Mode::Rgb, 3);
  CHECK(s.train.split == "train");
  CHECK(s.val.split == "val");
  CHECK(s.test.split == "test");
  REQUIRE(s.train.size() == 8);
  REQUIRE(s.val.size() == 3);
  REQUIRE(s.test.size() == 3);
  // Train: images 0..7 in file order across files; val: the last 3 (8, 9, 10).
  for (int i = 0; i < 8; ++i) {
    CHECK(s.train.labels[static_cast<std::size_t>(i)] == i % 10);
    CHECK(s.train.feature_bytes[static_cast<std::size_t>(i * 3072)] == i);  // red of pixel 0 = tag
  }
  CHECK(s.val.labels == std::vector<std::int32_t>{8, 9, 0});
  CHECK(s.val.feature_bytes[0] == 8);
  CHECK(s.val.feature_bytes[3072] == 9);
  CHECK(s.val.feature_bytes[2 * 3072] == 10);
  CHECK(s.test.labels == std::vector<std::int32_t>{0, 1, 2});
  CHECK(s.test.feature_bytes[2 * 3072] == 102);

  // Gray mode, no validation: every training image in train.
  const auto g = cifar10::read_folder(dir.path.string(), cifar10::Mode::Gray, 0);
  CHECK(g.train.size() == 11);
  CHECK(g.val.size() == 0);
  CHECK(g.train.name == "cifar10-gray");
  CHECK(g.train.tokens[10 * 1024] == cifar10::gray(10, 0, 0));

  // The default of 5000 needs more than 11 images; validation may not take them all.
  require_error([&] { cifar10::read_folder(dir.path.string(), cifar10::Mode::Gray); },
                "validation size 5000 must be in [0, 11)");
  require_error([&] { cifar10::read_folder(dir.path.string(), cifar10::Mode::Gray, 11); },
                "validation size 11 must be in [0, 11)");
  require_error([&] { cifar10::read_folder(dir.path.string(), cifar10::Mode::Gray, -1); }, "validation size -1");
}

TEST_CASE("cifar10: read_folder names every missing file", "[images]") {
  TempDir dir("cifar10-missing");
  for (int f : {1, 2, 4, 5}) write_bytes(dir.file("data_batch_" + std::to_string(f) + ".bin"), records(0, 1));
  require_error([&] { cifar10::read_folder(dir.path.string(), cifar10::Mode::Gray, 0); },
                "missing CIFAR-10 file(s): data_batch_3.bin, test_batch.bin");
  // A bad file among the batches is named with its record.
  write_bytes(dir.file("data_batch_3.bin"), records(0, 1));
  write_bytes(dir.file("test_batch.bin"), records(0, 1));
  auto bad = records(0, 2);
  bad[3073] = 200;
  write_bytes(dir.file("data_batch_4.bin"), bad);
  require_error([&] { cifar10::read_folder(dir.path.string(), cifar10::Mode::Gray, 0); },
                "data_batch_4.bin: record 1 (byte offset 3073): label byte 200 is not in 0-9");
  auto ragged = records(0, 1);
  ragged.push_back(0);
  write_bytes(dir.file("data_batch_4.bin"), ragged);
  require_error([&] { cifar10::read_folder(dir.path.string(), cifar10::Mode::Gray, 0); },
                "data_batch_4.bin: size 3074 bytes is not a multiple of the 3073-byte record");
}

TEST_CASE("cifar10: malformed files are refused with file and offset", "[images]") {
  TempDir dir("cifar10-bad");
  auto one_extra = records(0, 1);
  one_extra.push_back(7);
  write_bytes(dir.file("extra.bin"), one_extra);
  require_error(
      [&] { cifar10::read_file(dir.file("extra.bin"), cifar10::Mode::Gray, "test"); },
      "extra.bin: size 3074 bytes is not a multiple of the 3073-byte record (1 whole records, remainder 1 bytes)");
  write_bytes(dir.file("short.bin"), std::vector<std::uint8_t>(3072, 0));
  require_error(
      [&] { cifar10::read_file(dir.file("short.bin"), cifar10::Mode::Rgb, "test"); },
      "short.bin: size 3072 bytes is not a multiple of the 3073-byte record (0 whole records, remainder 3072 bytes)");
  write_bytes(dir.file("empty.bin"), {});
  require_error([&] { cifar10::read_file(dir.file("empty.bin"), cifar10::Mode::Gray, "test"); },
                "empty.bin: the file is empty");
  auto bad_label = records(0, 3);
  bad_label[2 * 3073] = 10;
  write_bytes(dir.file("label.bin"), bad_label);
  require_error([&] { cifar10::read_file(dir.file("label.bin"), cifar10::Mode::Gray, "test"); },
                "label.bin: record 2 (byte offset 6146): label byte 10 is not in 0-9");
  require_error([&] { cifar10::read_file(dir.file("label.bin"), cifar10::Mode::Rgb, "test"); }, "label byte 10");
  require_error([&] { cifar10::read_file(dir.file("no_such.bin"), cifar10::Mode::Gray, "test"); },
                "no_such.bin: cannot open");
  require_error([&] { cifar10::read_file(dir.path.string(), cifar10::Mode::Gray, "test"); }, "is a directory");
}

TEST_CASE("cifar10: the 200 real test images of mlperf_tiny_ic01", "[images]") {
  const std::string root = test::real_data_dir() + "/cifar10/mlperf_tiny_ic01";
  HKT_SKIP_UNLESS_EXISTS(root + "/ic01_200.cifar10-binary.bin");
  const auto gray = cifar10::read_file(root + "/ic01_200.cifar10-binary.bin", cifar10::Mode::Gray, "test");
  const auto rgb = cifar10::read_file(root + "/ic01_200.cifar10-binary.bin", cifar10::Mode::Rgb, "test");
  REQUIRE(gray.size() == 200);
  REQUIRE(rgb.size() == 200);
  // The README's label histogram (bird, 28 of 200, is the majority class: 14.0%).
  CHECK(gray.label_histogram() == std::vector<std::int64_t>{21, 17, 28, 25, 14, 22, 14, 17, 26, 16});
  CHECK(gray.chance_level() == Approx(0.14));
  // README: record 0 is label 7; its first 4 R, G, B values and first 8 gray values.
  CHECK(gray.labels[0] == 7);
  CHECK(std::vector<std::uint16_t>(gray.tokens.begin(), gray.tokens.begin() + 8) ==
        std::vector<std::uint16_t>{47, 78, 94, 38, 78, 97, 94, 95});
  CHECK(std::vector<std::uint8_t>(rgb.feature_bytes.begin(), rgb.feature_bytes.begin() + 12) ==
        std::vector<std::uint8_t>{51, 43, 62, 74, 77, 95, 89, 93, 112, 43, 34, 50});

  // Every image against its original EEMBC file (bins/<name>.bin, HWC: byte (r*32+c)*3+k),
  // in y_labels.csv row order: the rgb steps are exactly those bytes, the label is the
  // csv's, and every gray token equals the float64 formula on those bytes except within
  // 1e-4 of an integer (float32 rounding, see the all-colours test).
  std::ifstream csv(root + "/y_labels.csv");
  std::string line;
  std::int64_t k = 0, zero_pixels = 0, images_with_zero = 0, near_integer = 0;
  while (std::getline(csv, line) && k < 200) {
    std::stringstream fields(line);
    std::string name, ten, label;
    std::getline(fields, name, ',');
    std::getline(fields, ten, ',');
    std::getline(fields, label, ',');
    INFO("record " << k << " = " << name);
    CHECK(gray.labels[static_cast<std::size_t>(k)] == std::stoi(label));
    const auto hwc = read_bytes(root + "/bins/" + name);
    REQUIRE(hwc.size() == 3072);
    CHECK(std::equal(hwc.begin(), hwc.end(), rgb.feature_bytes.begin() + k * 3072));
    std::int64_t zeros_here = 0;
    for (int p = 0; p < 1024; ++p) {
      const double exact = gray_f64(hwc[static_cast<std::size_t>(3 * p)], hwc[static_cast<std::size_t>(3 * p + 1)],
                                    hwc[static_cast<std::size_t>(3 * p + 2)]);
      const int token = gray.tokens[static_cast<std::size_t>(k * 1024 + p)];
      if (std::fabs(exact - std::round(exact)) <= kNearInteger) {
        ++near_integer;
        CHECK(std::abs(token - static_cast<int>(exact)) <= 1);
      } else {
        CHECK(token == static_cast<int>(exact));
      }
      zeros_here += token == 0;
    }
    zero_pixels += zeros_here;
    images_with_zero += zeros_here > 0;
    ++k;
  }
  CHECK(k == 200);
  // README: "about 538 pixels across 19 of the 200 images have gray value 0".
  CHECK(zero_pixels == 538);
  CHECK(images_with_zero == 19);
  INFO("pixels within 1e-4 of an integer: " << near_integer);
}
