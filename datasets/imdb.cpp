// imdb.cpp: the aclImdb reader (see imdb.h and docs/datasets.md, "IMDB,
// byte level").
#include "imdb.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include "error.h"

namespace hkt::data::imdb {

namespace fs = std::filesystem;

namespace {

// The Philox stream of the validation permutation ("IMDB" in ASCII), so the IMDB split
// draws numbers no other user of the same seed draws.
constexpr std::uint64_t kValStream = 0x494D4442;

[[noreturn]] void fail(const std::string& message) { throw Error("imdb: " + message); }

// The ASCII whitespace of C's isspace in the "C" locale. Bytes >= 0x80 are never
// whitespace here: the text is not decoded, so a UTF-8 no-break space is content.
bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// A folder that must exist; names it when it does not.
void require_folder(const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) fail("missing folder " + folder.string());
}

// "123" -> 123. Decimal digits only, no sign, no leading zero (except "0" itself) so that
// every id has one spelling, at most 18 digits so the value fits in int64. -1 if not.
std::int64_t parse_decimal(const std::string& s) {
  if (s.empty() || s.size() > 18) return -1;
  if (s.size() > 1 && s[0] == '0') return -1;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

// A review file name "<id>_<rating>.txt" in folder `label_dir` (neg/ or pos/), checked
// against the folder's rating range: neg 1..4, pos 7..10 (aclImdb README).
Review parse_review_name(const fs::path& label_dir, const std::string& name, int label) {
  const std::string path = (label_dir / name).string();
  const std::string ext = ".txt";
  const auto underscore = name.find('_');
  const bool shaped = name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0 &&
                      underscore != std::string::npos;
  const std::string stem = shaped ? name.substr(0, name.size() - ext.size()) : std::string();
  const std::int64_t id = shaped ? parse_decimal(stem.substr(0, underscore)) : -1;
  const std::int64_t rating = shaped ? parse_decimal(stem.substr(underscore + 1)) : -1;
  if (id < 0 || rating < 0) fail(path + ": file name is not <id>_<rating>.txt (decimal numbers without leading zeros)");
  if (rating < 1 || rating > 10) fail(path + ": rating " + std::to_string(rating) + " is outside 1..10");
  if (label == 1 && rating < 7)
    fail(path + ": rating " + std::to_string(rating) + " in pos/ (pos reviews are rated >= 7)");
  if (label == 0 && rating > 4)
    fail(path + ": rating " + std::to_string(rating) + " in neg/ (neg reviews are rated <= 4)");
  return Review{id, static_cast<int>(rating), label, path};
}

// The reviews of one label folder, sorted by numeric id.
std::vector<Review> list_label_folder(const fs::path& label_dir, int label) {
  require_folder(label_dir);
  // Names first, sorted, so that with several bad files the same one is reported on
  // every file system.
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(label_dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) names.push_back(it->path().filename().string());
  if (ec) fail(label_dir.string() + ": cannot list the folder: " + ec.message());
  std::sort(names.begin(), names.end());
  std::vector<Review> reviews;
  for (const auto& name : names) {
    std::error_code type_ec;
    // is_regular_file follows links: a broken link or a sub-folder is refused here.
    if (!fs::is_regular_file(label_dir / name, type_ec)) fail((label_dir / name).string() + ": not a regular file");
    reviews.push_back(parse_review_name(label_dir, name, label));
  }
  if (reviews.empty()) fail(label_dir.string() + ": no reviews in the folder");
  // Stable: two files with one id stay in name order, so the message below is fixed.
  std::stable_sort(reviews.begin(), reviews.end(), [](const Review& a, const Review& b) { return a.id < b.id; });
  for (std::size_t i = 1; i < reviews.size(); ++i)
    if (reviews[i].id == reviews[i - 1].id)
      fail(label_dir.string() + ": two files for review id " + std::to_string(reviews[i].id) + ": " +
           fs::path(reviews[i - 1].path).filename().string() + " and " + fs::path(reviews[i].path).filename().string());
  return reviews;
}

// The whole file as bytes. fread reports what an ifstream hides: a folder opens but
// fails to read (EISDIR), and a short read sets ferror.
std::string read_bytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path + ": cannot open: " + std::strerror(errno));
  std::string bytes;
  char buffer[1 << 14];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, f)) > 0) bytes.append(buffer, got);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) fail(path + ": cannot read: " + std::strerror(err));
  return bytes;
}

