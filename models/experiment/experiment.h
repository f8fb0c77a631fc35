// experiment.h: `hkt experiment`, the paper's comparison (docs/experiments.md):
// every model variant of a config (at least MHA and HKT) trained for every seed with the
// same data, budget and recipe, then a summary table (mean +- sample std over seeds) and
// plots. Layout of an experiment directory:
//   <variant>/seed-<s>/   one run directory each (trainer.h), reused when finished and
//                         resumed from its last checkpoint when interrupted
//   summary.json          every number of the table, plus every run's result
//   summary.md            the table, the paper's row beside ours, the paired differences
//   attention_maps.json   per-level attention maps of one validation example (seed 0 of
//                         each variant, layer 0, every head)
//   *.png                 plots, when Python with matplotlib is found (tools/plot_experiment.py)
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "config.h"

namespace hkt {

/// One model variant: a name (a directory name) and the config keys it changes.
struct Variant {
  std::string name;
  std::vector<std::string> sets;  ///< "key=value" items, applied like --set
};

/// The variants of config["experiment"]["variants"]. Each entry is
/// {"name": "hkt", "set": {"model.attention": "hkt", ...}}. Throws hkt::Error naming the
/// entry for: a missing or empty name, a name with characters other than letters, digits,
/// '-' and '_' (so it cannot collide with the experiment's files), a repeated name, a "set" that is not an object, a
/// key under "experiment." or "train.seed" (seeds come from the experiment), or no variant at all.
std::vector<Variant> experiment_variants(const config::Json& config);

/// The run config of (variant, seed): the experiment config with the variant's keys and
/// train.seed = seed applied and the "experiment" section reset to its defaults (it does
/// not change training, and a run directory must be resumable by `hkt train --resume`).
/// Throws hkt::Error naming the variant for a key that does not exist or has a wrong type.
config::Json run_config(const config::Json& config, const Variant& variant, std::int64_t seed);

/// One finished run, as the summary needs it.
struct RunRecord {
  std::string variant;
  std::int64_t seed = 0;
  std::string dir;      ///< relative to the experiment directory
  config::Json config;  ///< the run's resolved config
  config::Json result;  ///< its result.json
};

/// The summary of finished runs (summary.json): per variant, in the order of `variants`,
/// n, mean and sample standard deviation (n - 1 in the denominator; 0 for n = 1) of
/// best validation accuracy, test accuracy and every extra test's accuracy; chance
/// level; parameter count; mean time per step; peak tensor memory; time and counted
/// score-FLOP ratios to the baseline variant (experiment.baseline, when present); the
/// paired per-seed differences to the baseline on the test split and every extra test
/// ("differences_to_baseline": mean, sample std and a two-sided 95 % paired t test,
/// Student's t table); the paper's row (experiment.paper_row).
/// Score FLOPs per example are counted at T = data.max_len as sum over layers and levels of
/// 2 H T_l^2 d_h (docs/hkt-attention.md section 5). Accuracies are fractions in [0, 1].
config::Json summarize(const config::Json& config, const std::vector<Variant>& variants,
                       const std::vector<RunRecord>& runs);

/// summary.md: the summary as a Markdown table (accuracies in percent) with the command
/// line that produced it.
std::string summary_markdown(const config::Json& summary, const std::string& command);

/// Runs (or reuses) every (seed, variant) run of `config` in `out_dir`, seeds in order and
/// variants in order within a seed, then writes summary.json, summary.md and
/// attention_maps.json and returns the summary. A run directory that holds a finished run
/// with the same config is reused; one with a checkpoint but no result is resumed; one
/// whose config.json differs is an error naming the directory and the first differing key.
/// Every such refusal, and every variant whose model or schedule cannot be built (the
/// error names the variant), happens before anything is trained or written. OUT/.lock is
/// held while running: a second experiment on the same directory is refused. A
/// malformed result.json is an error naming the file and key. Progress goes to `progress`.
config::Json run_experiment(const config::Json& config, const std::string& out_dir, const std::string& command,
                            std::ostream& progress, bool progress_is_terminal);

/// The paper's result for a task ("listops", "cifar10", "imdb"; arXiv 2604.08829 as quoted
/// in experiments.md): {"task", "T", "mha": [mean, std], "hkt": [mean, std]} in percent,
/// or null for "" . Throws hkt::Error for another name.
config::Json paper_row(const std::string& name);

}  // namespace hkt
