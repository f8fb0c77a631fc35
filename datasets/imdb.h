// imdb.h: IMDB sentiment at the byte level, read from a user-supplied aclImdb folder.
//
// Format and conventions: docs/datasets.md, section "IMDB, byte level".
// The Large Movie Review Dataset (Maas et al., ACL 2011) unpacks to
//   aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt   one review a file
//   aclImdb/{train,test}/urls_{neg,pos}.txt           line n = movie URL of review id n
//   aclImdb/train/unsup/                              unlabelled reviews (ignored here)
// A review becomes the sequence of its raw bytes (never decoded as text), each byte b
// the token b + 1, so the vocabulary has 257 symbols and token 0 is the padding.
//
// Every malformed input (a misnamed file, a rating that contradicts its folder, a
// missing folder, an unreadable file, a urls file too short for the ids) raises
// hkt::Error naming the file (and the line, for urls files) and what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset.h"

namespace hkt::data::imdb {

/// How reviews become tokens and how the validation split is drawn.
struct Options {
  /// T: each review keeps its first max_len bytes (head truncation, the usual IMDB
  /// convention, unlike ListOps where cutting would change the label). Must be >= 1.
  std::int64_t max_len = 1024;
  /// true: replace each "<br />" (the literal HTML line break in aclImdb) by one space.
  /// The default keeps the 6 bytes, as byte-level models in the literature do.
  bool replace_br = false;
  /// Fraction of the training reviews moved to validation, in [0, 1). Validation is
  /// drawn in whole movies, so it ends up slightly above this fraction (see read()).
  double val_fraction = 0.1;
  /// Seed of the permutation that chooses the validation movies (or reviews).
  std::uint64_t seed = 0;
};

/// The token count of the byte vocabulary: pad 0, then byte b as b + 1 for b in 0..255.
inline constexpr std::int64_t kVocabSize = 257;
/// The padding token.
inline constexpr std::int64_t kPadToken = 0;

/// The tokens of one review's raw bytes (datasets.md, "IMDB, byte level"), in this order:
///  1. strip leading and trailing ASCII whitespace (space, \t, \n, \v, \f, \r);
///  2. if options.replace_br, replace each "<br />" by one space (after the strip, so a
///     review ending in "<br />" ends in a space);
///  3. token = byte + 1 for every byte, 0x00 and bytes >= 0x80 included (0x00 -> 1,
///     0xFF -> 256), so no token collides with the pad token 0;
///  4. keep the first options.max_len tokens.
/// Returns between 0 and max_len tokens in [1, 256]; an all-whitespace input gives none.
/// Throws hkt::Error if options.max_len < 1.
std::vector<std::uint16_t> encode(const std::string& bytes, const Options& options);

/// One labelled review file.
struct Review {
  std::int64_t id;   ///< the <id> of <id>_<rating>.txt (0-based; indexes the urls file)
  int rating;        ///< the <rating>: 1..4 in neg/, 7..10 in pos/
  int label;         ///< 0 = neg, 1 = pos
  std::string path;  ///< <aclimdb_dir>/<split>/<neg|pos>/<id>_<rating>.txt
};

/// The labelled reviews of one split ("train" or "test"): every entry of
/// <aclimdb_dir>/<split>/neg and <aclimdb_dir>/<split>/pos. Directory order is not
/// defined by any file system, so the order is fixed here: all neg reviews sorted by
/// numeric id, then all pos reviews sorted by numeric id (so "10_2" comes after "2_4").
/// train/unsup and any file outside neg/ and pos/ are not looked at.
/// Throws hkt::Error, naming the path, when: split is neither "train" nor "test"; the
/// folder aclimdb_dir, <split>, <split>/neg or <split>/pos is missing; neg/ or pos/ holds
/// no reviews; an entry of neg/ or pos/ is not a regular file, or its name is not
/// <id>_<rating>.txt (decimal digits without leading zeros, rating 1..10); a pos rating
/// is below 7 or a neg rating above 4; two files of one folder share an id.
/// Files are listed, not read: read() reports unreadable ones.
std::vector<Review> list_reviews(const std::string& aclimdb_dir, const std::string& split);

/// The three datasets, and where each example came from.
struct Splits {
  Dataset train, val, test;
  /// Messages about choices the reader had to make, e.g. the per-review validation split
  /// used when the urls files are absent. Empty for a complete aclImdb tree.
  std::vector<std::string> warnings;
  /// The review behind each example: train_reviews[i] is the file of train example i
  /// (likewise val and test), so any example can be traced back to its file and movie.
  std::vector<Review> train_reviews, val_reviews, test_reviews;
};

/// Reads an aclImdb folder into train / val / test datasets (datasets.md, "IMDB, byte
/// level"). Each dataset: name "imdb-bytes", split "train" / "val" / "test", token mode,
/// vocab_size 257, pad_token 0, max_len options.max_len, num_classes 2 with class_names
/// {"neg", "pos"}, vocabulary[t] = a printable form of byte t - 1 ("<pad>" for 0, the
/// character for printable ASCII, "\xHH" otherwise); examples are encode() of each file
/// in list_reviews() order (train and val keep that order among themselves). That order
/// is sorted by label, so train with a shuffling Loader (one-label batches otherwise).
///
/// Test comes from test/ only. Validation comes from train/ only and keeps movies
/// disjoint: train/urls_neg.txt and train/urls_pos.txt give each review's movie URL
/// (line n, 0-based, for review id n; a trailing "\r" is dropped; lines past the largest
/// id are allowed, as in a subset of the official files). The movies, numbered in order
/// of first appearance in list_reviews() order, are visited in the order of
/// permutation(movies, seed, stream "IMDB"), and whole movies go to validation until it
/// holds at least round(val_fraction * train reviews). Without both urls files the
/// split falls back to permutation(reviews, seed, ...) by review, and a warning says
/// that train and val may then share movies.
///
/// Throws hkt::Error when: options.max_len < 1 or val_fraction is outside [0, 1);
/// list_reviews() throws; a review file cannot be read, or is empty after stripping
/// whitespace (a zero-length example has no tokens to pool); only one of the two urls
/// files exists; a urls file has fewer lines than a review id needs, or an empty line
/// for one; validation would leave no training review.
Splits read(const std::string& aclimdb_dir, const Options& options);

}  // namespace hkt::data::imdb