// The lines of a urls file: split at "\n", a trailing "\r" dropped, no empty last line
// after a final newline.
std::vector<std::string> read_lines(const std::string& path) {
  const std::string bytes = read_bytes(path);
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < bytes.size()) {
    std::size_t end = bytes.find('\n', start);
    if (end == std::string::npos) end = bytes.size();
    std::string line = bytes.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

// The movie URL of every review (same order as `reviews`), from urls_neg.txt and
// urls_pos.txt in `split_dir`: line n (0-based) of the label's file is review id n.
std::vector<std::string> movie_urls(const fs::path& split_dir, const std::vector<Review>& reviews) {
  const std::string files[2] = {(split_dir / "urls_neg.txt").string(), (split_dir / "urls_pos.txt").string()};
  const std::vector<std::string> lines[2] = {read_lines(files[0]), read_lines(files[1])};
  std::vector<std::string> urls;
  for (const auto& r : reviews) {
    const auto& file = files[r.label];
    const auto& l = lines[r.label];
    const auto line_no = std::to_string(r.id + 1);  // 1-based, as editors count
    if (r.id >= static_cast<std::int64_t>(l.size()))
      fail(file + ": has " + std::to_string(l.size()) + " lines, but " + r.path + " (review id " +
           std::to_string(r.id) + ") needs line " + line_no);
    const auto& url = l[static_cast<std::size_t>(r.id)];
    if (url.empty()) fail(file + ":" + line_no + ": empty movie URL for " + r.path);
    urls.push_back(url);
  }
  return urls;
}

// The reviews of each movie (indices into the url list), movies numbered in order of
// first appearance, so the grouping does not depend on std::map's string order.
std::vector<std::vector<std::int64_t>> group_by_movie(const std::vector<std::string>& urls) {
  std::map<std::string, std::size_t> movie_of_url;
  std::vector<std::vector<std::int64_t>> groups;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    const auto [it, inserted] = movie_of_url.emplace(urls[i], groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(static_cast<std::int64_t>(i));
  }
  return groups;
}

// is_val[i] for each of n reviews: whole groups, in seeded permutation order, until the
// validation count reaches `target`. With one review a group this is a per-review split.
std::vector<bool> choose_validation(const std::vector<std::vector<std::int64_t>>& groups, std::int64_t n,
                                    std::int64_t target, std::uint64_t seed) {
  std::vector<bool> is_val(static_cast<std::size_t>(n), false);
  std::int64_t count = 0;
  for (auto g : permutation(static_cast<std::int64_t>(groups.size()), seed, kValStream)) {
    if (count >= target) break;
    for (auto i : groups[static_cast<std::size_t>(g)]) is_val[static_cast<std::size_t>(i)] = true;
    count += static_cast<std::int64_t>(groups[static_cast<std::size_t>(g)].size());
  }
  return is_val;
}

// "<pad>", then a printable form of each byte: the character itself for printable ASCII,
// "\xHH" for the rest, so a token sequence can be shown without decoding it.
std::vector<std::string> byte_vocabulary() {
  std::vector<std::string> v{"<pad>"};
  for (int b = 0; b < 256; ++b) {
    if (b >= 0x20 && b < 0x7f) {
      v.emplace_back(1, static_cast<char>(b));
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", b);
      v.emplace_back(hex);
    }
  }
  return v;
}

// An empty dataset with every field of the IMDB byte task set.
Dataset empty_dataset(const std::string& split, const Options& options) {
  Dataset d;
  d.name = "imdb-bytes";
  d.split = split;
  d.max_len = options.max_len;
  d.vocab_size = kVocabSize;
  d.pad_token = kPadToken;
  d.num_classes = 2;
  d.class_names = {"neg", "pos"};
  d.vocabulary = byte_vocabulary();
  return d;
}

// Every review read and encoded, in the given order.
Dataset encode_reviews(const std::vector<Review>& reviews, const std::string& split, const Options& options) {
  Dataset d = empty_dataset(split, options);
  for (const auto& r : reviews) {
    const auto tokens = encode(read_bytes(r.path), options);
    // A zero-length example would leave mean pooling nothing to average.
    if (tokens.empty()) fail(r.path + ": the review is empty after stripping whitespace");
    d.add_tokens(tokens, r.label);
  }
  return d;
}

void check_options(const Options& options) {
  if (options.max_len < 1) fail("max_len must be >= 1, got " + std::to_string(options.max_len));
  if (!(options.val_fraction >= 0.0 && options.val_fraction < 1.0))  // also refuses NaN
    fail("val_fraction must be in [0, 1), got " + std::to_string(options.val_fraction));
}

}  // namespace

