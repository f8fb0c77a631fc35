#include "dataset.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "error.h"
#include "random.h"

namespace hkt::data {

void Dataset::add_tokens(const std::vector<std::uint16_t>& example, std::int32_t label) {
  check(!feature_mode(), name + ": add_tokens on a feature-mode dataset");
  const auto len = static_cast<std::int64_t>(example.size());
  check(max_len <= 0 || len <= max_len, name + ": example " + std::to_string(size()) + " has " + std::to_string(len) +
                                            " tokens, more than max_len " + std::to_string(max_len));
  // Plain ifs, not check(): check() builds its message before testing, once per token.
  for (auto t : example)
    if (t >= vocab_size)
      throw Error(name + ": token " + std::to_string(t) + " of example " + std::to_string(size()) +
                  " is outside the vocabulary of " + std::to_string(vocab_size));
  if (label < 0 || label >= num_classes)
    throw Error(name + ": label " + std::to_string(label) + " of example " + std::to_string(size()) +
                " is outside [0, " + std::to_string(num_classes) + ")");
  tokens.insert(tokens.end(), example.begin(), example.end());
  offsets.push_back(offsets.back() + len);
  labels.push_back(label);
}

void Dataset::add_features(const std::vector<std::uint8_t>& example, std::int32_t label) {
  check(feature_mode(), name + ": add_features on a token-mode dataset");
  check(static_cast<std::int64_t>(example.size()) % num_features == 0,
        name + ": example " + std::to_string(size()) + " is not a whole number of " + std::to_string(num_features) +
            "-value steps");
  const auto len = static_cast<std::int64_t>(example.size()) / num_features;
  check(max_len <= 0 || len <= max_len, name + ": example " + std::to_string(size()) + " has " + std::to_string(len) +
                                            " steps, more than max_len " + std::to_string(max_len));
  check(label >= 0 && label < num_classes,
        name + ": label " + std::to_string(label) + " is outside [0, " + std::to_string(num_classes) + ")");
  feature_bytes.insert(feature_bytes.end(), example.begin(), example.end());
  offsets.push_back(offsets.back() + len);
  labels.push_back(label);
}

Dataset Dataset::subset(const std::vector<std::int64_t>& indices, const std::string& new_split) const {
  // Copy the description only; the examples are appended below (copying *this whole and
  // clearing it would first duplicate every token).
  Dataset out;
  out.name = name;
  out.split = new_split;
  out.max_len = max_len;
  out.vocab_size = vocab_size;
  out.pad_token = pad_token;
  out.num_features = num_features;
  out.num_classes = num_classes;
  out.class_names = class_names;
  out.vocabulary = vocabulary;
  for (auto i : indices) {
    check(i >= 0 && i < size(),
          name + ": subset index " + std::to_string(i) + " is outside [0, " + std::to_string(size()) + ")");
    const auto a = static_cast<std::size_t>(offsets[static_cast<std::size_t>(i)]),
               b = static_cast<std::size_t>(offsets[static_cast<std::size_t>(i + 1)]);
    if (feature_mode())
      out.feature_bytes.insert(
          out.feature_bytes.end(),
          feature_bytes.begin() + static_cast<std::ptrdiff_t>(a * static_cast<std::size_t>(num_features)),
          feature_bytes.begin() + static_cast<std::ptrdiff_t>(b * static_cast<std::size_t>(num_features)));
    else
      out.tokens.insert(out.tokens.end(), tokens.begin() + static_cast<std::ptrdiff_t>(a),
                        tokens.begin() + static_cast<std::ptrdiff_t>(b));
    out.offsets.push_back(out.offsets.back() + static_cast<std::int64_t>(b - a));
    out.labels.push_back(labels[static_cast<std::size_t>(i)]);
  }
  return out;
}

std::vector<std::int64_t> Dataset::label_histogram() const {
  std::vector<std::int64_t> h(static_cast<std::size_t>(num_classes), 0);
  for (auto y : labels) ++h[static_cast<std::size_t>(y)];
  return h;
}

double Dataset::chance_level() const {
  if (labels.empty()) return 0.0;
  const auto h = label_histogram();
  return static_cast<double>(*std::max_element(h.begin(), h.end())) / static_cast<double>(size());
}

std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed, std::uint64_t stream) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  // Fisher-Yates from the end: swap i with a uniform j in [0, i]. Counter i of a Philox
  // stream keyed by (seed, stream) supplies j, so the order is machine independent.
  for (std::int64_t i = n - 1; i > 0; --i) {
    const Philox4x32 block(static_cast<std::uint32_t>(i),
                           static_cast<std::uint32_t>(static_cast<std::uint64_t>(i) >> 32),
                           static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32),
                           static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
    const auto j = static_cast<std::int64_t>(uniform53(block.out[0], block.out[1]) * static_cast<double>(i + 1));
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(std::min(j, i))]);
  }
  return p;
}

