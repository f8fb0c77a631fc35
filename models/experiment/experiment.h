// experiment.h: `hkt experiment`, the paper's comparison (docs/experiments.md):
// every model variant of a config (at least MHA and HKT) trained for every seed with the
// same data, budget and recipe, then a summary table (summary.h) and plots. Layout of an
// experiment directory:
//   <variant>/seed-<s>/   one run directory each (trainer.h). Its record, the files
//                         that are committed, is config.json, metrics.jsonl and
//                         result.json; the checkpoints beside them are optional
//   experiment.json       the experiment config, its seeds those of every record here
//   summary.json          every number of the table, plus every run's result
//   summary.md            the table, the paper's row beside ours, the paired differences
//   attention_maps.json   per-level attention maps of one validation example (the lowest
//                         seed with a best.safetensors of each variant, layer 0, every head)
//   *.png                 plots, when Python with matplotlib is found (tools/plot_experiment.py)
// The summary is always rebuilt from every record in the directory, so seeds and
// variants can be added later, on another machine, without training again what is
// recorded; shards (Shard) and merge_experiments spread one grid over processes or
// machines.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "config.h"
#include "summary.h"

namespace hkt {

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

/// The share of an experiment's runs one process trains: with the runs in plan order
/// (the config's seeds in order, variants in order within a seed), run k belongs to shard
/// k mod count. {0, 1}: every run.
struct Shard {
  std::int64_t index = 0, count = 1;
};

/// "I/N" -> {I, N}, with 0 <= I < N <= 100000. Throws hkt::Error quoting the text.
Shard parse_shard(const std::string& text);

/// The shard of a Slurm job-array task, from the values of SLURM_ARRAY_TASK_ID,
/// SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_MAX (each null when
/// unset): {ID - MIN, COUNT} (MIN taken as 0 when unset), or {0, 1} when ID is unset.
/// Throws hkt::Error naming the variable for a value that is not an integer of at most 9
/// digits, for COUNT outside 1..100000, and for an array whose indices are not MIN,
/// MIN + 1, ..., MIN + COUNT - 1 = MAX (e.g. --array=0-8:2, where shards would be lost).
Shard slurm_shard(const char* task_id, const char* task_count, const char* task_min, const char* task_max);

/// Runs (or reuses; with train_missing false, only reuses) the runs of `config` that
/// belong to `shard` in `out_dir`, in plan order, then writes experiment.json, summary.json, summary.md and
/// attention_maps.json from every finished run in out_dir whose variant is in the config, whatever its seed (a record
/// from an earlier command, another shard or another machine counts as if it had run now; records of variants not in
/// the config are listed in the progress and left out), and returns the summary; summary.json's "missing_runs" lists,
/// per variant of the config, the seeds (the config's and every recorded one) it has no finished run for. Attention
/// maps that cannot be made (no checkpoint, no data) keep the directory's earlier ones, with a note. A run directory
/// that holds a finished run with the same config is reused; one with a checkpoint but no result is resumed. Every run
/// directory of a config variant whose config.json differs from the run config of its (variant, seed) is an error
/// naming the directory and the first differing key; that refusal, a finished run whose result.json or metrics.jsonl is
/// malformed (naming the file), an --out that is a file, a variant with a run left
/// to train here whose model or schedule cannot be built (the error names the variant),
/// and, with train_missing false, an out_dir without a finished run of a config variant,
/// happen before anything is trained or written. OUT/.lock is held while running (the run directories are listed
/// again once it is held): a second experiment or a merge on the same directory is
/// refused. A seed-<s> directory with a leading zero is not a run hkt writes: named in
/// the progress and skipped. With train_missing false nothing is trained or resumed: the
/// summary is rebuilt from the records alone (`hkt experiment --no-train`), and the runs
/// not finished are named in the progress and in "missing_runs". Progress goes to
/// `progress`; `command` is the command line shown in summary.md.
config::Json run_experiment(const config::Json& config, const std::string& out_dir, const std::string& command,
                            std::ostream& progress, bool progress_is_terminal, const Shard& shard = {},
                            bool train_missing = true);

/// Combines experiment directories (the shards of one grid, or runs of other seeds made
/// elsewhere) into `out_dir`: copies the record of every finished run of `sources`
/// (config.json, metrics.jsonl, result.json, and best.safetensors when present) to the
/// same <variant>/seed-<s> there, unless out_dir already holds that run, then rebuilds
/// the summary as run_experiment does, training nothing. Before anything is copied or
/// written it refuses (hkt::Error naming the directory or file): a source that is not a
/// directory, or holds neither a run directory nor an experiment.json (an experiment
/// directory without runs, such as an empty shard, is skipped with a note); an out_dir
/// whose experiment.json names another experiment.name; a record whose variant is not in
/// `config` or whose config differs from the run config of its (variant, seed) (naming
/// the first differing key); a record whose result.json, metrics.jsonl or
/// best.safetensors does not read; and a run directory of out_dir with a last.safetensors
/// but no result.json where a source holds that run finished (finish or delete it
/// first; one without either, like the copy of an interrupted merge, is replaced). Unfinished runs
/// of the sources are listed in the progress and left out. Each copied file is written
/// atomically, result.json last, so an interrupted merge leaves no record that looks
/// finished and is not. Holds OUT/.lock while writing (and plans again once it holds
/// it), and each target run directory's lock while copying into it. Returns the summary.
config::Json merge_experiments(const config::Json& config, const std::vector<std::string>& sources,
                               const std::string& out_dir, const std::string& command, std::ostream& progress);

/// `text` as one word of a POSIX shell: unchanged when it holds only characters no shell
/// treats specially (letters, digits and _ . / , = : @ % + -), else in single quotes, a
/// quote inside written '\''. For the commands summary.md records, which must paste
/// back into a shell, and for the commands hkt runs through std::system.
std::string shell_quote(const std::string& text);

}  // namespace hkt
