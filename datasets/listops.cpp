// listops.cpp: ListOps generator, evaluator, tokeniser and file readers/writer.
// Specification: docs/datasets.md, "ListOps"; API documentation: listops.h.
#include "listops.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <vector>
#include <string_view>
#include <unordered_set>

#include "error.h"
#include "random.h"

namespace hkt::data::listops {
namespace {

// ---------------------------------------------------------------------------------------
// Symbols

// Vocabulary ids (see vocabulary()): digit d is d + 1, then the operators [MIN, [MAX,
// [MED, [SM as 11..14 (kMinId + operator index), and "]" as 15.
constexpr std::uint16_t kFirstDigitId = 1;
constexpr std::uint16_t kMinId = 11, kCloseId = 15;
constexpr std::int64_t kVocabSize = 16;
constexpr int kNumClasses = 10;

// The four operators in vocabulary order; index = id - kMinId.
constexpr std::array<const char*, 4> kOperatorNames = {"[MIN", "[MAX", "[MED", "[SM"};

enum class Kind { Digit, Operator, Close, OpenParen, CloseParen, Unknown };

struct Symbol {
  Kind kind;
  int value;  // the digit (Digit) or operator index 0..3 (Operator); 0 otherwise
};

Symbol classify(std::string_view token) {
  if (token.size() == 1) {
    const char c = token[0];
    if (c >= '0' && c <= '9') return {Kind::Digit, c - '0'};
    if (c == ']') return {Kind::Close, 0};
    if (c == '(') return {Kind::OpenParen, 0};
    if (c == ')') return {Kind::CloseParen, 0};
  }
  for (int op = 0; op < 4; ++op)
    if (token == kOperatorNames[static_cast<std::size_t>(op)]) return {Kind::Operator, op};
  return {Kind::Unknown, 0};
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Calls f(token, index) for each whitespace-separated token, index counting from 1.
template <class F>
void for_each_token(std::string_view text, F&& f) {
  std::int64_t index = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) f(text.substr(start, i - start), ++index);
  }
}

// A token as it may safely appear in a one-line message: printable ASCII kept, any
// other byte as \xNN, at most 24 bytes shown.
std::string printable(std::string_view s) {
  constexpr std::size_t kShown = 24;
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < kShown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > kShown) out += "...";
  return out;
}

std::string at_token(std::int64_t index) { return " (token " + std::to_string(index) + ")"; }

// ---------------------------------------------------------------------------------------
// Evaluation by a stack of open operators. Each open operator keeps only how many times
// each digit 0-9 occurred among its arguments: enough for MIN, MAX, SM and MED, and O(1)
// memory per level. (The generator computes values a second, independent way.)

struct OpenOperator {
  int op;                    // 0..3, index into kOperatorNames
  std::int64_t token_index;  // where it was opened, for messages
  std::array<std::int64_t, 10> counts{};
  std::int64_t n = 0;  // number of arguments
};

// The k-th smallest (from 0) of the arguments described by `counts`.
int kth_smallest(const std::array<std::int64_t, 10>& counts, std::int64_t k) {
  for (int d = 0; d < 10; ++d) {
    if (k < counts[static_cast<std::size_t>(d)]) return d;
    k -= counts[static_cast<std::size_t>(d)];
  }
  return 9;  // unreachable for 0 <= k < n
}

