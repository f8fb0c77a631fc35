// dataset.h: a dataset in memory, and the loader that turns it into batches.
//
// A Dataset is a list of examples, each a sequence of integer tokens (ListOps, IMDB
// bytes, gray CIFAR-10, Fashion-MNIST pixels) or of real-valued feature vectors (the
// "rgb" CIFAR-10 mode: 3 features a step), plus one class label each. Storage is compact:
// tokens as uint16 (every vocabulary here has at most 65,536 symbols), features as the
// original bytes (value v means v / 255), all examples concatenated with offsets.
// Formats, conventions and traps: docs/datasets.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor.h"

namespace hkt::data {

struct Dataset {
  std::string name;               ///< e.g. "listops", "cifar10-gray", "imdb-bytes", "fashion-mnist"
  std::string split;              ///< "train", "val" or "test"
  std::int64_t max_len = 0;       ///< T: no example is longer; batches pad to it
  std::int64_t vocab_size = 0;    ///< tokens lie in [0, vocab_size); 0 in feature mode
  std::int64_t pad_token = 0;     ///< the token used for right padding (token mode)
  std::int64_t num_features = 0;  ///< > 0: feature mode with this many values a step
  std::int64_t num_classes = 0;
  std::vector<std::string> class_names;  ///< num_classes names
  std::vector<std::string> vocabulary;   ///< token id -> printable symbol (may be empty)

  std::vector<std::uint16_t> tokens;        ///< token mode: every example's tokens, concatenated
  std::vector<std::uint8_t> feature_bytes;  ///< feature mode: num_features bytes a step, concatenated
  std::vector<std::int64_t> offsets{0};     ///< example i spans steps offsets[i] .. offsets[i+1]-1
  std::vector<std::int32_t> labels;         ///< one per example, in [0, num_classes)

  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
  std::int64_t length(std::int64_t i) const {
    return offsets[static_cast<std::size_t>(i + 1)] - offsets[static_cast<std::size_t>(i)];
  }
  bool feature_mode() const { return num_features > 0; }

  /// Appends one token-mode example; throws hkt::Error if a token is outside the
  /// vocabulary, the label outside [0, num_classes), or the length above max_len.
  void add_tokens(const std::vector<std::uint16_t>& example, std::int32_t label);
  /// Appends one feature-mode example of steps * num_features bytes.
  void add_features(const std::vector<std::uint8_t>& example, std::int32_t label);

  /// The examples at `indices`, in that order, as a new dataset named `split`.
  Dataset subset(const std::vector<std::int64_t>& indices, const std::string& split) const;

  /// Fraction of the most frequent label: the accuracy of a constant predictor.
  double chance_level() const;
  /// Number of examples of each label.
  std::vector<std::int64_t> label_histogram() const;
};

/// One batch, right-padded (shapes for B examples padded to length T):
///   tokens   int64 [B, T] (token mode; pad_token after each example's end)
///   features float32 or float64 [B, T, F] (feature mode; zeros after the end)
///   mask     int64 [B, T], 1 on real steps, 0 on padding (from lengths, never from values)
///   lengths  int64 [B]
///   labels   int64 [B]
struct Batch {
  Tensor tokens, features, mask, lengths, labels;
  std::vector<std::int64_t> indices;  ///< the examples in the batch, as dataset indices
};

/// Batches over a dataset. With shuffle, epoch e visits the examples in a permutation
/// drawn from Philox(seed) for that epoch (the same seed and epoch give the same order on
/// every machine); without, in stored order. Every example is used exactly once per
/// epoch: the last batch is smaller when the size is not a multiple of batch_size.
class Loader {
 public:
  /// pad_to_longest: pad each batch to its longest example instead of max_len.
  /// Throws hkt::Error for batch_size < 1 or an empty dataset.
  Loader(const Dataset& dataset, std::int64_t batch_size, bool shuffle, std::uint64_t seed, bool pad_to_longest = false,
         DType feature_dtype = DType::Float32);

  std::int64_t num_batches() const;
  /// Batch b (0 <= b < num_batches()) of epoch `epoch`. Not thread-safe (it caches the
  /// current epoch's order).
  Batch batch(std::int64_t epoch, std::int64_t b) const;
  /// The order of epoch `epoch` (a permutation of 0..size-1).
  std::vector<std::int64_t> order(std::int64_t epoch) const;

 private:
  const Dataset& dataset_;
  std::int64_t batch_size_;
  bool shuffle_, pad_to_longest_;
  std::uint64_t seed_;
  DType feature_dtype_;
  mutable std::int64_t cached_epoch_ = -1;
  mutable std::vector<std::int64_t> cached_order_;
};

/// A seeded permutation of 0..n-1 (Fisher-Yates with Philox uniforms keyed by seed and
/// `stream`), identical on every machine.
std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed, std::uint64_t stream);

/// The folder with the project's real data: $HKT_DATA_DIR, else "../shared/data"
/// (relative to the working directory).
std::string data_dir();

}  // namespace hkt::data
