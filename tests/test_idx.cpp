// test_idx.cpp: the IDX reader and Fashion-MNIST (datasets/idx.h) on hand-made fixtures
// (tests/data/images/README.md), hand-built gzip files, malformed input, and the real
// Fashion-MNIST files of the Debian package dataset-fashion-mnist.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "idx.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::data;
using namespace hkt::test;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<std::uint8_t>;

// TempDir: tests/test_helpers.h

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void put_u32_be(Bytes& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}
void put_u32_le(Bytes& b, std::uint32_t v) {
  for (int shift = 0; shift <= 24; shift += 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}

/// An IDX header: 0, 0, `type`, the number of dims, then the sizes big-endian.
Bytes idx_header(const std::vector<std::uint32_t>& dims, std::uint8_t type = 0x08) {
  Bytes b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims) put_u32_be(b, d);
  return b;
}

/// A complete uint8 IDX file with data byte i = f(i).
template <class F>
Bytes idx_file(const std::vector<std::uint32_t>& dims, F f) {
  Bytes b = idx_header(dims);
  std::size_t n = 1;
  for (auto d : dims) n *= d;
  for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>(f(i)));
  return b;
}

/// CRC-32 (ISO-HDLC, the gzip one), bit by bit: reflected polynomial 0xEDB88320.
std::uint32_t crc32(const Bytes& data) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (auto byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

/// A gzip file (RFC 1952) holding `data` in one stored (uncompressed) deflate block
/// (RFC 1951 3.2.4), written by hand so the tests do not use the zlib they test.
Bytes gzip_stored(const Bytes& data) {
  Bytes g{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};  // magic, deflate, no flags, mtime 0, xfl, OS unknown
  g.push_back(0x01);                               // BFINAL = 1, BTYPE = 00 (stored)
  const auto len = static_cast<std::uint16_t>(data.size());
  g.push_back(static_cast<std::uint8_t>(len & 0xff));
  g.push_back(static_cast<std::uint8_t>(len >> 8));
  g.push_back(static_cast<std::uint8_t>(~len & 0xff));
  g.push_back(static_cast<std::uint8_t>((~len >> 8) & 0xff));
  g.insert(g.end(), data.begin(), data.end());
  put_u32_le(g, crc32(data));
  put_u32_le(g, static_cast<std::uint32_t>(data.size()));
  return g;
}

const Bytes kSmallData{1, 2, 3, 4, 5, 6};

}  // namespace

TEST_CASE("idx: raw and gzipped files give the same array", "[images]") {
  const std::string dir = test::fixture_dir() + "/images/";
  for (const char* name : {"small_2x3.idx", "small_2x3.idx.gz", "small_2x3_two_members.idx.gz"}) {
    INFO(name);
    const auto a = idx::read(dir + name);
    CHECK(a.dims == std::vector<std::uint32_t>{2, 3});
    CHECK(a.data == kSmallData);
  }
  // A gzip built by hand (stored block, our own CRC-32) reads the same.
  TempDir tmp("idx-good");
  const Bytes raw = read_bytes(dir + "small_2x3.idx");
  const auto a = idx::read(tmp.write("stored.gz", gzip_stored(raw)));
  CHECK(a.dims == std::vector<std::uint32_t>{2, 3});
  CHECK(a.data == kSmallData);
  // Zero dimensions hold one element; a size of 0 holds none.
  const auto scalar = idx::read(tmp.write("scalar.idx", Bytes{0, 0, 8, 0, 42}));
  CHECK(scalar.dims.empty());
  CHECK(scalar.data == Bytes{42});
  const auto none = idx::read(tmp.write("none.idx", idx_header({0, 28})));
  CHECK(none.dims == std::vector<std::uint32_t>{0, 28});
  CHECK(none.data.empty());
}