int apply(const OpenOperator& o) {
  switch (o.op) {
    case 0:
      return kth_smallest(o.counts, 0);  // MIN
    case 1:
      return kth_smallest(o.counts, o.n - 1);  // MAX
    case 2:                                    // MED: floor of the median
      if (o.n % 2 == 1) return kth_smallest(o.counts, o.n / 2);
      return (kth_smallest(o.counts, o.n / 2 - 1) + kth_smallest(o.counts, o.n / 2)) / 2;
    default: {  // SM: sum mod 10
      std::int64_t sum = 0;
      for (int d = 0; d < 10; ++d) sum = (sum + d * o.counts[static_cast<std::size_t>(d)]) % 10;
      return static_cast<int>(sum);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Generation

// Uniform numbers for one attempt: draw k is uniform53 of the Philox block with counter
// (k, attempt) and key seed (see generate() in listops.h). Every attempt has its own
// counter range, so an attempt abandoned early never shifts the numbers of another.
class AttemptDraws {
 public:
  explicit AttemptDraws(std::uint64_t seed) : seed_(seed) {}

  void start(std::uint64_t attempt) {
    attempt_ = attempt;
    k_ = 0;
  }
  double uniform() {
    const Philox4x32 block(static_cast<std::uint32_t>(k_), static_cast<std::uint32_t>(k_ >> 32),
                           static_cast<std::uint32_t>(attempt_), static_cast<std::uint32_t>(attempt_ >> 32),
                           static_cast<std::uint32_t>(seed_), static_cast<std::uint32_t>(seed_ >> 32));
    ++k_;
    return uniform53(block.out[0], block.out[1]);
  }
  /// A uniform integer in [0, n).
  int below(int n) { return std::min(n - 1, static_cast<int>(uniform() * n)); }

 private:
  std::uint64_t seed_, attempt_ = 0, k_ = 0;
};

// Grows trees, writing each one's parenthesised text, counting its tokens, and computing
// its value from the children's values (sorted, for MED). Gives up (returns false) as
// soon as the token count passes max_len, so a huge tree costs no more than max_len
// tokens. One grower serves all attempts: its buffers keep their capacity, so an attempt
// allocates nothing (most attempts are rejected, so this is where the time goes).
class TreeGrower {
 public:
  TreeGrower(const GeneratorConfig& config, std::uint64_t seed) : config_(config), draws_(seed) {}

  /// Grows the tree of attempt `attempt`; false if it has more than max_len tokens.
  bool grow_attempt(std::uint64_t attempt, int& value) {
    draws_.start(attempt);
    text_.clear();
    values_.clear();
    length_ = 0;
    if (!grow(1, true)) return false;
    value = values_.back();
    return true;
  }

  const std::string& text() const { return text_; }
  std::int64_t length() const { return length_; }

 private:
  // Appends the subtree's text and pushes its value on values_.
  bool grow(int depth, bool is_root) {
    const bool operator_node =
        (is_root && config_.force_root_operator) || (depth < config_.max_depth && draws_.uniform() < config_.value_p);
    if (!operator_node) {
      const int digit = draws_.below(10);
      values_.push_back(digit);
      text_ += static_cast<char>('0' + digit);
      return count_tokens(1);
    }
    const int op = draws_.below(4);
    const int n = 2 + draws_.below(config_.max_args - 1);  // uniform in 2..max_args
    if (!count_tokens(2)) return false;                    // the operator and its "]"
    for (int i = 0; i <= n; ++i) text_ += "( ";
    text_ += kOperatorNames[static_cast<std::size_t>(op)];
    for (int i = 0; i < n; ++i) {
      text_ += ' ';
      if (!grow(depth + 1, false)) return false;
      text_ += " )";
    }
    text_ += " ] )";
    // The children's values are the last n on the stack: replace them by the result.
    const auto first = values_.end() - n;
    const int result = combine(op, first, values_.end());
    values_.erase(first, values_.end());
    values_.push_back(result);
    return true;
  }

  bool count_tokens(std::int64_t n) {
    length_ += n;
    return length_ <= config_.max_len;
  }

  static int combine(int op, std::vector<int>::iterator begin, std::vector<int>::iterator end) {
    std::sort(begin, end);
    const auto n = end - begin;
    switch (op) {
      case 0:
        return begin[0];  // MIN
      case 1:
        return end[-1];  // MAX
      case 2:
        return n % 2 == 1 ? begin[n / 2] : (begin[n / 2 - 1] + begin[n / 2]) / 2;  // MED
      default: {                                                                   // SM
        int sum = 0;
        for (auto it = begin; it != end; ++it) sum += *it;
        return sum % 10;
      }
    }
  }

  const GeneratorConfig& config_;
  AttemptDraws draws_;
  std::string text_;
  std::vector<int> values_;  // values of finished subtrees whose parent is still open
  std::int64_t length_ = 0;
};

void validate(const GeneratorConfig& c) {
  check(c.max_depth >= 1 && c.max_depth <= 1000,
        "listops generator: max_depth must be in 1..1000, got " + std::to_string(c.max_depth));
  check(c.max_args >= 2 && c.max_args <= 1000,
        "listops generator: max_args must be in 2..1000, got " + std::to_string(c.max_args));
  check(c.value_p >= 0.0 && c.value_p <= 1.0,
        "listops generator: value_p must be in [0, 1], got " + std::to_string(c.value_p));
  check(c.min_len >= 0, "listops generator: min_len must be >= 0, got " + std::to_string(c.min_len));
  check(c.max_len > c.min_len, "listops generator: max_len (" + std::to_string(c.max_len) +
                                   ") must be greater than min_len (" + std::to_string(c.min_len) + ")");
}

// ---------------------------------------------------------------------------------------
// Files

enum class FileFormat { Lra, Release };

// Columns of a line split at every tab.
std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> cols;
  std::size_t start = 0;
  for (;;) {
    const std::size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      cols.push_back(line.substr(start));
      return cols;
    }
    cols.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

// A label column: an integer (an optional sign, then digits) in 0..9.
int parse_label(std::string_view s, const std::string& where) {
  const std::size_t start = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  bool integer = start < s.size();
  for (std::size_t j = start; j < s.size(); ++j) integer = integer && s[j] >= '0' && s[j] <= '9';
  check(integer, where + ": label '" + printable(s) + "' is not an integer");
  std::string_view digits = s.substr(start);
  while (digits.size() > 1 && digits[0] == '0') digits.remove_prefix(1);  // "07" is 7
  const bool negative = s[0] == '-' && digits != "0";
  check(!negative && digits.size() == 1, where + ": label " + printable(s) + " is outside 0-9");
  return digits[0] - '0';
}

// Checks one example and appends it to `ds`. `where` is "<path>:<line>" or "example <i>".
void add_example(Dataset& ds, std::string_view expression, int label, const std::string& where) {
  const std::string expr(expression);
  const int value = evaluate(expr, where);
  check(value == label, where + ": label " + std::to_string(label) + " differs from the value of the expression, " +
                            std::to_string(value));
  const auto tokens = tokenize(expr, where);
  check(static_cast<std::int64_t>(tokens.size()) <= ds.max_len,
        where + ": example has " + std::to_string(tokens.size()) + " tokens, more than max_len " +
            std::to_string(ds.max_len) + " (ListOps examples are never truncated)");
  ds.add_tokens(tokens, label);
}

// Calls f(where, expression, label) for every example line of a file, after checking
// the file, the header (LRA), line ends and columns; returns the number of examples.
template <class F>
std::int64_t for_each_example(const std::string& path, FileFormat format, F&& f) {
  check(!std::filesystem::is_directory(path), path + ": is a directory, not a ListOps file");
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), path + ": cannot open file (missing or unreadable)");
  std::string line;
  std::int64_t line_no = 0, examples = 0;
  // Lines are read into a bounded buffer: a file with no line ends (a device such as
  // /dev/zero, a binary file) stops at the bound with a message, not at memory's end.
  constexpr std::streamsize kMaxLine = 1 << 20;  // ListOps lines are a few kilobytes
  std::vector<char> buffer(static_cast<std::size_t>(kMaxLine) + 1);
  while (in.getline(buffer.data(), kMaxLine + 1) || in.gcount() > 0) {
    ++line_no;
    const std::string where = path + ":" + std::to_string(line_no);
    check(!(in.fail() && !in.eof() && in.gcount() == kMaxLine),
          where + ": a line longer than " + std::to_string(kMaxLine) + " bytes; is this a ListOps file?");
    // gcount counts the line end too, except on a last line that has none.
    line.assign(buffer.data(), static_cast<std::size_t>(in.gcount() - (in.eof() ? 0 : 1)));
    if (format == FileFormat::Lra) {
      if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF line end
      if (line_no == 1) {
        check(line == "Source\tTarget",
              where + ": expected the header 'Source<TAB>Target', found '" + printable(line) + "'");
        continue;
      }
    } else {
      check(line.find('\r') == std::string::npos,
            where + ": carriage return (CR) found; the release format has LF line ends");
    }
    const auto cols = split_tabs(line);
    check(cols.size() == 2, where + ": expected 2 tab-separated columns, found " + std::to_string(cols.size()));
    const std::string_view expression = format == FileFormat::Lra ? cols[0] : cols[1];
    const std::string_view label_text = format == FileFormat::Lra ? cols[1] : cols[0];
    f(where, line_no, expression, parse_label(label_text, where));
    ++examples;
  }
  check(!in.bad(), path + ": read error after line " + std::to_string(line_no));
  check(!(format == FileFormat::Lra && line_no == 0), path + ":1: empty file, expected the header 'Source<TAB>Target'");
  check(examples > 0, path + ": no examples");
  return examples;
}

Dataset read_tsv(const std::string& path, std::int64_t max_len, const std::string& split, FileFormat format) {
  check(max_len >= 1, path + ": max_len must be >= 1, got " + std::to_string(max_len));
  Dataset ds = empty_dataset(max_len, split);
  for_each_example(path, format, [&](const std::string& where, std::int64_t, std::string_view expression, int label) {
    add_example(ds, expression, label, where);
  });
  return ds;
}

}  // namespace

