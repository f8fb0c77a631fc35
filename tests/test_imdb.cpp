// test_imdb.cpp: the aclImdb byte-level reader (datasets/imdb.h) on hand-written bytes,
// on the hand-made tree in tests/data/imdb/aclImdb (see its README.md for the movies),
// on malformed trees written to a temporary folder, and on the real 4,000-review subset
// in ../shared/data/imdb (counts from ../shared/data/imdb/README.md).
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

#include "imdb.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::data;
using namespace hkt::test;
namespace fs = std::filesystem;

namespace {

// The tokenisation of docs/datasets.md written out independently: byte b -> b + 1.
std::vector<std::uint16_t> plus_one(const std::string& bytes) {
  std::vector<std::uint16_t> t;
  for (unsigned char c : bytes) t.push_back(static_cast<std::uint16_t>(c + 1));
  return t;
}

imdb::Options options(std::int64_t max_len = 1024, bool replace_br = false, double val_fraction = 0.1,
                      std::uint64_t seed = 0) {
  imdb::Options o;
  o.max_len = max_len;
  o.replace_br = replace_br;
  o.val_fraction = val_fraction;
  o.seed = seed;
  return o;
}

std::string fixture_tree() { return fixture_dir() + "/imdb/aclImdb"; }

// A copy of the fixture tree in a fresh temporary folder, removed at the end of the test,
// for the malformed variants.
struct TempTree {
  fs::path root;
  TempTree() {
    static int counter = 0;
    root =
        fs::temp_directory_path() / ("hkt_test_imdb_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(root);
    fs::copy(fixture_tree(), root, fs::copy_options::recursive);
  }
  ~TempTree() {
    std::error_code ec;
    fs::permissions(root / "train/pos/3_10.txt", fs::perms::owner_all, ec);  // in case a test removed them
    fs::remove_all(root, ec);
  }
  std::string dir() const { return root.string(); }
  void write(const std::string& rel, const std::string& bytes) const {
    std::ofstream(root / rel, std::ios::binary) << bytes;
  }
};

// The content of a file, read here with an ifstream (not with the reader's code).
std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The lines of a urls file, read independently of the reader.
std::vector<std::string> url_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  return lines;
}

// The tokens of example i of a dataset.
std::vector<std::uint16_t> example(const Dataset& d, std::int64_t i) {
  const auto a = d.offsets[static_cast<std::size_t>(i)], b = d.offsets[static_cast<std::size_t>(i + 1)];
  return {d.tokens.begin() + a, d.tokens.begin() + b};
}

// (label, id) of every review, to compare sets of reviews.
std::set<std::pair<int, std::int64_t>> keys(const std::vector<imdb::Review>& reviews) {
  std::set<std::pair<int, std::int64_t>> s;
  for (const auto& r : reviews) s.insert({r.label, r.id});
  return s;
}

// The fixture's movies, from tests/data/imdb/README.md: (label, id) -> movie.
const std::map<std::pair<int, std::int64_t>, char> kFixtureMovie = {{{0, 0}, 'A'}, {{1, 0}, 'A'}, {{0, 1}, 'B'},
                                                                    {{0, 2}, 'B'}, {{1, 1}, 'B'}, {{0, 10}, 'C'},
                                                                    {{1, 3}, 'D'}, {{1, 12}, 'D'}};

std::set<char> fixture_movies(const std::vector<imdb::Review>& reviews) {
  std::set<char> s;
  for (const auto& r : reviews) s.insert(kFixtureMovie.at({r.label, r.id}));
  return s;
}

}  // namespace

TEST_CASE("imdb: encode maps each byte b to b + 1", "[imdb]") {
  // 'A' = 65 -> 66, NUL -> 1, 0x7F -> 128, 0x80 -> 129, 0xE9 -> 234, 0xFF -> 256.
  const std::string bytes("A\0\x7f\x80\xe9\xff", 6);
  CHECK(imdb::encode(bytes, options()) == std::vector<std::uint16_t>{66, 1, 128, 129, 234, 256});
  // UTF-8 is not decoded: "é" is the two bytes C3 A9, two tokens 196 170.
  CHECK(imdb::encode("Caf\xc3\xa9", options()) == std::vector<std::uint16_t>{68, 98, 103, 196, 170});
  CHECK(imdb::encode("", options()).empty());
}

