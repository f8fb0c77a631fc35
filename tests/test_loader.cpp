// test_loader.cpp: the Dataset container and the batch loader: padding, masks from
// lengths, seeded epoch permutations, every example exactly once.
#include <map>
#include <set>

#include "dataset.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::data;
using namespace hkt::test;

namespace {
// Ten examples: example i has i + 1 tokens, all equal to i (so token 0 appears in a real
// position of example 0), and label i % 3.
Dataset ten_examples() {
  Dataset d;
  d.name = "toy";
  d.split = "train";
  d.max_len = 12;
  d.vocab_size = 20;
  d.pad_token = 0;
  d.num_classes = 3;
  for (int i = 0; i < 10; ++i)
    d.add_tokens(std::vector<std::uint16_t>(static_cast<std::size_t>(i + 1), static_cast<std::uint16_t>(i)), i % 3);
  return d;
}
}  // namespace

TEST_CASE("loader: every example once per epoch with a smaller last batch", "[loader]") {
  const Dataset d = ten_examples();
  for (bool shuffle : {false, true}) {
    Loader loader(d, 4, shuffle, 7);
    REQUIRE(loader.num_batches() == 3);
    for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
      std::multiset<std::int64_t> seen;
      std::vector<std::int64_t> sizes;
      for (std::int64_t b = 0; b < 3; ++b) {
        const Batch batch = loader.batch(epoch, b);
        sizes.push_back(static_cast<std::int64_t>(batch.indices.size()));
        seen.insert(batch.indices.begin(), batch.indices.end());
        CHECK(batch.labels.shape() == Shape{static_cast<std::int64_t>(batch.indices.size())});
      }
      CHECK(sizes == std::vector<std::int64_t>{4, 4, 2});
      CHECK(seen == std::multiset<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    }
  }
  Loader ordered(d, 4, false, 0);
  CHECK(ordered.batch(0, 0).indices == std::vector<std::int64_t>{0, 1, 2, 3});
}

TEST_CASE("loader: padding and masks come from lengths not token values", "[loader]") {
  const Dataset d = ten_examples();
  Loader loader(d, 3, false, 0);
  const Batch b = loader.batch(0, 0);  // examples 0 1 2 with lengths 1 2 3, padded to max_len 12
  CHECK(b.tokens.shape() == Shape{3, 12});
  CHECK(b.lengths.to_vector() == std::vector<double>{1, 2, 3});
  const auto mask = b.mask.to_vector(), tokens = b.tokens.to_vector();
  // Example 0 is the single token 0: equal to the pad token, yet real (mask 1).
  CHECK(mask[0] == 1);
  CHECK(mask[1] == 0);
  CHECK(tokens[0] == 0);
  CHECK(tokens[12] == 1);
  CHECK(tokens[13] == 1);
  CHECK(tokens[14] == 0);  // padding
  CHECK(mask[12 + 1] == 1);
  CHECK(mask[12 + 2] == 0);
  CHECK(b.labels.to_vector() == std::vector<double>{0, 1, 2});
  Loader longest(d, 3, false, 0, /*pad_to_longest=*/true);
  CHECK(longest.batch(0, 0).tokens.shape() == Shape{3, 3});
}

TEST_CASE("loader: shuffled epochs are seeded permutations", "[loader]") {
  const Dataset d = ten_examples();
  Loader a(d, 10, true, 3), b(d, 10, true, 3), c(d, 10, true, 4);
  CHECK(a.batch(0, 0).indices == b.batch(0, 0).indices);
  CHECK(a.batch(1, 0).indices == b.batch(1, 0).indices);
  CHECK(a.batch(0, 0).indices != a.batch(1, 0).indices);
  CHECK(a.batch(0, 0).indices != c.batch(0, 0).indices);
  // All 6 orders of 3 items appear about equally often over 6000 seeds (each count is
  // Binomial(6000, 1/6): mean 1000, sd 28.9; allow 5 sd).
  std::map<std::vector<std::int64_t>, int> counts;
  for (std::uint64_t seed = 0; seed < 6000; ++seed) ++counts[permutation(3, seed, 0)];
  REQUIRE(counts.size() == 6);
  for (const auto& [perm, n] : counts) CHECK(std::abs(n - 1000) < 5 * 28.9);
}

TEST_CASE("loader: feature mode scales bytes to 0..1 and pads with zeros", "[loader]") {
  Dataset d;
  d.name = "rgb";
  d.max_len = 3;
  d.num_features = 3;
  d.num_classes = 2;
  d.add_features({255, 0, 51, 102, 0, 0}, 1);  // two steps
  Loader loader(d, 1, false, 0, false, DType::Float64);
  const Batch b = loader.batch(0, 0);
  CHECK(b.features.shape() == Shape{1, 3, 3});
  require_close(b.features, {1.0, 0.0, 0.2, 0.4, 0.0, 0.0, 0.0, 0.0, 0.0});
  CHECK(b.mask.to_vector() == std::vector<double>{1, 1, 0});
  CHECK_FALSE(b.tokens.defined());
}

TEST_CASE("dataset: histogram and chance level and subsets", "[loader]") {
  const Dataset d = ten_examples();  // labels 0 1 2 0 1 2 0 1 2 0
  CHECK(d.label_histogram() == std::vector<std::int64_t>{4, 3, 3});
  CHECK(d.chance_level() == 0.4);
  const Dataset s = d.subset({9, 2}, "val");
  CHECK(s.split == "val");
  CHECK(s.size() == 2);
  CHECK(s.length(0) == 10);
  CHECK(s.labels == std::vector<std::int32_t>{0, 2});
  CHECK(s.tokens.size() == 13u);
}

TEST_CASE("dataset and loader: bad input names what is wrong", "[loader][errors]") {
  Dataset d = ten_examples();
  require_error([&] { d.add_tokens({25}, 0); }, "toy: token 25 of example 10 is outside the vocabulary of 20");
  require_error([&] { d.add_tokens({1}, 3); }, "toy: label 3 of example 10 is outside [0, 3)");
  require_error([&] { d.add_tokens(std::vector<std::uint16_t>(13, 1), 0); },
                "toy: example 10 has 13 tokens, more than max_len 12");
  require_error([&] { Loader(d, 0, false, 0); }, "loader: batch_size must be >= 1, got 0");
  Dataset empty;
  empty.name = "none";
  empty.split = "test";
  require_error([&] { Loader(empty, 4, false, 0); }, "loader: dataset none/test is empty");
  Loader loader(d, 4, false, 0);
  require_error([&] { loader.batch(0, 3); }, "loader: batch 3 is outside [0, 3)");
}