// ---------------------------------------------------------------------------------------

GeneratorConfig preset(const std::string& name) {
  if (name == "nangia-bowman") return GeneratorConfig{20, 5, 0.25, 0, 512, true};
  if (name == "lra") return GeneratorConfig{10, 10, 0.25, 500, 1999, true};
  if (name == "lra-512") return GeneratorConfig{10, 10, 0.25, 500, 512, true};
  throw Error("listops: unknown preset '" + printable(name) + "' (presets: nangia-bowman, lra, lra-512)");
}

namespace {
constexpr std::int64_t kMaxCount = 1'000'000'000;

void check_counts(std::int64_t n_train, std::int64_t n_val, std::int64_t n_test) {
  for (auto n : {n_train, n_val, n_test})
    check(n >= 0 && n <= kMaxCount, "listops generator: example counts must be in 0.." + std::to_string(kMaxCount) +
                                        ", got " + std::to_string(n));
}
}  // namespace

Splits generate(const GeneratorConfig& config, std::int64_t n_train, std::int64_t n_val, std::int64_t n_test,
                std::uint64_t seed) {
  check_counts(n_train, n_val, n_test);
  // Generous: the lowest acceptance rate of the presets is ~1 in 190 attempts (lra-512).
  return generate(config, n_train, n_val, n_test, seed, 1000 * (n_train + n_val + n_test) + 100000);
}