TEST_CASE("imdb: encode strips leading and trailing ASCII whitespace only", "[imdb]") {
  CHECK(imdb::encode(" \t\n\v\f\rok \r\n", options()) == std::vector<std::uint16_t>{112, 108});  // o 111, k 107
  // Inner whitespace stays: "a b" -> 98 33 99.
  CHECK(imdb::encode("  a b  ", options()) == std::vector<std::uint16_t>{98, 33, 99});
  // An all-whitespace input has no tokens.
  CHECK(imdb::encode(" \n\t ", options()).empty());
  // NUL and a UTF-8 no-break space (C2 A0) are content, not whitespace.
  CHECK(imdb::encode(std::string("\0x", 2), options()) == std::vector<std::uint16_t>{1, 121});
  CHECK(imdb::encode("\xc2\xa0x\xc2\xa0", options()) == std::vector<std::uint16_t>{195, 161, 121, 195, 161});
}

TEST_CASE("imdb: encode keeps or replaces br tags", "[imdb]") {
  // "<br />" = 3C 62 72 20 2F 3E -> 61 99 115 33 48 63.
  CHECK(imdb::encode("a<br />b", options()) == std::vector<std::uint16_t>{98, 61, 99, 115, 33, 48, 63, 99});
  CHECK(imdb::encode("a<br />b", options(1024, true)) == std::vector<std::uint16_t>{98, 33, 99});
  CHECK(imdb::encode("a<br /><br />b", options(1024, true)) == std::vector<std::uint16_t>{98, 33, 33, 99});
  // Replacement happens after stripping, so a trailing tag leaves a trailing space.
  CHECK(imdb::encode("a<br />", options(1024, true)) == std::vector<std::uint16_t>{98, 33});
  // Only the exact 6-byte tag: "<br/>" and "<BR />" are kept as bytes.
  CHECK(imdb::encode("<br/>", options(1024, true)).size() == 5);
  CHECK(imdb::encode("<BR />", options(1024, true)).size() == 6);
  // A tag cut by the end of the input is not a tag.
  CHECK(imdb::encode("a<br /", options(1024, true)).size() == 6);
}

TEST_CASE("imdb: encode keeps the first max_len bytes", "[imdb]") {
  CHECK(imdb::encode("abcdef", options(4)) == std::vector<std::uint16_t>{98, 99, 100, 101});
  CHECK(imdb::encode("abcdef", options(6)).size() == 6);
  CHECK(imdb::encode("abcdef", options(100)).size() == 6);
  CHECK(imdb::encode("abc", options(1)) == std::vector<std::uint16_t>{98});
  // Truncation counts bytes after stripping: "  abcdef" with max_len 2 -> "ab".
  CHECK(imdb::encode("  abcdef", options(2)) == std::vector<std::uint16_t>{98, 99});
  // ... and after br replacement: "a<br />bc" -> "a bc" -> "a b" at max_len 3.
  CHECK(imdb::encode("a<br />bc", options(3, true)) == std::vector<std::uint16_t>{98, 33, 99});
  require_error([] { imdb::encode("abc", options(0)); }, "imdb: max_len must be >= 1, got 0");
}

