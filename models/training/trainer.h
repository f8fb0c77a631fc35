// trainer.h: training and evaluation of a classifier from a config (docs/config.md),
// with the run directory of docs/experiments.md:
//   config.json     the fully resolved config
//   metrics.jsonl   one JSON object per log step (step, epoch, lr, loss, accuracy, grad_norm,
//                   tokens_per_s, level_weights [layer][head][level]) and per evaluation
//                   (val_accuracy, val_loss, best, level_weights, and what
//                   TrainOptions::eval_metrics adds: `hkt train` and `hkt experiment`
//                   add m_sym_share, theory::eval_metrics)
//   last.safetensors  weights + optimizer state + step (for --resume), atomically replaced
//   best.safetensors  the weights of the best validation accuracy (loadable by PyTorch)
//   result.json     best validation accuracy and its step, test accuracy of the reloaded
//                   best checkpoint, chance level, parameter count, time per step, and
//                   the machine it was timed on: {"cpu", "threads", "load_average_max":
//                   the highest 1-minute load average seen at a log step (machine.h) of
//                   the last process that trained it, -1 when unknown}
// Determinism: the same config, seed and thread count give bit-identical metrics, and a
// resumed run continues exactly as an uninterrupted one (the data order is a function of
// (seed, epoch), dropout draws from a Generator whose offset is checkpointed).
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>

#include "classifier.h"
#include "config.h"
#include "dataset.h"
#include "optim/adamw.h"
#include "optim/schedule.h"
#include "task.h"

namespace hkt {

/// Accuracy and mean loss of a model on a split (every example once, no dropout).
struct Evaluation {
  double accuracy = 0;
  double loss = 0;
  std::int64_t examples = 0;
};
Evaluation evaluate(const Classifier& model, const data::Dataset& split, std::int64_t batch_size,
                    bool pad_to_longest = true);

/// Builds the classifier a config describes for the data of `task` (dims from the train
/// split), initialised from Generator(train.seed).
std::unique_ptr<Classifier> build_model(const config::Json& config, const data::Dataset& train);

/// This machine's physical memory in bytes (0 when unknown).
std::uint64_t physical_memory_bytes();
/// Refuses (hkt::Error, prefixed with `what`) a config whose rough memory need exceeds
/// the machine's memory: parameters with gradients and AdamW moments, the activations a
/// training step keeps (about 12 d_model + 2 d_ff numbers per token and layer), and the
/// composite attention's T x T scores; the message gives the estimate and the settings to
/// lower. Not a precise budget: it stops a run that could never fit before it starts.
void check_memory_estimate(const config::Json& config, const std::string& what);

/// The AdamW hyperparameters of config's "train" section (lr, beta1, beta2, eps,
/// weight_decay); AdamW's constructor checks their ranges.
optim::AdamWConfig adamw_config(const config::Json& config);

/// The learning-rate schedule of config's "train" section (schedule, lr, warmup_steps,
/// steps, min_lr). Throws hkt::Error naming the setting that is out of range
/// (optim::validate).
optim::ScheduleConfig schedule_config(const config::Json& config);

/// How train() runs a config: where, from where, and what it reports.
struct TrainOptions {
  std::string out_dir;  ///< the run directory (created)
  /// Continue from out_dir/last.safetensors (its config.json must match the config).
  bool resume = false;
  /// Replace the files of a run already in out_dir, but only once the config, data and
  /// model have been checked. Excludes resume.
  bool overwrite = false;
  std::ostream* progress = nullptr;   ///< receives the progress lines (required)
  bool progress_is_terminal = false;  ///< one self-rewriting bar instead of a line per log
  /// > 0: end the run after that step (checkpointed), as if it had been interrupted
  /// there: for splitting a long run across sessions, and for the resume tests.
  std::int64_t stop_after = 0;
  /// Where the model trains (Device::CUDA: every op on the CUDA backend).
  Device device = Device::CPU;
  /// Extra fields for each validation line of metrics.jsonl, computed from the model
  /// (the commands pass theory::eval_metrics; empty: none). Must return a JSON object
  /// whose keys are not the line's own (step, val_accuracy, val_loss, best,
  /// level_weights); train() throws hkt::Error otherwise.
  std::function<config::Json(const Classifier&)> eval_metrics;
};

/// Trains as `config` says, writing the run directory options.out_dir (above). Returns
/// result.json's content, or an empty object when options.stop_after ended the run
/// early (no result.json is written then). With resume, a run that is already finished
/// is left as it is and its result returned.
/// Throws hkt::Error for a bad config, data or run directory (before the directory is
/// touched), and stops with an error naming the step when the loss or a gradient becomes
/// non-finite (the last good checkpoint stays as it was). With Device::CUDA and no
/// usable CUDA device, throws naming why. Checkpoints hold CPU tensors either way, so a
/// run can resume, and a checkpoint be evaluated, on either device.
config::Json train(const config::Json& config, const TrainOptions& options);

/// Builds the classifier of `config` with the sizes stored in the checkpoint's metadata
/// (vocabulary, features, classes, max_len) and loads its weights: no data needed.
/// Throws hkt::Error naming the checkpoint for a missing or malformed entry.
std::unique_ptr<Classifier> load_model(const config::Json& config, const std::string& checkpoint_path);

/// Loads a checkpoint's weights into `model` (by name, shapes must match). Throws
/// hkt::Error naming the file for a non-finite weight, and for tensors that do not fit
/// the model, with the checkpoint's size metadata; model_from_metadata says whether the
/// model was built from that metadata (load_model) or from the run's config (resume,
/// eval), so that the message names the right source.
void load_weights(const Classifier& model, const std::string& checkpoint_path, bool model_from_metadata = false);

/// Writes text to path atomically: path + ".tmp" first, then a rename, so a reader never
/// sees a half-written file. Throws hkt::Error naming the path when it cannot be written
/// (also when the rename fails).
void write_file_atomic(const std::string& path, const std::string& text);

/// Writes the weights of `model` (and, when given, optimizer state and metadata) to
/// `path` atomically (temporary file, then rename).
void save_checkpoint(const std::string& path, const Classifier& model,
                     const std::vector<std::pair<std::string, Tensor>>& extra,
                     const std::map<std::string, std::string>& metadata);

}  // namespace hkt