Splits generate(const GeneratorConfig& config, std::int64_t n_train, std::int64_t n_val, std::int64_t n_test,
                std::uint64_t seed, std::int64_t max_attempts) {
  validate(config);
  check_counts(n_train, n_val, n_test);
  check(max_attempts >= 1, "listops generator: max_attempts must be >= 1, got " + std::to_string(max_attempts));
  const std::int64_t wanted = n_train + n_val + n_test;

  // A deque never moves its elements, so the set can point into their strings.
  std::deque<Example> accepted;
  std::unordered_set<std::string_view> seen;
  TreeGrower grower(config, seed);
  std::int64_t attempt = 0, last_new = 0;
  // Also stop when 2,000,000 attempts in a row found nothing new: the distinct examples of
  // this length range are (nearly) exhausted, and waiting for max_attempts could take hours.
  constexpr std::int64_t kStallAttempts = 2'000'000;
  for (; static_cast<std::int64_t>(accepted.size()) < wanted && attempt < max_attempts &&
         attempt - last_new < kStallAttempts;
       ++attempt) {
    int value = 0;
    if (!grower.grow_attempt(static_cast<std::uint64_t>(attempt), value) || grower.length() <= config.min_len) continue;
    if (seen.count(grower.text())) continue;
    accepted.push_back({grower.text(), value});
    seen.insert(accepted.back().expression);
    last_new = attempt;
  }
  check(static_cast<std::int64_t>(accepted.size()) == wanted,
        "listops generator: found only " + std::to_string(accepted.size()) + " distinct examples of the " +
            std::to_string(wanted) + " asked for within " + std::to_string(attempt) + " attempts (lengths " +
            std::to_string(config.min_len) + " < L <= " + std::to_string(config.max_len) +
            "); widen the length range or ask for fewer");

  seen.clear();  // it points into `accepted`, which is moved from below
  Splits out;
  auto take = [&](std::vector<Example>& dst, std::int64_t n) {
    dst.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      dst.push_back(std::move(accepted.front()));
      accepted.pop_front();
    }
  };
  take(out.train, n_train);
  take(out.val, n_val);
  take(out.test, n_test);
  return out;
}

