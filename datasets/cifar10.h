// cifar10.h: sequential CIFAR-10 from the official binary files (cifar-10-batches-bin/).
//
// Format (docs/datasets.md, "Sequential CIFAR-10"): a file is a whole number
// of 3073-byte records; a record is one label byte (0-9) followed by the 1024 red, the
// 1024 green and the 1024 blue bytes of a 32x32 image, each plane row-major (planar, not
// interleaved). The official files hold 10,000 records each.
//
// Two ways to turn an image into a sequence, both 1024 steps long in row-major pixel
// order:
//   Gray: one token per pixel, the LRA gray value 0..255 (vocabulary 256).
//   Rgb:  one step of 3 features per pixel, the R, G and B bytes (the loader divides by
//         255).
// A black pixel is a real step like any other: masks come from lengths, never values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset.h"

namespace hkt::data::cifar10 {

inline constexpr std::int64_t kSide = 32;                      ///< images are 32 x 32
inline constexpr std::int64_t kPixels = kSide * kSide;         ///< 1024 steps a sequence
inline constexpr std::int64_t kRecordBytes = 1 + 3 * kPixels;  ///< 3073: label + R, G, B planes
inline constexpr std::int64_t kNumClasses = 10;
inline constexpr std::int64_t kDefaultValidationSize = 5000;  ///< datasets.md: the last 5000

/// How an image becomes a sequence (see the top of this file).
enum class Mode { Gray, Rgb };

/// The 10 class names in label order: airplane, automobile, bird, cat, deer, dog, frog,
/// horse, ship, truck (datasets.md).
const std::vector<std::string>& class_names();

/// The LRA gray value of one pixel (datasets.md):
///   trunc(255.5 * (0.2989 R + 0.5870 G + 0.1140 B) / 255)
/// evaluated in float32 in the order written (each product and each sum rounded to
/// float32, no fused multiply-add), then truncated toward zero. Always in 0..255.
/// Test vectors: (255,255,255)->255, (0,255,0)->149, (255,0,0)->76, (0,0,255)->29,
/// (128,128,128)->128, (1,1,1)->1, (200,100,50)->124. For 143 of the 2^24 colours the
/// value lies so close to an integer that a float64 evaluation truncates to one less or
/// one more (e.g. (0,122,186): float64 92.999996 -> 92, float32 -> 93). TensorFlow's
/// rgb_to_grayscale, which LRA calls, divides by 255 before weighting, an order that can
/// also differ by one on such colours; datasets.md fixes the order used here.
std::uint8_t gray(std::uint8_t r, std::uint8_t g, std::uint8_t b);

/// Reads one binary file of any whole number (at least one) of 3073-byte records, every
/// record in file order, into a dataset named "cifar10-gray" or "cifar10-rgb" with split
/// `split`, max_len 1024, 10 classes (class_names()), pad_token 0.
///   Gray: tokens uint16 in 0..255, 1024 per image, vocab_size 256, vocabulary "0".."255".
///   Rgb:  feature_bytes, 1024 steps x 3 (R, G, B of the pixel) per image, num_features 3,
///         vocab_size 0.
/// Throws hkt::Error naming the file when it cannot be read, is empty, has a size that is
/// not a multiple of 3073 (naming the size and the remainder), or when a label byte is
/// above 9 (naming the record number and its byte offset).
Dataset read_file(const std::string& path, Mode mode, const std::string& split);

/// The three splits of the official folder.
struct Splits {
  Dataset train, val, test;
};

/// Reads cifar-10-batches-bin/ (`dir`): data_batch_1.bin .. data_batch_5.bin in that
/// order form the training images, of which the last `validation_size` (default 5000,
/// datasets.md) are the "val" split and the rest the "train" split; test_batch.bin is the
/// "test" split, every image of it. With the official files: 45,000 / 5,000 / 10,000.
/// Throws hkt::Error naming every missing file at once, for any error of read_file, and
/// for a validation_size that is negative or leaves no training image.
Splits read_folder(const std::string& dir, Mode mode, std::int64_t validation_size = kDefaultValidationSize);

}  // namespace hkt::data::cifar10
