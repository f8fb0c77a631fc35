// cifar10.cpp: the CIFAR-10 binary reader (format and conventions in cifar10.h and
// docs/datasets.md).
#include "cifar10.h"

#include <filesystem>
#include <fstream>

#include "error.h"
#include "file_bytes.h"

namespace hkt::data::cifar10 {

namespace {

namespace fs = std::filesystem;

/// The whole file as bytes (file_bytes.h).
// The whole data set (60,000 records of 3,073 bytes) is the most one file can hold.
std::vector<std::uint8_t> read_bytes(const std::string& path) {
  return read_file_bytes(path, "a CIFAR-10 binary file", std::uint64_t{60000} * 3073);
}

/// True when `path` is a regular file (a symlink to one counts); never throws.
bool is_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

/// The size of a file in bytes; hkt::Error naming the path when it cannot be found.
std::uintmax_t file_size(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  check(!ec, path + ": cannot read the file size: " + ec.message());
  return size;
}

/// Number of records in a file of `size` bytes: it must be a positive multiple of 3073
/// (a remainder means a truncated or foreign file; we never drop the tail silently).
std::int64_t count_records(const std::string& path, std::uintmax_t size) {
  check(size > 0, path + ": the file is empty, expected 3073-byte CIFAR-10 records");
  const auto record = static_cast<std::uintmax_t>(kRecordBytes);
  check(size % record == 0, path + ": size " + std::to_string(size) + " bytes is not a multiple of the " +
                                std::to_string(kRecordBytes) + "-byte record (" + std::to_string(size / record) +
                                " whole records, remainder " + std::to_string(size % record) + " bytes)");
  return static_cast<std::int64_t>(size / record);
}

/// An empty dataset with the metadata of `mode`.
Dataset empty_dataset(Mode mode, const std::string& split) {
  Dataset d;
  d.name = mode == Mode::Gray ? "cifar10-gray" : "cifar10-rgb";
  d.split = split;
  d.max_len = kPixels;
  d.num_classes = kNumClasses;
  d.class_names = class_names();
  d.pad_token = 0;
  if (mode == Mode::Gray) {
    d.vocab_size = 256;
    for (int v = 0; v < 256; ++v) d.vocabulary.push_back(std::to_string(v));
  } else {
    d.num_features = 3;
  }
  return d;
}

/// Appends record `index` of `bytes` (which starts at byte `index * 3073`) to `d`,
/// checking its label byte first.
void append_record(Dataset& d, const std::string& path, const std::vector<std::uint8_t>& bytes, std::int64_t index,
                   Mode mode) {
  const auto offset = static_cast<std::size_t>(index * kRecordBytes);
  const std::uint8_t label = bytes[offset];
  // A plain if, not check(): check() would build the message for every record.
  if (label >= kNumClasses)
    throw Error(path + ": record " + std::to_string(index) + " (byte offset " + std::to_string(offset) +
                "): label byte " + std::to_string(label) + " is not in 0-9");
  // The three planes of the image: pixel p (row-major) has R at red[p], G at green[p], B at blue[p].
  const std::uint8_t* red = bytes.data() + offset + 1;
  const std::uint8_t* green = red + kPixels;
  const std::uint8_t* blue = green + kPixels;
  if (mode == Mode::Gray) {
    std::vector<std::uint16_t> tokens(static_cast<std::size_t>(kPixels));
    for (std::int64_t p = 0; p < kPixels; ++p) tokens[static_cast<std::size_t>(p)] = gray(red[p], green[p], blue[p]);
    d.add_tokens(tokens, label);
  } else {
    // Interleave the planes: step p is the 3 features (R, G, B) of pixel p.
    std::vector<std::uint8_t> steps(static_cast<std::size_t>(3 * kPixels));
    for (std::int64_t p = 0; p < kPixels; ++p) {
      steps[static_cast<std::size_t>(3 * p + 0)] = red[p];
      steps[static_cast<std::size_t>(3 * p + 1)] = green[p];
      steps[static_cast<std::size_t>(3 * p + 2)] = blue[p];
    }
    d.add_features(steps, label);
  }
}

void reserve(Dataset& d, std::int64_t images) {
  if (d.feature_mode())
    d.feature_bytes.reserve(static_cast<std::size_t>(images * kPixels * 3));
  else
    d.tokens.reserve(static_cast<std::size_t>(images * kPixels));
  d.labels.reserve(static_cast<std::size_t>(images));
  d.offsets.reserve(static_cast<std::size_t>(images + 1));
}

}  // namespace

const std::vector<std::string>& class_names() {
  static const std::vector<std::string> names{"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

std::uint8_t gray(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  // Each intermediate is stored in a volatile float so that every product and sum is
  // rounded to float32 exactly as written: without it the compiler may fuse a multiply
  // and an add into one FMA (-march=native enables FMA), which rounds once instead of
  // twice and changes the truncated result for a few colours near an integer.
  volatile float sum = 0.2989f * static_cast<float>(r);
  volatile float term = 0.5870f * static_cast<float>(g);
  sum = sum + term;
  term = 0.1140f * static_cast<float>(b);
  sum = sum + term;
  volatile float scaled = 255.5f * sum;
  scaled = scaled / 255.0f;
  // The weights sum to 0.9999, so scaled <= 255 * 0.9999 * 255.5 / 255 < 255.5: the
  // truncation always fits a byte.
  return static_cast<std::uint8_t>(scaled);
}

Dataset read_file(const std::string& path, Mode mode, const std::string& split) {
  const auto bytes = read_bytes(path);
  const std::int64_t n = count_records(path, bytes.size());
  Dataset d = empty_dataset(mode, split);
  reserve(d, n);
  for (std::int64_t i = 0; i < n; ++i) append_record(d, path, bytes, i, mode);
  return d;
}

Splits read_folder(const std::string& dir, Mode mode, std::int64_t validation_size) {
  const std::vector<std::string> train_names{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                             "data_batch_4.bin", "data_batch_5.bin"};
  const std::string test_name = "test_batch.bin";

  // Name every missing file at once, so one run tells the user all that is wrong.
  std::string missing;
  for (const auto& name : train_names)
    if (!is_file(fs::path(dir) / name)) missing += (missing.empty() ? "" : ", ") + name;
  if (!is_file(fs::path(dir) / test_name)) missing += (missing.empty() ? "" : ", ") + test_name;
  check(missing.empty(), dir + ": missing CIFAR-10 file(s): " + missing + " (expected cifar-10-batches-bin/)");

  // The split point needs the total count before any image is read: count from sizes.
  std::vector<std::int64_t> counts;
  std::int64_t total = 0;
  for (const auto& name : train_names) {
    const std::string path = (fs::path(dir) / name).string();
    counts.push_back(count_records(path, file_size(path)));
    total += counts.back();
  }
  check(validation_size >= 0 && validation_size < total,
        dir + ": validation size " + std::to_string(validation_size) + " must be in [0, " + std::to_string(total) +
            ") (the training files hold " + std::to_string(total) + " images)");

  // Global training index g < total - validation_size goes to train, the rest to val.
  Splits s{empty_dataset(mode, "train"), empty_dataset(mode, "val"), Dataset{}};
  const std::int64_t first_val = total - validation_size;
  reserve(s.train, first_val);
  reserve(s.val, validation_size);
  std::int64_t g = 0;
  for (std::size_t f = 0; f < train_names.size(); ++f) {
    const std::string path = (fs::path(dir) / train_names[f]).string();
    const auto bytes = read_bytes(path);
    // The file may have changed since we took its size; the counts must still agree.
    check(count_records(path, bytes.size()) == counts[f], path + ": the file changed while it was being read");
    for (std::int64_t i = 0; i < counts[f]; ++i, ++g)
      append_record(g < first_val ? s.train : s.val, path, bytes, i, mode);
  }
  s.test = read_file((fs::path(dir) / test_name).string(), mode, "test");
  return s;
}

}  // namespace hkt::data::cifar10