int evaluate(const std::string& expression) { return evaluate(expression, "listops expression"); }

int evaluate(const std::string& expression, const std::string& where) {
  std::vector<OpenOperator> open;
  std::int64_t open_parens = 0;
  int result = -1;  // the top-level value once complete

  // A finished value goes to the innermost open operator, or is the result.
  auto deliver = [&](int value, std::int64_t index) {
    if (!open.empty()) {
      ++open.back().counts[static_cast<std::size_t>(value)];
      ++open.back().n;
      return;
    }
    check(result < 0,
          where + ": more than one top-level expression (the second ends at token " + std::to_string(index) + ")");
    result = value;
  };

  for_each_token(expression, [&](std::string_view token, std::int64_t index) {
    const Symbol s = classify(token);
    switch (s.kind) {
      case Kind::Digit:
        deliver(s.value, index);
        break;
      case Kind::Operator:
        open.push_back({s.value, index, {}, 0});
        break;
      case Kind::Close: {
        check(!open.empty(), where + ": ']' closes no open operator (unbalanced brackets)" + at_token(index));
        const OpenOperator o = open.back();
        open.pop_back();
        check(o.n > 0, where + ": operator '" + kOperatorNames[static_cast<std::size_t>(o.op)] + "'" +
                           at_token(o.token_index) + " has no arguments");
        deliver(apply(o), index);
        break;
      }
      case Kind::OpenParen:
        ++open_parens;
        break;
      case Kind::CloseParen:
        check(open_parens > 0, where + ": ')' closes no open '(' (unbalanced parentheses)" + at_token(index));
        --open_parens;
        break;
      case Kind::Unknown:
        throw Error(where + ": unknown token '" + printable(token) + "'" + at_token(index));
    }
  });
  if (!open.empty())
    throw Error(where + ": operator '" + kOperatorNames[static_cast<std::size_t>(open.back().op)] + "'" +
                at_token(open.back().token_index) + " is never closed by ']' (unbalanced brackets)");
  check(open_parens == 0, where + ": " + std::to_string(open_parens) + " '(' never closed (unbalanced parentheses)");
  check(result >= 0, where + ": empty expression");
  return result;
}