TEST_CASE("idx: malformed headers and sizes name the file and byte offset", "[images]") {
  TempDir tmp("idx-bad");
  require_error(
      [&] {
        idx::read(tmp.write("tiny.idx", Bytes{0, 0, 8}));
      },
      "tiny.idx: 3 bytes, too short for the 4-byte IDX magic");
  require_error(
      [&] {
        idx::read(tmp.write("magic.idx", Bytes{1, 0, 8, 1, 0, 0, 0, 1, 5}));
      },
      "magic.idx: IDX byte offset 0: bad magic 0x01 0x00, an IDX file starts with two zero bytes");
  Bytes float32_file = idx_header({1}, 0x0D);
  float32_file.insert(float32_file.end(), 4, 0);
  require_error(
      [&] { idx::read(tmp.write("float.idx", float32_file)); },
      "float.idx: IDX byte offset 2: unsupported element type 0x0d (float32); only 0x08 (unsigned byte) is read");
  require_error([&] { idx::read(tmp.write("type.idx", idx_header({1}, 0x42))); },
                "unsupported element type 0x42 (not an IDX type)");
  require_error(
      [&] {
        idx::read(tmp.write("header.idx", Bytes{0, 0, 8, 3, 0, 0, 0, 1, 0}));
      },
      "header.idx: IDX byte offset 4: header truncated: 3 dimensions need 12 bytes of sizes, found 5");
  // Sizes 1 x 2 x 3 = 6 data bytes after a 16-byte header.
  Bytes few = idx_header({1, 2, 3});
  few.insert(few.end(), {1, 2, 3, 4});
  require_error([&] { idx::read(tmp.write("few.idx", few)); },
                "few.idx: IDX byte offset 20: the data ends after 4 bytes, but sizes 1 x 2 x 3 need 6");
  Bytes many = idx_header({1, 2, 3});
  many.insert(many.end(), {1, 2, 3, 4, 5, 6, 7, 8});
  require_error([&] { idx::read(tmp.write("many.idx", many)); },
                "many.idx: IDX byte offset 22: 2 unexpected bytes after the 6 data bytes of sizes 1 x 2 x 3");
  // (2^32-1)^2 fits in 64 bits; a third factor does not: the size at byte 12 overflows.
  require_error(
      [&] {
        idx::read(tmp.write("huge.idx", idx_header({0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu})));
      },
      "huge.idx: IDX byte offset 12: the sizes multiply to more than 2^64 elements");
  require_error([&] { idx::read(tmp.write("empty.idx", Bytes{})); }, "empty.idx: 0 bytes, too short");
  require_error([&] { idx::read((tmp.path / "absent.idx").string()); }, "absent.idx: cannot open the file");
  require_error([&] { idx::read(tmp.path.string()); }, "is a directory");
  // Errors inside a gzipped file count offsets in the decompressed data.
  require_error(
      [&] {
        idx::read(tmp.write("magic.idx.gz", gzip_stored(Bytes{0, 7, 8, 0, 1})));
      },
      "magic.idx.gz (decompressed): IDX byte offset 0: bad magic 0x00 0x07");
  require_error([&] { idx::read(tmp.write("few.idx.gz", gzip_stored(few))); },
                "few.idx.gz (decompressed): IDX byte offset 20: the data ends after 4 bytes");
}

TEST_CASE("idx: corrupt and truncated gzip give zlib's message", "[images]") {
  TempDir tmp("idx-gzip");
  const Bytes raw = read_bytes(test::fixture_dir() + "/images/small_2x3.idx");
  const Bytes good = gzip_stored(raw);  // 10 header + 5 block header + 18 data + 8 trailer = 41 bytes
  REQUIRE(good.size() == 41);

  Bytes bad_crc = good;
  bad_crc[33] ^= 0xff;  // first CRC byte
  require_error([&] { idx::read(tmp.write("crc.gz", bad_crc)); },
                "crc.gz: gzip: corrupt data detected at compressed byte offset");
  require_error([&] { idx::read(tmp.write("crc.gz", bad_crc)); }, "incorrect data check");
  Bytes bad_length = good;
  bad_length[37] ^= 0x01;  // ISIZE
  require_error([&] { idx::read(tmp.write("length.gz", bad_length)); }, "incorrect length check");
  Bytes bad_block = good;
  bad_block[10] = 0x07;  // BFINAL 1, BTYPE 11: reserved
  require_error([&] { idx::read(tmp.write("block.gz", bad_block)); },
                "block.gz: gzip: corrupt data detected at compressed byte offset 11: invalid block type");
  Bytes bad_nlen = good;
  bad_nlen[13] ^= 0x01;  // NLEN no longer the complement of LEN
  require_error([&] { idx::read(tmp.write("nlen.gz", bad_nlen)); }, "invalid stored block lengths");

  // Truncated anywhere: inside the data, inside the trailer, right after the magic.
  require_error([&] { idx::read(tmp.write("cut.gz", Bytes(good.begin(), good.begin() + 20))); },
                "cut.gz: gzip: truncated: the compressed data ends at byte 20 inside a gzip stream");
  require_error([&] { idx::read(tmp.write("cut.gz", Bytes(good.begin(), good.end() - 1))); },
                "ends at byte 40 inside a gzip stream");
  require_error([&] { idx::read(tmp.write("cut.gz", Bytes{0x1f, 0x8b})); }, "ends at byte 2 inside a gzip stream");

  // Bytes after the last member must be another gzip member.
  Bytes trailing = good;
  for (char c : std::string("garbage!")) trailing.push_back(static_cast<std::uint8_t>(c));
  require_error([&] { idx::read(tmp.write("trailing.gz", trailing)); },
                "trailing.gz: gzip: corrupt data detected at compressed byte offset");
  require_error([&] { idx::read(tmp.write("trailing.gz", trailing)); }, "incorrect header check");
  // Two members that each hold half of the IDX bytes are one file.
  Bytes two = gzip_stored(Bytes(raw.begin(), raw.begin() + 9));
  const Bytes second = gzip_stored(Bytes(raw.begin() + 9, raw.end()));
  two.insert(two.end(), second.begin(), second.end());
  CHECK(idx::read(tmp.write("two.gz", two)).data == kSmallData);
}

