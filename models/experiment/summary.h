// summary.h: the table of an experiment (docs/experiments.md, "Outputs") from its
// finished runs: per variant, mean +- sample standard deviation over seeds, ratios to
// the baseline, paired per-seed differences with a t test and a confidence interval,
// the learned level weights, and the Markdown page that shows them.
#pragma once

#include <string>
#include <vector>

#include "config.h"

namespace hkt {

/// One model variant: a name (a directory name) and the config keys it changes.
struct Variant {
  std::string name;
  std::vector<std::string> sets;  ///< "key=value" items, applied like --set
};

/// One finished run, as the summary needs it.
struct RunRecord {
  std::string variant;
  std::int64_t seed = 0;
  std::string dir;      ///< relative to the experiment directory
  config::Json config;  ///< the run's resolved config
  config::Json result;  ///< its result.json
  /// The level weights alpha [layer][head][level] of the last line of its metrics.jsonl
  /// that has them (the end of training), or null.
  config::Json final_level_weights;
};

/// The summary of finished runs (summary.json): per variant, in the order of `variants`,
/// n, mean and sample standard deviation (n - 1 in the denominator; 0 for n = 1) of
/// best validation accuracy, test accuracy and every extra test's accuracy; chance
/// level; parameter count; mean time per step, with the CPUs the runs timed on and how
/// many ran beside other work (result.json's "machine", trainer.h); peak tensor memory;
/// the mean final level weights [layer][head][level]; time and counted score-FLOP ratios
/// to the baseline variant (experiment.baseline, when present); the paired per-seed
/// differences to the baseline ("differences_to_baseline") and to each variant of
/// experiment.compare_to ("differences_to": {name: ...}), on the test split and every
/// extra test, over the seeds both have in ascending order: mean, sample std and, for
/// n >= 2 with std > 0, a two-sided 95 % paired t test (Student's t table) and the 95 %
/// confidence interval of the mean, mean +- t_crit std / sqrt(n); the paper's row
/// (experiment.paper_row). Runs are taken in the order given (run_experiment passes them
/// by seed, then variant), which fixes the order of every sum. "timing" lists the CPUs
/// of the runs that name theirs, and counts the runs beside other work and the runs
/// whose result.json names no machine.
/// Score FLOPs per example are counted at T = data.max_len as sum over layers and levels of
/// 2 H T_l^2 d_h (docs/hkt-attention.md section 5). Accuracies are fractions in [0, 1].
/// Throws hkt::Error for a name in experiment.compare_to that is not a variant.
config::Json summarize(const config::Json& config, const std::vector<Variant>& variants,
                       const std::vector<RunRecord>& runs);

/// summary.md: the summary as a Markdown table (accuracies in percent) with the command
/// line that produced it and, when given, the one that trains every run again from
/// nothing.
std::string summary_markdown(const config::Json& summary, const std::string& command,
                             const std::string& rerun_command = "");

/// The paper's result for a task ("listops", "cifar10", "imdb"; arXiv 2604.08829 as quoted
/// in experiments.md): {"task", "T", "mha": [mean, std], "hkt": [mean, std]} in percent,
/// or null for "" . Throws hkt::Error for another name.
config::Json paper_row(const std::string& name);

}  // namespace hkt