TEST_CASE("imdb: list_reviews orders neg then pos by numeric id", "[imdb]") {
  const auto train = imdb::list_reviews(fixture_tree(), "train");
  REQUIRE(train.size() == 8);
  const std::vector<std::int64_t> ids{0, 1, 2, 10, 0, 1, 3, 12};
  const std::vector<int> ratings{3, 1, 4, 2, 9, 7, 10, 8};
  const std::vector<int> labels{0, 0, 0, 0, 1, 1, 1, 1};
  for (std::size_t i = 0; i < train.size(); ++i) {
    INFO("review " << i << ": " << train[i].path);
    CHECK(train[i].id == ids[i]);
    CHECK(train[i].rating == ratings[i]);
    CHECK(train[i].label == labels[i]);
    const std::string expected = (fs::path(fixture_tree()) / "train" / (labels[i] ? "pos" : "neg") /
                                  (std::to_string(ids[i]) + "_" + std::to_string(ratings[i]) + ".txt"))
                                     .string();
    CHECK(train[i].path == expected);
  }
  const auto test = imdb::list_reviews(fixture_tree(), "test");
  REQUIRE(test.size() == 4);
  CHECK(test[0].id == 0);
  CHECK(test[0].rating == 2);
  CHECK(test[1].id == 5);
  CHECK(test[1].rating == 4);
  CHECK(test[2].id == 0);
  CHECK(test[2].rating == 10);
  CHECK(test[2].label == 1);
  CHECK(test[3].id == 4);
  CHECK(test[3].rating == 7);
  require_error([] { imdb::list_reviews(fixture_tree(), "unsup"); },
                "imdb: split must be \"train\" or \"test\", got \"unsup\"");
}

TEST_CASE("imdb: read gives the fixture's tokens and labels", "[imdb]") {
  const auto s = imdb::read(fixture_tree(), options(1024, false, 0.0));
  CHECK(s.warnings.empty());
  CHECK(s.val.size() == 0);
  REQUIRE(s.train.size() == 8);
  for (const Dataset* d : {&s.train, &s.val, &s.test}) {
    CHECK(d->name == "imdb-bytes");
    CHECK(d->vocab_size == 257);
    CHECK(d->pad_token == 0);
    CHECK(d->max_len == 1024);
    CHECK(d->num_classes == 2);
    CHECK(d->class_names == std::vector<std::string>{"neg", "pos"});
    REQUIRE(d->vocabulary.size() == 257);
    CHECK(d->vocabulary[0] == "<pad>");
    CHECK(d->vocabulary[66] == "A");
    CHECK(d->vocabulary[234] == "\\xE9");
    CHECK(d->vocabulary[11] == "\\x0A");
  }
  CHECK(s.train.split == "train");
  CHECK(s.val.split == "val");
  CHECK(s.test.split == "test");
  // The contents as written in tests/data/imdb/aclImdb, whitespace stripped.
  const std::vector<std::string> texts{"Dull plot.", "Awful.<br /><br />Just awful.", "Meh.",      "Bad acting",
                                       "Great fun!", "Caf\xc3\xa9 scene: good.",      "Loved it.", "Nice.<br />"};
  const std::vector<std::int64_t> lengths{10, 29, 4, 10, 10, 18, 9, 11};  // counted by hand
  for (std::int64_t i = 0; i < 8; ++i) {
    INFO("train example " << i);
    CHECK(s.train.length(i) == lengths[static_cast<std::size_t>(i)]);
    CHECK(example(s.train, i) == plus_one(texts[static_cast<std::size_t>(i)]));
    CHECK(s.train.labels[static_cast<std::size_t>(i)] == (i < 4 ? 0 : 1));
  }
  REQUIRE(s.test.size() == 4);
  CHECK(s.test.labels == std::vector<std::int32_t>{0, 0, 1, 1});
  CHECK(example(s.test, 1) == plus_one("Not great."));
  CHECK(example(s.test, 3) == std::vector<std::uint16_t>{72, 112, 112, 101, 47});  // "Good."
  CHECK(s.test_reviews.size() == 4);

  // replace_br: "Awful.  Just awful." (19 bytes) and "Nice. " (6 bytes).
  const auto r = imdb::read(fixture_tree(), options(1024, true, 0.0));
  CHECK(r.train.length(1) == 19);
  CHECK(example(r.train, 1) == plus_one("Awful.  Just awful."));
  CHECK(example(r.train, 7) == plus_one("Nice. "));
  // max_len 5: every example cut to at most 5 bytes, shorter ones kept whole.
  const auto t = imdb::read(fixture_tree(), options(5, false, 0.0));
  CHECK(t.train.max_len == 5);
  CHECK(example(t.train, 1) == plus_one("Awful"));
  CHECK(t.train.length(2) == 4);
}

