// idx.h: the IDX array format (raw or gzipped) and Fashion-MNIST on top of it.
//
// IDX (docs/datasets.md, "Fashion-MNIST"; LeCun's MNIST page): two zero
// bytes, a type byte (0x08 = unsigned byte, the only type we read), a byte with the
// number of dimensions n, then n big-endian uint32 sizes, then the prod(sizes) elements in
// C order. A file whose first two bytes are 1f 8b is gzip and is decompressed with zlib
// first (in memory; every byte offset in an error message then counts in the
// decompressed stream, unless it says "compressed").
//
// Fashion-MNIST (Debian package dataset-fashion-mnist): train-/t10k-images-idx3-ubyte.gz
// (uint8 [N, 28, 28]) and train-/t10k-labels-idx1-ubyte.gz (uint8 [N], 0-9), N = 60000 /
// 10000. As a sequence task an image is its 784 pixels in row-major order, each a token
// 0..255 (vocabulary 256); a black pixel (0) is a real token, never padding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset.h"

namespace hkt::data::idx {

/// An IDX array of unsigned bytes: `dims` are the sizes (outermost first), `data` holds
/// prod(dims) bytes in C order (prod of no sizes is 1).
struct Array {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

/// Reads an IDX file, gzipped (detected by the magic bytes 1f 8b, decompressed with zlib;
/// several gzip members are concatenated as gzip itself does) or raw.
/// Throws hkt::Error naming the file and the byte offset for: a file that cannot be read;
/// corrupt or truncated gzip (with zlib's message and the compressed offset); more than
/// 4 GiB of decompressed data; a header shorter than 4 + 4 n bytes; a magic whose first
/// two bytes are not zero; a type other than 0x08 (the other IDX types are named);
/// element counts whose product overflows; fewer or more data bytes than prod(sizes).
Array read(const std::string& path);

}  // namespace hkt::data::idx

namespace hkt::data::fashion_mnist {

inline constexpr std::int64_t kSide = 28;               ///< images are 28 x 28
inline constexpr std::int64_t kPixels = kSide * kSide;  ///< 784 tokens a sequence
inline constexpr std::int64_t kNumClasses = 10;
/// Validation images taken from the end of the training file (the same rule as CIFAR-10).
inline constexpr std::int64_t kDefaultValidationSize = 5000;

/// "/usr/share/datasets/fashion-mnist", where the Debian package dataset-fashion-mnist
/// installs the four .gz files.
std::string default_dir();

/// The 10 class names in label order (datasets.md): T-shirt/top, Trouser, Pullover,
/// Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
const std::vector<std::string>& class_names();

/// Reads one images file (IDX uint8 [N, 28, 28]) and its labels file (IDX uint8 [N],
/// each 0-9) into a dataset named "fashion-mnist" with split `split`: N examples of 784
/// tokens (the pixels, row-major, uint16 0..255), vocab_size 256, vocabulary "0".."255",
/// max_len 784, pad_token 0, 10 classes (class_names()).
/// Throws hkt::Error naming the file for any error of idx::read, images that are not
/// [N, 28, 28], labels that are not [N] (the two counts must agree), a label above 9
/// (naming its index and byte offset), or N = 0.
Dataset read(const std::string& images_path, const std::string& labels_path, const std::string& split);

/// The three splits of a Fashion-MNIST folder.
struct Splits {
  Dataset train, val, test;
};

/// Reads `dir` holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
/// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each with ".gz" (preferred) or
/// without. Fashion-MNIST has no official validation set; ours is the last
/// `validation_size` (default 5000) images of the training file and "train" the rest,
/// in file order (the rule datasets.md gives for CIFAR-10; the file order is already a
/// random one, so the 5000 are a fair sample). "test" is every t10k image. With the real
/// files: 55,000 / 5,000 / 10,000.
/// Throws hkt::Error naming every missing file at once, for any error of read, and for a
/// validation_size that is negative or leaves no training image.
Splits read_folder(const std::string& dir, std::int64_t validation_size = kDefaultValidationSize);

}  // namespace hkt::data::fashion_mnist