std::vector<std::uint16_t> encode(const std::string& bytes, const Options& options) {
  if (options.max_len < 1) fail("max_len must be >= 1, got " + std::to_string(options.max_len));
  std::size_t begin = 0, end = bytes.size();
  while (begin < end && is_ascii_space(bytes[begin])) ++begin;
  while (end > begin && is_ascii_space(bytes[end - 1])) --end;
  const std::string br = "<br />";
  const auto max_len = static_cast<std::size_t>(options.max_len);
  std::vector<std::uint16_t> tokens;
  for (std::size_t i = begin; i < end && tokens.size() < max_len;) {
    if (options.replace_br && i + br.size() <= end && bytes.compare(i, br.size(), br) == 0) {
      tokens.push_back(static_cast<std::uint16_t>(' ' + 1));
      i += br.size();
    } else {
      // Through unsigned char: a plain char may be signed, and byte 0xE2 must become 227.
      tokens.push_back(static_cast<std::uint16_t>(static_cast<unsigned char>(bytes[i]) + 1));
      ++i;
    }
  }
  return tokens;
}

std::vector<Review> list_reviews(const std::string& aclimdb_dir, const std::string& split) {
  if (split != "train" && split != "test") fail("split must be \"train\" or \"test\", got \"" + split + "\"");
  const fs::path root(aclimdb_dir);
  require_folder(root);
  require_folder(root / split);
  auto reviews = list_label_folder(root / split / "neg", 0);  // neg first: label 0
  const auto pos = list_label_folder(root / split / "pos", 1);
  reviews.insert(reviews.end(), pos.begin(), pos.end());
  return reviews;
}

Splits read(const std::string& aclimdb_dir, const Options& options) {
  check_options(options);
  const fs::path train_dir = fs::path(aclimdb_dir) / "train";
  const auto train_reviews = list_reviews(aclimdb_dir, "train");
  const auto test_reviews = list_reviews(aclimdb_dir, "test");

  Splits out;
  const Dataset all_train = encode_reviews(train_reviews, "train", options);
  out.test = encode_reviews(test_reviews, "test", options);
  out.test_reviews = test_reviews;

  // Group the training reviews by movie when the urls files allow it; otherwise each
  // review is its own group, which is the per-review fallback.
  const auto n = static_cast<std::int64_t>(train_reviews.size());
  std::error_code ec;
  const bool has_neg = fs::exists(train_dir / "urls_neg.txt", ec), has_pos = fs::exists(train_dir / "urls_pos.txt", ec);
  std::vector<std::vector<std::int64_t>> groups;
  if (has_neg && has_pos) {
    groups = group_by_movie(movie_urls(train_dir, train_reviews));
  } else if (has_neg || has_pos) {
    fail((train_dir / (has_neg ? "urls_pos.txt" : "urls_neg.txt")).string() + ": missing, although " +
         (train_dir / (has_neg ? "urls_neg.txt" : "urls_pos.txt")).string() + " exists");
  } else {
    for (std::int64_t i = 0; i < n; ++i) groups.push_back({i});
    out.warnings.push_back("imdb: " + train_dir.string() +
                           " has no urls_neg.txt / urls_pos.txt: validation was split by review, not by movie, so "
                           "train and val may share movies");
  }

  const auto target = static_cast<std::int64_t>(std::llround(options.val_fraction * static_cast<double>(n)));
  const auto is_val = choose_validation(groups, n, target, options.seed);
  std::vector<std::int64_t> train_idx, val_idx;
  for (std::int64_t i = 0; i < n; ++i) (is_val[static_cast<std::size_t>(i)] ? val_idx : train_idx).push_back(i);
  if (train_idx.empty())
    fail("validation took all " + std::to_string(n) + " training reviews (val_fraction " +
         std::to_string(options.val_fraction) + ", drawn as " + std::to_string(groups.size()) +
         " whole movies, or reviews without urls files); lower val_fraction");

  out.train = all_train.subset(train_idx, "train");
  out.val = all_train.subset(val_idx, "val");
  for (auto i : train_idx) out.train_reviews.push_back(train_reviews[static_cast<std::size_t>(i)]);
  for (auto i : val_idx) out.val_reviews.push_back(train_reviews[static_cast<std::size_t>(i)]);
  return out;
}

}  // namespace hkt::data::imdb