TEST_CASE("imdb: validation takes whole movies and never shares one with train", "[imdb]") {
  // 8 reviews in 4 movies (A: 2, B: 3, C: 1, D: 2). val_fraction 0.25 asks for
  // round(0.25 * 8) = 2 reviews: whole movies until at least 2.
  std::set<std::set<char>> seen;
  for (std::uint64_t seed = 0; seed < 32; ++seed) {
    INFO("seed " << seed);
    const auto s = imdb::read(fixture_tree(), options(1024, false, 0.25, seed));
    CHECK(s.warnings.empty());
    CHECK(s.train.size() + s.val.size() == 8);
    CHECK(s.train.size() == static_cast<std::int64_t>(s.train_reviews.size()));
    CHECK(s.val.size() == static_cast<std::int64_t>(s.val_reviews.size()));
    CHECK(s.val.size() >= 2);
    CHECK(s.val.size() <= 5);  // at most C (1 review) then B (3), or one movie of 2-3
    // Together, train and val are the 8 training reviews, each once.
    auto all = keys(s.train_reviews);
    for (auto k : keys(s.val_reviews)) CHECK(all.insert(k).second);
    CHECK(all == keys(imdb::list_reviews(fixture_tree(), "train")));
    // No movie on both sides.
    const auto tm = fixture_movies(s.train_reviews), vm = fixture_movies(s.val_reviews);
    for (char m : vm) CHECK(tm.count(m) == 0);
    // Each example's label is its review's label, and examples keep list order.
    for (std::size_t i = 0; i < s.val_reviews.size(); ++i) CHECK(s.val.labels[i] == s.val_reviews[i].label);
    for (std::size_t i = 1; i < s.val_reviews.size(); ++i)
      CHECK(std::make_pair(s.val_reviews[i - 1].label, s.val_reviews[i - 1].id) <
            std::make_pair(s.val_reviews[i].label, s.val_reviews[i].id));
    seen.insert(vm);
  }
  // The seed matters: 32 seeds do not all choose the same movies.
  CHECK(seen.size() >= 2);
  // val_fraction 0.1: round(0.8) = 1 review asked, so exactly one movie goes.
  const auto one = imdb::read(fixture_tree(), options(1024, false, 0.1, 3));
  CHECK(fixture_movies(one.val_reviews).size() == 1);
}

TEST_CASE("imdb: the split is a function of the seed", "[imdb]") {
  const auto a = imdb::read(fixture_tree(), options(1024, false, 0.25, 7));
  const auto b = imdb::read(fixture_tree(), options(1024, false, 0.25, 7));
  CHECK(keys(a.val_reviews) == keys(b.val_reviews));
  CHECK(a.val.tokens == b.val.tokens);
  CHECK(a.train.tokens == b.train.tokens);
  CHECK(a.train.offsets == b.train.offsets);
  // The split does not depend on the encoding options (only on seed and fraction).
  const auto c = imdb::read(fixture_tree(), options(3, true, 0.25, 7));
  CHECK(keys(a.val_reviews) == keys(c.val_reviews));
}

TEST_CASE("imdb: without urls files validation is split by review with a warning", "[imdb]") {
  TempTree tree;
  fs::remove(tree.root / "train/urls_neg.txt");
  fs::remove(tree.root / "train/urls_pos.txt");
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    const auto s = imdb::read(tree.dir(), options(1024, false, 0.25, seed));
    REQUIRE(s.warnings.size() == 1);
    CHECK(s.warnings[0].find("validation was split by review, not by movie") != std::string::npos);
    CHECK(s.warnings[0].find("urls_neg.txt") != std::string::npos);
    CHECK(s.val.size() == 2);  // exactly round(0.25 * 8): one review a group
    CHECK(s.train.size() == 6);
  }
  const auto half = imdb::read(tree.dir(), options(1024, false, 0.5, 1));
  CHECK(half.val.size() == 4);
  // Test urls files are never needed.
  fs::remove(tree.root / "test/urls_neg.txt");
  CHECK(imdb::read(tree.dir(), options()).test.size() == 4);
}