Loader::Loader(const Dataset& dataset, std::int64_t batch_size, bool shuffle, std::uint64_t seed, bool pad_to_longest,
               DType feature_dtype)
    : dataset_(dataset),
      batch_size_(batch_size),
      shuffle_(shuffle),
      pad_to_longest_(pad_to_longest),
      seed_(seed),
      feature_dtype_(feature_dtype) {
  check(batch_size >= 1, "loader: batch_size must be >= 1, got " + std::to_string(batch_size));
  check(dataset.size() > 0, "loader: dataset " + dataset.name + "/" + dataset.split + " is empty");
  check(is_floating(feature_dtype), "loader: feature dtype must be float32 or float64");
}

std::int64_t Loader::num_batches() const { return (dataset_.size() + batch_size_ - 1) / batch_size_; }

std::vector<std::int64_t> Loader::order(std::int64_t epoch) const {
  if (shuffle_) return permutation(dataset_.size(), seed_, static_cast<std::uint64_t>(epoch));
  std::vector<std::int64_t> p(static_cast<std::size_t>(dataset_.size()));
  for (std::int64_t i = 0; i < dataset_.size(); ++i) p[static_cast<std::size_t>(i)] = i;
  return p;
}

Batch Loader::batch(std::int64_t epoch, std::int64_t b) const {
  check(b >= 0 && b < num_batches(),
        "loader: batch " + std::to_string(b) + " is outside [0, " + std::to_string(num_batches()) + ")");
  if (cached_epoch_ != epoch) {  // one permutation per epoch, not per batch
    cached_order_ = order(epoch);
    cached_epoch_ = epoch;
  }
  const auto& ord = cached_order_;
  Batch out;
  const std::int64_t first = b * batch_size_, last = std::min(dataset_.size(), first + batch_size_);
  out.indices.assign(ord.begin() + first, ord.begin() + last);
  const auto B = static_cast<std::int64_t>(out.indices.size());
  std::int64_t T = dataset_.max_len;
  if (pad_to_longest_ || T <= 0) {
    T = 0;
    for (auto i : out.indices) T = std::max(T, dataset_.length(i));
  }
  std::vector<std::int64_t> mask(static_cast<std::size_t>(B * T), 0), lengths, labels;
  for (std::int64_t r = 0; r < B; ++r) {
    const std::int64_t i = out.indices[static_cast<std::size_t>(r)], len = dataset_.length(i);
    for (std::int64_t t = 0; t < len; ++t) mask[static_cast<std::size_t>(r * T + t)] = 1;
    lengths.push_back(len);
    labels.push_back(dataset_.labels[static_cast<std::size_t>(i)]);
  }
  out.mask = Tensor::from_indices(mask, {B, T});
  out.lengths = Tensor::from_indices(lengths, {B});
  out.labels = Tensor::from_indices(labels, {B});
  if (dataset_.feature_mode()) {
    const std::int64_t F = dataset_.num_features;
    std::vector<double> f(static_cast<std::size_t>(B * T * F), 0.0);
    for (std::int64_t r = 0; r < B; ++r) {
      const std::int64_t i = out.indices[static_cast<std::size_t>(r)];
      const auto start = static_cast<std::size_t>(dataset_.offsets[static_cast<std::size_t>(i)] * F);
      for (std::int64_t s = 0; s < dataset_.length(i) * F; ++s)
        f[static_cast<std::size_t>(r * T * F + s)] =
            dataset_.feature_bytes[start + static_cast<std::size_t>(s)] / 255.0;
    }
    out.features = Tensor::from_vector(f, {B, T, F}, feature_dtype_);
  } else {
    std::vector<std::int64_t> tok(static_cast<std::size_t>(B * T), dataset_.pad_token);
    for (std::int64_t r = 0; r < B; ++r) {
      const std::int64_t i = out.indices[static_cast<std::size_t>(r)];
      const auto start = static_cast<std::size_t>(dataset_.offsets[static_cast<std::size_t>(i)]);
      for (std::int64_t t = 0; t < dataset_.length(i); ++t)
        tok[static_cast<std::size_t>(r * T + t)] = dataset_.tokens[start + static_cast<std::size_t>(t)];
    }
    out.tokens = Tensor::from_indices(tok, {B, T});
  }
  return out;
}

std::string data_dir() {
  const char* env = std::getenv("HKT_DATA_DIR");
  return env && *env ? std::string(env) : std::string("../shared/data");
}

}  // namespace hkt::data