const std::vector<std::string>& vocabulary() {
  static const std::vector<std::string> vocab = {"<pad>", "0", "1", "2",    "3",    "4",    "5",   "6",
                                                 "7",     "8", "9", "[MIN", "[MAX", "[MED", "[SM", "]"};
  return vocab;
}

std::vector<std::uint16_t> tokenize(const std::string& expression, const std::string& where) {
  std::vector<std::uint16_t> ids;
  for_each_token(expression, [&](std::string_view token, std::int64_t index) {
    const Symbol s = classify(token);
    switch (s.kind) {
      case Kind::Digit:
        ids.push_back(static_cast<std::uint16_t>(kFirstDigitId + s.value));
        break;
      case Kind::Operator:
        ids.push_back(static_cast<std::uint16_t>(kMinId + s.value));
        break;
      case Kind::Close:
        ids.push_back(kCloseId);
        break;
      case Kind::OpenParen:
      case Kind::CloseParen:
        break;  // LRA convention: parentheses carry no information
      case Kind::Unknown:
        throw Error(where + ": unknown token '" + printable(token) + "'" + at_token(index));
    }
  });
  return ids;
}

Dataset empty_dataset(std::int64_t max_len, const std::string& split) {
  Dataset ds;
  ds.name = "listops";
  ds.split = split;
  ds.max_len = max_len;
  ds.vocab_size = kVocabSize;
  ds.pad_token = 0;
  ds.num_classes = kNumClasses;
  for (int c = 0; c < kNumClasses; ++c) ds.class_names.push_back(std::to_string(c));
  ds.vocabulary = vocabulary();
  return ds;
}

Dataset to_dataset(const std::vector<Example>& examples, std::int64_t max_len, const std::string& split) {
  check(max_len >= 1, "listops: max_len must be >= 1, got " + std::to_string(max_len));
  Dataset ds = empty_dataset(max_len, split);
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const std::string where = "listops " + split + " example " + std::to_string(i);
    check(examples[i].label >= 0 && examples[i].label <= 9,
          where + ": label " + std::to_string(examples[i].label) + " is outside 0-9");
    add_example(ds, examples[i].expression, examples[i].label, where);
  }
  return ds;
}

Dataset read_lra_tsv(const std::string& path, std::int64_t max_len, const std::string& split) {
  return read_tsv(path, max_len, split, FileFormat::Lra);
}

Dataset read_release(const std::string& path, std::int64_t max_len, const std::string& split) {
  return read_tsv(path, max_len, split, FileFormat::Release);
}

void write_lra_tsv(const std::string& path, const std::vector<Example>& examples) {
  // Validate everything before creating any file.
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const std::string where = path + ": example " + std::to_string(i);
    const Example& e = examples[i];
    check(e.expression.find_first_of("\t\r\n") == std::string::npos,
          where + ": the expression holds a tab, CR or LF, which the TSV format cannot hold");
    check(e.label >= 0 && e.label <= 9, where + ": label " + std::to_string(e.label) + " is outside 0-9");
    const int value = evaluate(e.expression, where);
    check(value == e.label, where + ": label " + std::to_string(e.label) +
                                " differs from the value of the expression, " + std::to_string(value));
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    check(static_cast<bool>(out), tmp + ": cannot create file");
    out << "Source\tTarget\r\n";
    for (const Example& e : examples) out << e.expression << '\t' << e.label << "\r\n";
    out.close();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw Error(tmp + ": write failed (disk full?); nothing was written to " + path);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw Error(path + ": cannot rename " + tmp + " to it: " + ec.message());
  }
}

std::vector<FileExample> read_examples(const std::string& path, bool release) {
  std::vector<FileExample> out;
  for_each_example(path, release ? FileFormat::Release : FileFormat::Lra,
                   [&](const std::string& where, std::int64_t line, std::string_view expression, int label) {
                     const std::string expr(expression);
                     out.push_back(FileExample{line, expr, label, evaluate(expr, where)});
                   });
  return out;
}

}  // namespace hkt::data::listops