TEST_CASE("imdb: malformed file names are refused with the name", "[imdb]") {
  const std::vector<std::pair<std::string, std::string>> bad{
      {"train/pos/x_8.txt", "train/pos/x_8.txt: file name is not <id>_<rating>.txt"},
      {"train/pos/5-8.txt", "train/pos/5-8.txt: file name is not <id>_<rating>.txt"},
      {"train/pos/5_8.text", "train/pos/5_8.text: file name is not <id>_<rating>.txt"},
      {"train/pos/5_8", "train/pos/5_8: file name is not <id>_<rating>.txt"},
      {"train/pos/05_8.txt", "train/pos/05_8.txt: file name is not <id>_<rating>.txt"},
      {"train/pos/5_8_1.txt", "train/pos/5_8_1.txt: file name is not <id>_<rating>.txt"},
      {"train/pos/-5_8.txt", "train/pos/-5_8.txt: file name is not <id>_<rating>.txt"},
      {"train/neg/_1.txt", "train/neg/_1.txt: file name is not <id>_<rating>.txt"},
      {"test/neg/.DS_Store", "test/neg/.DS_Store: file name is not <id>_<rating>.txt"},
      {"train/pos/5_11.txt", "train/pos/5_11.txt: rating 11 is outside 1..10"},
      {"train/neg/5_0.txt", "train/neg/5_0.txt: rating 0 is outside 1..10"},
      {"train/pos/5_3.txt", "train/pos/5_3.txt: rating 3 in pos/ (pos reviews are rated >= 7)"},
      {"train/pos/5_6.txt", "train/pos/5_6.txt: rating 6 in pos/"},
      {"test/neg/7_8.txt", "test/neg/7_8.txt: rating 8 in neg/ (neg reviews are rated <= 4)"},
      {"train/neg/5_5.txt", "train/neg/5_5.txt: rating 5 in neg/"},
      {"train/pos/3_9.txt", "train/pos: two files for review id 3: 3_10.txt and 3_9.txt"},
  };
  for (const auto& [rel, message] : bad) {
    INFO(rel);
    TempTree tree;
    tree.write(rel, "A review.");
    require_error([&] { imdb::read(tree.dir(), options()); }, message);
    const std::string split = rel.substr(0, rel.find('/'));
    require_error([&] { imdb::list_reviews(tree.dir(), split); }, message);
  }
}

TEST_CASE("imdb: missing folders are named", "[imdb]") {
  for (const std::string rel : {"test", "train", "train/pos", "train/neg", "test/neg", "test/pos"}) {
    INFO(rel);
    TempTree tree;
    fs::remove_all(tree.root / rel);
    require_error([&] { imdb::read(tree.dir(), options()); }, "imdb: missing folder " + (tree.root / rel).string());
  }
  require_error([] { imdb::read("/nonexistent/aclImdb", options()); }, "imdb: missing folder /nonexistent/aclImdb");
  TempTree empty;
  for (const auto& e : fs::directory_iterator(empty.root / "test/pos")) fs::remove(e.path());
  require_error([&] { imdb::read(empty.dir(), options()); },
                (empty.root / "test/pos").string() + ": no reviews in the folder");
}

