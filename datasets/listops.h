// listops.h: ListOps (Nangia & Bowman, 2018): generator, evaluator, tokeniser, readers.
//
// A ListOps expression is a tree of operators over the digits 0-9, written in prefix
// form with each operator opened by "[MIN", "[MAX", "[MED" or "[SM" and closed by "]":
//   [MAX 2 9 [MIN 4 7 ] 0 ]  = 9
// The label is the value of the whole expression (a digit, so 10 classes).
// Specification: docs/datasets.md, section "ListOps".
//
// Two text forms exist and every function here accepts both:
//  * bare:          "[MAX 2 9 ]"
//  * parenthesised: "( ( ( [MAX 2 ) 9 ) ] )"  (the form of the 2018 release and of LRA's
//    files; the parentheses spell out a left-branching binary tree and carry no meaning
//    for the value, so the LRA convention drops them when tokenising).
// The generator writes the parenthesised form exactly as LRA's listops.py (to_string)
// and the 2018 make_data.py do: an operator node with children c1..cn becomes
//   "(" x (n+1), then "op c1 )", then " ck )" for k = 2..n, then " ] )"
// with single spaces between tokens. A bare digit is written as itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset.h"

namespace hkt::data::listops {

/// Parameters of the random tree generator (datasets.md, "Generator (seeded)").
///
/// Trees are grown top-down from the root at depth 1. A node at depth >= max_depth is a
/// digit. Any other node is an operator with probability value_p (else a digit), except
/// that the root is always an operator when force_root_operator is set. An operator gets
/// a uniform number of children in 2..max_args and a uniform operator of the four.
///
/// Note on value_p: the name and the default 0.25 come from the 2018 make_data.py and
/// LRA's listops.py, where `if random() > VALUE_P: <digit> else: <operator>`, i.e.
/// VALUE_P is the probability of an OPERATOR. We keep that meaning because it is the one
/// that reproduces the published data: with operators at 0.25 and 2..5 children, an
/// operator has 0.25 * 3.5 = 0.875 operator children on average (a shrinking tree, mean
/// ~35-45 tokens, as in the 2018 release), whereas digits at 0.25 would give 2.6 operator
/// children per operator, trees that almost always grow to max_depth, and nothing like
/// the 2018 statistics. (datasets.md's sentence "a digit with probability value_p" reads
/// the name literally; see the measurements in tests/test_listops.cpp.)
struct GeneratorConfig {
  int max_depth;             ///< nodes at this depth are digits; 1..1000
  int max_args;              ///< operators get 2..max_args children; 2..1000
  double value_p = 0.25;     ///< probability that a non-root node above max_depth is an operator
  std::int64_t min_len;      ///< accept only examples with more than min_len tokens (>= 0)
  std::int64_t max_len;      ///< ... and at most max_len tokens (> min_len)
  bool force_root_operator;  ///< the root is always an operator (never a bare digit)
};

/// The named generator settings (datasets.md, "Presets"); lengths count tokens after
/// tokenisation (no parentheses):
///  * "nangia-bowman": the 2018 ListOps (max_args 5, max_depth 20, root forced,
///    value_p 0.25); 0 < length <= 512. The 2018 generator had no length filter; ~99.5%
///    of its examples have <= 512 tokens (9,955 of the 10,000 released test examples),
///    so the cap at the usual T = 512 removes only the rare long tail.
///  * "lra": Long Range Arena's ListOps (max_args 10, max_depth 10, value_p 0.25);
///    500 < length < 2000, i.e. min_len 500, max_len 1999. The root is forced: LRA's
///    generator does not force it, but a bare digit (1 token) is always rejected by the
///    length filter, so forcing changes only the number of wasted attempts, not the
///    distribution of accepted examples.
///  * "lra-512": "lra" with max_len 512 (500 < length <= 512), for models run at T = 512.
/// Throws hkt::Error for any other name; the message lists the presets.
GeneratorConfig preset(const std::string& name);

/// One generated example: the expression in the parenthesised text form written to LRA
/// TSV files (see the top of this file) and its value 0-9.
struct Example {
  std::string expression;
  int label;
};

/// Disjoint train/validation/test examples.
struct Splits {
  std::vector<Example> train, val, test;
};

/// Generates n_train + n_val + n_test distinct examples with `config`.
///
/// Attempt a (a = 0, 1, 2, ...) grows one tree with random numbers from Philox4x32-10
/// (engine/random.h): draw k of attempt a is uniform53 of the block with counter
/// (k low, k high, a low, a high) and key (seed low, seed high). An attempt is accepted
/// when its length L satisfies min_len < L <= max_len and its expression was not accepted
/// before; accepted examples fill train, then val, then test, in acceptance order. So
/// the splits are disjoint, nothing is duplicated, and the same arguments give the same
/// output on every machine (integer arithmetic and IEEE double products only).
/// Each label is computed from the tree as it is grown (not by parsing the text).
/// Throws hkt::Error for a bad config (max_depth or max_args out of range, value_p
/// outside [0, 1], min_len < 0, max_len <= min_len) or negative counts, and when fewer
/// than the requested number of distinct examples are found within
/// 1000 * (n_train + n_val + n_test) + 100000 attempts (the message says how many were
/// found and suggests widening the length range or asking for fewer).
Splits generate(const GeneratorConfig& config, std::int64_t n_train, std::int64_t n_val, std::int64_t n_test,
                std::uint64_t seed);

/// generate() with an explicit bound on the number of attempts (>= 1) instead of the
/// default above; the same attempts give the same examples (attempt a is the same tree
/// whatever the bound). Throws as generate() does, and for max_attempts < 1.
Splits generate(const GeneratorConfig& config, std::int64_t n_train, std::int64_t n_val, std::int64_t n_test,
                std::uint64_t seed, std::int64_t max_attempts);

/// The value 0-9 of an expression in either text form (parentheses are ignored).
/// MIN and MAX as usual; SM = sum mod 10; MED = floor of the median (for an even count,
/// floor((a + b) / 2) of the two middle values); a bare digit is its own value. Operators
/// may have any number >= 1 of arguments. Tokens are separated by ASCII whitespace.
/// Test vectors (datasets.md): [MED 1 2 ] = 1; [MED 3 4 6 9 ] = 5; [MED 2 3 7 ] = 3;
/// [SM 9 9 9 ] = 7; [MAX 2 9 [MIN 4 7 ] 0 ] = 9.
/// Throws hkt::Error naming the token position for: an unknown token, a "]" with no open
/// operator or an operator never closed (unbalanced brackets), a ")" with no open "(" or
/// an unclosed "(" (unbalanced parentheses), an operator with no arguments, an empty
/// expression, or more than one top-level expression (e.g. "1 2").
int evaluate(const std::string& expression);

/// evaluate() with error messages prefixed by `where` (e.g. "file.tsv:17").
int evaluate(const std::string& expression, const std::string& where);

/// The fixed vocabulary, token id -> symbol (16 entries):
///   0 "<pad>", 1..10 the digits "0".."9" (id = digit + 1), 11 "[MIN", 12 "[MAX",
///   13 "[MED", 14 "[SM", 15 "]".
/// ( and ) are not in it: the LRA convention drops them.
const std::vector<std::string>& vocabulary();

/// Token ids of an expression (LRA convention): split at ASCII whitespace, drop "(" and
/// ")", map every other token to its vocabulary() id. Returns uint16 ids in 1..15, one
/// per symbol, in order. Does not check the bracket structure (evaluate() does).
/// Throws hkt::Error "<where>: unknown token '<t>' (token <i>)" for anything else
/// (i counts whitespace-separated tokens from 1, parentheses included).
std::vector<std::uint16_t> tokenize(const std::string& expression, const std::string& where);

/// An empty ListOps dataset: name "listops", the given split and max_len, vocab_size 16,
/// pad_token 0, num_classes 10, class_names "0".."9", vocabulary = vocabulary().
Dataset empty_dataset(std::int64_t max_len, const std::string& split);

/// Generated (or any) examples as a Dataset (see empty_dataset) with tokenize()d
/// expressions. Throws hkt::Error naming the example index if an expression is invalid,
/// its label differs from evaluate(), or it has more than max_len tokens.
Dataset to_dataset(const std::vector<Example>& examples, std::int64_t max_len, const std::string& split);

/// Reads an LRA ListOps TSV file: line 1 is the header "Source<TAB>Target", then one
/// example a line, "expression<TAB>label"; lines end in LF or CRLF (LRA's files come from
/// Python's csv.writer, which writes CRLF). Each expression may be in either text form.
/// Returns the dataset (see empty_dataset) in file order; tokens are tokenize()d.
/// Throws hkt::Error "<path>:<line>: <what>" for: a missing or unreadable file, a missing
/// header, a line without exactly 2 tab-separated columns (an empty line included), a
/// label that is not an integer or is outside 0-9, any evaluate() error, a label that
/// differs from the expression's value, an example with more than max_len tokens (never
/// truncated: cutting off closing brackets would change what the label depends on), and
/// a file with no examples. max_len must be >= 1.
Dataset read_lra_tsv(const std::string& path, std::int64_t max_len, const std::string& split);

/// Reads the original 2018 release (e.g. test_d20s.tsv): no header, one example a line,
/// "label<TAB>expression", LF line ends (a CR is an error). Same checks and result as
/// read_lra_tsv.
Dataset read_release(const std::string& path, std::int64_t max_len, const std::string& split);

/// Writes examples as an LRA TSV file exactly as LRA's listops.py does: the header
/// "Source<TAB>Target", then "expression<TAB>label" per example, CRLF line ends (Python
/// csv.writer's default). Validates every example first (expression evaluates to its
/// label and holds no tab, CR or LF), writes to path + ".tmp" and renames it to path, so
/// on any error nothing is written and no partial file is left. Throws hkt::Error naming
/// the example index or the file.
void write_lra_tsv(const std::string& path, const std::vector<Example>& examples);

/// One example of a file as written, with the value its expression actually has.
struct FileExample {
  std::int64_t line;       ///< line number in the file (from 1)
  std::string expression;  ///< as written (either text form)
  int label;               ///< the label column
  int computed;            ///< evaluate(expression)
};

/// Every example of an LRA TSV file (release = false) or of a release-format file
/// (release = true) with its label as written and as computed, so that mismatches can be
/// listed (`hkt data inspect --check-labels`) instead of stopping at the first. Throws
/// hkt::Error "<path>:<line>: <what>" for everything the readers refuse except a label
/// that differs from the expression's value (and it does not check lengths).
std::vector<FileExample> read_examples(const std::string& path, bool release);

}  // namespace hkt::data::listops
