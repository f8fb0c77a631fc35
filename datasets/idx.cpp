// idx.cpp: the IDX reader (raw or gzip) and Fashion-MNIST (format in idx.h and
// docs/datasets.md).
#include "idx.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>

#include "error.h"
#include "file_bytes.h"

namespace hkt::data::idx {

namespace {

namespace fs = std::filesystem;

/// Decompressed data above this size is refused: a few bytes of gzip can claim
/// gigabytes (a "zip bomb"), and every real IDX file is far smaller.
constexpr std::uint64_t kMaxDecompressedBytes = std::uint64_t{4} << 30;

/// The whole file as bytes (file_bytes.h).
// The same bound as for decompressed data.
std::vector<std::uint8_t> read_bytes(const std::string& path) {
  return read_file_bytes(path, "an IDX file", kMaxDecompressedBytes);
}

bool is_gzip(const std::vector<std::uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

/// A first guess of the decompressed size, so that a large file is not copied while the
/// buffer doubles: the last 4 bytes of a gzip file hold the (last member's) size mod
/// 2^32, little-endian. It is only a hint: it is capped at deflate's largest ratio
/// (about 1032:1) so that a lying trailer cannot make us allocate gigabytes up front.
std::size_t initial_output_size(const std::vector<std::uint8_t>& in) {
  std::size_t hint = 0;
  if (in.size() >= 4) {
    const std::uint8_t* t = in.data() + in.size() - 4;
    hint = std::size_t{t[0]} | (std::size_t{t[1]} << 8) | (std::size_t{t[2]} << 16) | (std::size_t{t[3]} << 24);
  }
  // + 1: room left over lets zlib read the trailer in the same call that ends the data.
  const std::size_t guess = std::min({hint, in.size() * 1032, static_cast<std::size_t>(kMaxDecompressedBytes)}) + 1;
  return std::max<std::size_t>(guess, 1 << 16);
}

/// Inflates every gzip member of `in` (gzip -d accepts concatenated members, so do we).
/// Errors carry zlib's own message and the offset in the compressed file.
std::vector<std::uint8_t> gunzip(const std::string& path, const std::vector<std::uint8_t>& in) {
  z_stream zs{};
  // 16 + MAX_WBITS: expect a gzip header and trailer (CRC-32 and length are checked).
  check(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, path + ": gzip: zlib could not start (out of memory?)");
  struct End {  // inflateEnd on every path out, including throws
    z_stream* zs;
    ~End() { inflateEnd(zs); }
  } end{&zs};

  std::vector<std::uint8_t> out(initial_output_size(in));
  std::size_t given = 0, produced = 0;                  // input bytes handed to zlib, output bytes written
  constexpr std::size_t kPiece = std::size_t{1} << 30;  // avail_in/avail_out are 32-bit
  for (;;) {
    if (zs.avail_in == 0 && given < in.size()) {
      const std::size_t piece = std::min(kPiece, in.size() - given);
      zs.next_in = const_cast<Bytef*>(in.data() + given);  // zlib's API is not const-correct
      zs.avail_in = static_cast<uInt>(piece);
      given += piece;
    }
    if (produced == out.size())  // full: grow, but never far past the limit
      out.resize(std::min<std::size_t>(out.size() * 2, kMaxDecompressedBytes + 1));
    const std::size_t room = std::min(kPiece, out.size() - produced);
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(room);
    const int ret = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    const std::size_t offset = given - zs.avail_in;  // compressed bytes consumed so far
    check(produced <= kMaxDecompressedBytes,
          path + ": gzip: the data decompresses to more than 4 GiB (compressed byte offset " + std::to_string(offset) +
              ")");
    if (ret == Z_STREAM_END) {
      if (offset == in.size()) break;  // the last member ended exactly at the end of the file
      check(inflateReset(&zs) == Z_OK, path + ": gzip: zlib could not reset");  // the next member follows
      continue;
    }
    if (ret == Z_OK) continue;
    // Z_BUF_ERROR with room to write means zlib needs input that does not exist.
    check(!(ret == Z_BUF_ERROR && offset == in.size()), path + ": gzip: truncated: the compressed data ends at byte " +
                                                            std::to_string(offset) + " inside a gzip stream");
    throw Error(path + ": gzip: corrupt data detected at compressed byte offset " + std::to_string(offset) + ": " +
                (zs.msg ? zs.msg : zError(ret)));
  }
  out.resize(produced);
  return out;
}

/// Big-endian uint32 at `p` (IDX sizes are most significant byte first).
std::uint32_t big_endian_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

/// The name of an IDX type byte, for messages (LeCun's list).
std::string type_name(std::uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "not an IDX type";
  }
}

std::string hex(std::uint8_t b) {
  const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

std::string dims_text(const std::vector<std::uint32_t>& dims) {
  std::string s;
  for (auto d : dims) s += (s.empty() ? "" : " x ") + std::to_string(d);
  return dims.empty() ? "a scalar" : s;
}

/// Parses the IDX bytes (already decompressed). `where` names the file in messages.
Array parse(const std::string& where, std::vector<std::uint8_t> bytes) {
  check(bytes.size() >= 4, where + ": " + std::to_string(bytes.size()) + " bytes, too short for the 4-byte IDX magic");
  check(bytes[0] == 0 && bytes[1] == 0, where + ": IDX byte offset 0: bad magic " + hex(bytes[0]) + " " +
                                            hex(bytes[1]) + ", an IDX file starts with two zero bytes");
  check(bytes[2] == 0x08, where + ": IDX byte offset 2: unsupported element type " + hex(bytes[2]) + " (" +
                              type_name(bytes[2]) + "); only 0x08 (unsigned byte) is read");
  const std::size_t ndim = bytes[3];
  const std::size_t header = 4 + 4 * ndim;
  check(bytes.size() >= header, where + ": IDX byte offset 4: header truncated: " + std::to_string(ndim) +
                                    " dimensions need " + std::to_string(4 * ndim) + " bytes of sizes, found " +
                                    std::to_string(bytes.size() - 4));
  Array a;
  std::uint64_t count = 1;
  for (std::size_t i = 0; i < ndim; ++i) {
    a.dims.push_back(big_endian_u32(bytes.data() + 4 + 4 * i));
    const std::uint64_t d = a.dims.back();
    check(d == 0 || count <= std::numeric_limits<std::uint64_t>::max() / d,
          where + ": IDX byte offset " + std::to_string(4 + 4 * i) + ": the sizes multiply to more than 2^64 elements");
    count *= d;
  }
  const std::uint64_t available = bytes.size() - header;
  check(available >= count, where + ": IDX byte offset " + std::to_string(bytes.size()) + ": the data ends after " +
                                std::to_string(available) + " bytes, but sizes " + dims_text(a.dims) + " need " +
                                std::to_string(count));
  check(available == count, where + ": IDX byte offset " + std::to_string(header + count) + ": " +
                                std::to_string(available - count) + " unexpected bytes after the " +
                                std::to_string(count) + " data bytes of sizes " + dims_text(a.dims));
  // Drop the header in place rather than copy the (possibly 47 MB) data.
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  a.data = std::move(bytes);
  return a;
}

}  // namespace

Array read(const std::string& path) {
  auto bytes = read_bytes(path);
  if (is_gzip(bytes)) {
    std::vector<std::uint8_t> inflated;
    try {
      inflated = gunzip(path, bytes);
    } catch (const std::bad_alloc&) {
      throw Error(path + ": gzip: not enough memory to decompress it");
    }
    return parse(path + " (decompressed)", inflated);
  }
  return parse(path, std::move(bytes));
}

}  // namespace hkt::data::idx

namespace hkt::data::fashion_mnist {

namespace {

namespace fs = std::filesystem;

/// An images file and its labels file, read and checked against each other.
struct Checked {
  idx::Array images, labels;
  std::int64_t count = 0;
};

Checked read_checked(const std::string& images_path, const std::string& labels_path) {
  Checked c{idx::read(images_path), idx::read(labels_path), 0};
  const auto& d = c.images.dims;
  check(d.size() == 3 && d[1] == kSide && d[2] == kSide,
        images_path + ": expected images of sizes N x 28 x 28, found " + std::to_string(d.size()) + " dimension(s)" +
            (d.size() == 3 ? " (N x " + std::to_string(d[1]) + " x " + std::to_string(d[2]) + ")" : std::string()));
  check(c.labels.dims.size() == 1, labels_path + ": expected a 1-dimensional labels array, found " +
                                       std::to_string(c.labels.dims.size()) + " dimensions");
  check(c.labels.dims[0] == d[0], labels_path + ": " + std::to_string(c.labels.dims[0]) + " labels, but " +
                                      images_path + " holds " + std::to_string(d[0]) + " images");
  check(d[0] > 0, images_path + ": the file holds no images");
  c.count = d[0];
  // Plain ifs, not check(): check() would build the message for every label.
  for (std::size_t i = 0; i < c.labels.data.size(); ++i)
    if (c.labels.data[i] >= kNumClasses)
      throw Error(labels_path + ": label " + std::to_string(i) + " (IDX byte offset " + std::to_string(8 + i) +
                  ") is " + std::to_string(c.labels.data[i]) + ", not in 0-9");
  return c;
}

/// Images [begin, end) of `c` as a dataset named "fashion-mnist".
Dataset make_dataset(const Checked& c, std::int64_t begin, std::int64_t end, const std::string& split) {
  Dataset d;
  d.name = "fashion-mnist";
  d.split = split;
  d.max_len = kPixels;
  d.vocab_size = 256;
  d.pad_token = 0;
  d.num_classes = kNumClasses;
  d.class_names = class_names();
  for (int v = 0; v < 256; ++v) d.vocabulary.push_back(std::to_string(v));
  d.tokens.reserve(static_cast<std::size_t>((end - begin) * kPixels));
  d.labels.reserve(static_cast<std::size_t>(end - begin));
  std::vector<std::uint16_t> tokens(static_cast<std::size_t>(kPixels));
  for (std::int64_t i = begin; i < end; ++i) {
    const std::uint8_t* pixels = c.images.data.data() + i * kPixels;  // row-major 28 x 28
    std::copy(pixels, pixels + kPixels, tokens.begin());
    d.add_tokens(tokens, c.labels.data[static_cast<std::size_t>(i)]);
  }
  return d;
}

/// `dir/base.gz` if it exists, else `dir/base`, else "" (the caller reports it missing).
std::string find_file(const std::string& dir, const std::string& base) {
  std::error_code ec;
  for (const auto& name : {base + ".gz", base}) {
    const auto path = fs::path(dir) / name;
    if (fs::is_regular_file(path, ec)) return path.string();
  }
  return "";
}

}  // namespace

std::string default_dir() { return "/usr/share/datasets/fashion-mnist"; }

const std::vector<std::string>& class_names() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

Dataset read(const std::string& images_path, const std::string& labels_path, const std::string& split) {
  const Checked c = read_checked(images_path, labels_path);
  return make_dataset(c, 0, c.count, split);
}

Splits read_folder(const std::string& dir, std::int64_t validation_size) {
  const std::vector<std::string> bases{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                       "t10k-labels-idx1-ubyte"};
  std::vector<std::string> paths;
  std::string missing;  // every missing file at once
  for (const auto& base : bases) {
    paths.push_back(find_file(dir, base));
    if (paths.back().empty()) missing += (missing.empty() ? "" : ", ") + base + "[.gz]";
  }
  check(missing.empty(), dir + ": missing Fashion-MNIST file(s): " + missing);

  const Checked train = read_checked(paths[0], paths[1]);
  check(validation_size >= 0 && validation_size < train.count,
        dir + ": validation size " + std::to_string(validation_size) + " must be in [0, " +
            std::to_string(train.count) + ") (the training file holds " + std::to_string(train.count) + " images)");
  const std::int64_t first_val = train.count - validation_size;
  Splits s;
  s.train = make_dataset(train, 0, first_val, "train");
  s.val = make_dataset(train, first_val, train.count, "val");
  s.test = read(paths[2], paths[3], "test");
  return s;
}

}  // namespace hkt::data::fashion_mnist