TEST_CASE("imdb: unreadable and empty review files are refused", "[imdb]") {
  {  // a folder with a review's name
    TempTree tree;
    fs::create_directory(tree.root / "train/pos/20_8.txt");
    require_error([&] { imdb::read(tree.dir(), options()); }, "train/pos/20_8.txt: not a regular file");
  }
  {  // a link to nowhere
    TempTree tree;
    fs::create_symlink(tree.root / "missing.txt", tree.root / "test/neg/9_1.txt");
    require_error([&] { imdb::read(tree.dir(), options()); }, "test/neg/9_1.txt: not a regular file");
  }
  if (::geteuid() != 0) {  // root reads files whatever their permissions
    TempTree tree;
    fs::permissions(tree.root / "train/pos/3_10.txt", fs::perms::none);
    require_error([&] { imdb::read(tree.dir(), options()); }, "train/pos/3_10.txt: cannot open: Permission denied");
  }
  {  // only whitespace: a zero-length example
    TempTree tree;
    tree.write("train/neg/3_1.txt", " \r\n\t");
    require_error([&] { imdb::read(tree.dir(), options()); },
                  "train/neg/3_1.txt: the review is empty after stripping whitespace");
  }
  {  // an empty file
    TempTree tree;
    tree.write("test/pos/9_9.txt", "");
    require_error([&] { imdb::read(tree.dir(), options()); },
                  "test/pos/9_9.txt: the review is empty after stripping whitespace");
  }
}

TEST_CASE("imdb: urls files must cover every review id", "[imdb]") {
  {  // 12 lines, but pos/12_8.txt needs line 13
    TempTree tree;
    auto lines = url_lines(tree.dir() + "/train/urls_pos.txt");
    lines.pop_back();
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    tree.write("train/urls_pos.txt", text);
    require_error([&] { imdb::read(tree.dir(), options()); }, "train/urls_pos.txt: has 12 lines, but " +
                                                                  (tree.root / "train/pos/12_8.txt").string() +
                                                                  " (review id 12) needs line 13");
  }
  {  // an empty urls file
    TempTree tree;
    tree.write("train/urls_neg.txt", "");
    require_error([&] { imdb::read(tree.dir(), options()); }, "train/urls_neg.txt: has 0 lines, but");
  }
  {  // an empty line where review id 3 needs its movie
    TempTree tree;
    auto lines = url_lines(tree.dir() + "/train/urls_pos.txt");
    lines[3] = "";
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    tree.write("train/urls_pos.txt", text);
    require_error([&] { imdb::read(tree.dir(), options()); },
                  "train/urls_pos.txt:4: empty movie URL for " + (tree.root / "train/pos/3_10.txt").string());
  }
  {  // one urls file without the other
    TempTree tree;
    fs::remove(tree.root / "train/urls_pos.txt");
    require_error([&] { imdb::read(tree.dir(), options()); }, "train/urls_pos.txt: missing, although");
  }
  {  // CRLF line ends and no final newline are accepted, and give the same movies
    TempTree tree;
    const auto lines = url_lines(tree.dir() + "/train/urls_pos.txt");
    std::string text;
    for (std::size_t i = 0; i < lines.size(); ++i) text += lines[i] + (i + 1 < lines.size() ? "\r\n" : "");
    tree.write("train/urls_pos.txt", text);
    for (std::uint64_t seed = 0; seed < 8; ++seed)
      CHECK(keys(imdb::read(tree.dir(), options(1024, false, 0.25, seed)).val_reviews) ==
            keys(imdb::read(fixture_tree(), options(1024, false, 0.25, seed)).val_reviews));
  }
}

TEST_CASE("imdb: bad options are refused", "[imdb]") {
  require_error([] { imdb::read(fixture_tree(), options(0)); }, "imdb: max_len must be >= 1, got 0");
  require_error([] { imdb::read(fixture_tree(), options(-3)); }, "imdb: max_len must be >= 1, got -3");
  require_error([] { imdb::read(fixture_tree(), options(1024, false, 1.0)); }, "imdb: val_fraction must be in [0, 1)");
  require_error([] { imdb::read(fixture_tree(), options(1024, false, -0.1)); }, "imdb: val_fraction must be in [0, 1)");
  require_error([] { imdb::read(fixture_tree(), options(1024, false, std::nan(""))); },
                "imdb: val_fraction must be in [0, 1)");
  // round(0.99 * 8) = 8 reviews asked: every movie goes, none is left to train on.
  require_error([] { imdb::read(fixture_tree(), options(1024, false, 0.99)); },
                "imdb: validation took all 8 training reviews");
}