TEST_CASE("fashion-mnist: fixture folder splits and tokens", "[images]") {
  const std::string dir = test::fixture_dir() + "/images/fashion_tiny";
  // train = the 4 gzipped images minus the last 1 (val); test = the 2 raw t10k images.
  const auto s = fashion_mnist::read_folder(dir, 1);
  REQUIRE(s.train.size() == 3);
  REQUIRE(s.val.size() == 1);
  REQUIRE(s.test.size() == 2);
  CHECK(s.train.split == "train");
  CHECK(s.val.split == "val");
  CHECK(s.test.split == "test");
  CHECK(s.train.labels == std::vector<std::int32_t>{9, 0, 3});
  CHECK(s.val.labels == std::vector<std::int32_t>{7});
  CHECK(s.test.labels == std::vector<std::int32_t>{1, 8});
  for (const auto* d : {&s.train, &s.val, &s.test}) {
    CHECK(d->name == "fashion-mnist");
    CHECK(d->max_len == 784);
    CHECK(d->vocab_size == 256);
    CHECK(d->num_features == 0);
    CHECK(d->num_classes == 10);
    REQUIRE(d->class_names.size() == 10);
    CHECK(d->class_names[0] == "T-shirt/top");
    CHECK(d->class_names[9] == "Ankle boot");
    for (std::int64_t i = 0; i < d->size(); ++i) CHECK(d->length(i) == 784);  // black pixels included
  }
  // Pixel p of train image k is (37 k + 3 p) mod 256; of t10k image k, (100 k + p) mod 256.
  std::int64_t wrong = 0;
  for (int k = 0; k < 4; ++k) {
    const auto& d = k < 3 ? s.train : s.val;
    const int row = k < 3 ? k : 0;
    for (int p = 0; p < 784; ++p) wrong += d.tokens[static_cast<std::size_t>(row * 784 + p)] != (37 * k + 3 * p) % 256;
  }
  for (int k = 0; k < 2; ++k)
    for (int p = 0; p < 784; ++p) wrong += s.test.tokens[static_cast<std::size_t>(k * 784 + p)] != (100 * k + p) % 256;
  CHECK(wrong == 0);
  CHECK(s.train.tokens[0] == 0);  // a black pixel is token 0, kept

  const auto all =
      fashion_mnist::read(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz", "train");
  CHECK(all.size() == 4);
  CHECK(all.labels == std::vector<std::int32_t>{9, 0, 3, 7});
  require_error([&] { fashion_mnist::read_folder(dir); }, "validation size 5000 must be in [0, 4)");
  require_error([&] { fashion_mnist::read_folder(dir, 4); }, "validation size 4 must be in [0, 4)");
}

TEST_CASE("fashion-mnist: malformed pairs are refused", "[images]") {
  TempDir tmp("idx-fashion");
  const auto pixel = [](std::size_t i) { return i % 251; };
  const auto label = [](std::size_t i) { return i % 10; };
  const auto images3 = tmp.write("images3", idx_file({3, 28, 28}, pixel));
  require_error([&] { fashion_mnist::read(images3, tmp.write("labels2", idx_file({2}, label)), "train"); },
                "labels2: 2 labels, but " + images3 + " holds 3 images");
  require_error(
      [&] {
        fashion_mnist::read(images3, tmp.write("labels_bad", Bytes{0, 0, 8, 1, 0, 0, 0, 3, 4, 10, 2}), "train");
      },
      "labels_bad: label 1 (IDX byte offset 9) is 10, not in 0-9");
  require_error(
      [&] {
        fashion_mnist::read(tmp.write("images27", idx_file({2, 27, 28}, pixel)), tmp.write("l2", idx_file({2}, label)),
                            "t");
      },
      "images27: expected images of sizes N x 28 x 28, found 3 dimension(s) (N x 27 x 28)");
  require_error(
      [&] {
        fashion_mnist::read(tmp.write("flat", idx_file({2, 784}, pixel)), tmp.write("l2", idx_file({2}, label)), "t");
      },
      "flat: expected images of sizes N x 28 x 28, found 2 dimension(s)");
  require_error(
      [&] {
        fashion_mnist::read(images3, tmp.write("labels2d", idx_file({3, 1}, label)), "t");
      },
      "labels2d: expected a 1-dimensional labels array, found 2 dimensions");
  require_error(
      [&] {
        fashion_mnist::read(tmp.write("images0", idx_file({0, 28, 28}, pixel)), tmp.write("l0", idx_file({0}, label)),
                            "t");
      },
      "images0: the file holds no images");
  // An error inside one of the files is named with that file.
  require_error(
      [&] {
        fashion_mnist::read(images3, tmp.write("labels_short", Bytes{0, 0, 8, 1, 0, 0, 0, 3, 4}), "t");
      },
      "labels_short: IDX byte offset 9: the data ends after 1 bytes, but sizes 3 need 3");

  TempDir folder("idx-fashion-folder");
  folder.write("train-images-idx3-ubyte.gz", gzip_stored(idx_file({2, 28, 28}, pixel)));
  folder.write("t10k-labels-idx1-ubyte", idx_file({1}, label));
  require_error([&] { fashion_mnist::read_folder(folder.path.string(), 0); },
                "missing Fashion-MNIST file(s): train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz]");
}

TEST_CASE("fashion-mnist: the real files of the Debian package", "[images]") {
  const std::string dir = fashion_mnist::default_dir();
  HKT_SKIP_UNLESS_EXISTS(dir + "/train-images-idx3-ubyte.gz");
  const auto images = idx::read(dir + "/t10k-images-idx3-ubyte.gz");
  CHECK(images.dims == std::vector<std::uint32_t>{10000, 28, 28});
  CHECK(images.data.size() == 7840000);

  const auto s = fashion_mnist::read_folder(dir);
  REQUIRE(s.train.size() == 55000);
  REQUIRE(s.val.size() == 5000);
  REQUIRE(s.test.size() == 10000);
  CHECK(s.train.tokens.size() == 55000 * 784);
  CHECK(s.test.tokens.size() == 10000 * 784);
  // The published counts: 6000 images a class in train-*, 1000 in t10k-*.
  const auto train_h = s.train.label_histogram(), val_h = s.val.label_histogram();
  for (std::size_t c = 0; c < 10; ++c) CHECK(train_h[c] + val_h[c] == 6000);
  CHECK(s.test.label_histogram() == std::vector<std::int64_t>(10, 1000));
  // The validation classes, counted with Python's gzip module from the last 5000 labels.
  CHECK(val_h == std::vector<std::int64_t>{521, 497, 490, 508, 527, 503, 467, 450, 515, 522});
  // The first labels of each file (bytes 8.. of the decompressed label files, read with zcat | xxd).
  CHECK(std::vector<std::int32_t>(s.train.labels.begin(), s.train.labels.begin() + 8) ==
        std::vector<std::int32_t>{9, 0, 0, 3, 0, 2, 7, 2});
  CHECK(std::vector<std::int32_t>(s.test.labels.begin(), s.test.labels.begin() + 8) ==
        std::vector<std::int32_t>{9, 2, 1, 1, 6, 1, 4, 6});
  // The mean pixel of the 60000 training images is the published normalisation constant
  // 0.2860 (quoted to 4 decimals, so within half a unit of the last one: 5e-5).
  double sum = 0;
  for (auto t : s.train.tokens) sum += t;
  for (auto t : s.val.tokens) sum += t;
  CHECK(std::fabs(sum / (60000.0 * 784.0 * 255.0) - 0.2860) <= 5e-5);
}