// The real subset: ../shared/data/imdb/README.md gives every number checked here.
TEST_CASE("imdb: the real aclImdb subset", "[imdb]") {
  const std::string dir = real_data_dir() + "/imdb/aclImdb_subset";
  HKT_SKIP_UNLESS_EXISTS(dir);

  // 1000 reviews per label and split, ids 0..999, with the README's rating counts.
  for (const std::string split : {"train", "test"}) {
    INFO(split);
    const auto reviews = imdb::list_reviews(dir, split);
    REQUIRE(reviews.size() == 2000);
    std::map<int, int> ratings;
    for (std::size_t i = 0; i < 2000; ++i) {
      CHECK(reviews[i].label == (i < 1000 ? 0 : 1));
      CHECK(reviews[i].id == static_cast<std::int64_t>(i % 1000));
      ++ratings[reviews[i].rating];
    }
    const std::map<int, int> expected =
        split == "train"
            ? std::map<int, int>{{1, 379}, {2, 190}, {3, 186}, {4, 245}, {7, 163}, {8, 196}, {9, 190}, {10, 451}}
            : std::map<int, int>{{1, 355}, {2, 179}, {3, 221}, {4, 245}, {7, 179}, {8, 209}, {9, 211}, {10, 401}};
    CHECK(ratings == expected);
  }

  // Default options: train + val = the 2000 train reviews, test = the 2000 test reviews.
  const auto s = imdb::read(dir, options());
  CHECK(s.warnings.empty());
  CHECK(s.test.size() == 2000);
  CHECK(s.test.label_histogram() == std::vector<std::int64_t>{1000, 1000});
  CHECK(s.train.size() + s.val.size() == 2000);
  const auto th = s.train.label_histogram(), vh = s.val.label_histogram();
  CHECK(th[0] + vh[0] == 1000);
  CHECK(th[1] + vh[1] == 1000);
  auto all = keys(s.train_reviews);
  for (auto k : keys(s.val_reviews)) CHECK(all.insert(k).second);
  CHECK(all.size() == 2000);
  CHECK(all == keys(imdb::list_reviews(dir, "train")));

  // Movies, from the urls files read here: none on both sides of the split.
  const std::vector<std::string> urls[2] = {url_lines(dir + "/train/urls_neg.txt"),
                                            url_lines(dir + "/train/urls_pos.txt")};
  REQUIRE(urls[0].size() == 1000);
  REQUIRE(urls[1].size() == 1000);
  auto movies = [&](const std::vector<imdb::Review>& rs) {
    std::set<std::string> m;
    for (const auto& r : rs) m.insert(urls[r.label][static_cast<std::size_t>(r.id)]);
    return m;
  };
  const auto train_movies = movies(s.train_reviews), val_movies = movies(s.val_reviews);
  for (const auto& m : val_movies) CHECK(train_movies.count(m) == 0);
  CHECK(train_movies.size() + val_movies.size() == 282);  // README: 282 distinct train movies
  // At least round(0.1 * 2000) = 200 reviews, overshooting by less than one movie.
  std::map<std::string, std::int64_t> reviews_of_movie;
  for (int l = 0; l < 2; ++l)
    for (const auto& u : urls[l]) ++reviews_of_movie[u];
  std::int64_t largest = 0;
  for (const auto& [u, c] : reviews_of_movie) largest = std::max(largest, c);
  CHECK(s.val.size() >= 200);
  CHECK(s.val.size() < 200 + largest);

  // Lengths at T = 1024: README counts of files longer than 1024 bytes (no review has
  // whitespace to strip). With max_len 1025 a file of more than 1024 bytes has 1025 tokens.
  auto count_length = [](const Dataset& d, std::int64_t len) {
    std::int64_t n = 0;
    for (std::int64_t i = 0; i < d.size(); ++i) n += d.length(i) == len;
    return n;
  };
  const auto t1025 = imdb::read(dir, options(1025));
  CHECK(count_length(t1025.train, 1025) + count_length(t1025.val, 1025) == 449 + 469);
  CHECK(count_length(t1025.test, 1025) == 474 + 473);
  const auto t1001 = imdb::read(dir, options(1001));
  CHECK(count_length(t1001.train, 1001) + count_length(t1001.val, 1001) == 461 + 487);
  CHECK(count_length(t1001.test, 1001) == 489 + 486);

  // Untruncated: the README's shortest and longest files.
  const auto full = imdb::read(dir, options(20000));
  auto min_max = [](const Dataset& d) {
    std::int64_t lo = 1 << 30, hi = 0;
    for (std::int64_t i = 0; i < d.size(); ++i) lo = std::min(lo, d.length(i)), hi = std::max(hi, d.length(i));
    return std::make_pair(lo, hi);
  };
  const auto [train_lo, train_hi] = min_max(full.train);
  const auto [val_lo, val_hi] = min_max(full.val);
  CHECK(std::min(train_lo, val_lo) == 65);
  CHECK(std::max(train_hi, val_hi) == 7134);
  CHECK(min_max(full.test) == std::make_pair(std::int64_t{49}, std::int64_t{9951}));

  // replace_br shortens exactly the files that contain "<br />" (README: train 574 + 628,
  // test 577 + 582); the split is the same, so examples pair up one to one.
  const auto br = imdb::read(dir, options(20000, true));
  REQUIRE(keys(br.val_reviews) == keys(full.val_reviews));
  auto shortened = [](const Dataset& a, const Dataset& b) {
    std::int64_t n = 0;
    for (std::int64_t i = 0; i < a.size(); ++i) n += b.length(i) < a.length(i);
    return n;
  };
  CHECK(shortened(full.train, br.train) + shortened(full.val, br.val) == 574 + 628);
  CHECK(shortened(full.test, br.test) == 577 + 582);

  // First tokens of train/pos/0_9.txt, "Bromwell High is a cartoon comedy...", against
  // its bytes read here: B r o m w e l l = 66 114 111 109 119 101 108 108, plus one.
  const std::string path = dir + "/train/pos/0_9.txt";
  const std::string raw = slurp(path);
  REQUIRE(raw.substr(0, 8) == "Bromwell");
  const Dataset* where = nullptr;
  std::int64_t index = -1;
  for (const auto* part : {&s.train_reviews, &s.val_reviews})
    for (std::size_t i = 0; i < part->size(); ++i)
      if ((*part)[i].label == 1 && (*part)[i].id == 0) {
        where = part == &s.train_reviews ? &s.train : &s.val;
        index = static_cast<std::int64_t>(i);
      }
  REQUIRE(where != nullptr);
  const auto tokens = example(*where, index);
  REQUIRE(tokens.size() == std::min<std::size_t>(raw.size(), 1024));
  CHECK(std::vector<std::uint16_t>(tokens.begin(), tokens.begin() + 8) ==
        std::vector<std::uint16_t>{67, 115, 112, 110, 120, 102, 109, 109});
  CHECK(tokens == plus_one(raw.substr(0, tokens.size())));

  // test/neg/688_4.txt holds 3-byte UTF-8 characters: each is three tokens, E2 -> 227.
  const std::string raw688 = slurp(dir + "/test/neg/688_4.txt");
  const auto at = raw688.find("\xe2\x80");
  REQUIRE(at != std::string::npos);
  REQUIRE(full.test_reviews[688].id == 688);
  REQUIRE(full.test_reviews[688].label == 0);
  const auto t688 = example(full.test, 688);
  CHECK(t688.size() == raw688.size());
  CHECK(t688[at] == 227);
  CHECK(t688[at + 1] == 129);
  CHECK(t688[at + 2] == static_cast<unsigned char>(raw688[at + 2]) + 1);
  CHECK(t688 == plus_one(raw688));
}
