#include "trainer.h"

#include "run_lock.h"

#include "cuda_backend.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <optional>
#include <ostream>
#include <sstream>

#include "io/safetensors.h"
#include "machine.h"
#include "ops.h"
#include "optim/adamw.h"
#include "storage.h"
#include "optim/clip.h"
#include "optim/schedule.h"

namespace hkt {

namespace fs = std::filesystem;
using config::Json;

namespace {

// Number of argmax(logits) == label in a batch; ties go to the lowest class.
std::int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  const auto v = logits.to_vector(), y = labels.to_vector();
  const std::int64_t B = logits.shape()[0], C = logits.shape()[1];
  std::int64_t correct = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < C; ++c)
      if (v[static_cast<std::size_t>(b * C + c)] > v[static_cast<std::size_t>(b * C + best)]) best = c;
    correct += best == static_cast<std::int64_t>(y[static_cast<std::size_t>(b)]);
  }
  return correct;
}

DType config_dtype(const Json& config) {
  const std::string d = config.at("train").at("dtype").get<std::string>();
  check(d == "float32" || d == "float64",
        "config key 'train.dtype' must be \"float32\" or \"float64\", got \"" + d + "\"");
  return d == "float32" ? DType::Float32 : DType::Float64;
}

// Level weights [H][L] of every block, for metrics.jsonl.
Json level_weights(const Classifier& model) {
  Json out = Json::array();
  NoGradGuard no_grad;
  for (const auto& block : model.blocks()) {
    const Tensor a = block->attention().level_weights();
    const auto v = a.to_vector();
    const std::int64_t H = a.shape()[0], L = a.shape()[1];
    Json layer = Json::array();
    for (std::int64_t h = 0; h < H; ++h) {
      Json row = Json::array();
      for (std::int64_t l = 0; l < L; ++l) row.push_back(v[static_cast<std::size_t>(h * L + l)]);
      layer.push_back(row);
    }
    out.push_back(layer);
  }
  return out;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(seconds);
  std::ostringstream os;
  if (s >= 3600) os << s / 3600 << "h";
  if (s >= 60) os << (s / 60) % 60 << "m";
  os << s % 60 << "s";
  return os.str();
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  check(out.good(), path + ": cannot write " + tmp);
  out << text;
  out.close();  // a full disk shows here, when the buffer reaches the file
  std::error_code ec;
  if (!out.fail()) fs::rename(tmp, path, ec);
  if (out.fail() || ec) {
    fs::remove(tmp, ec);  // ours: never leave a partial temporary behind
    throw Error(path + ": write failed (disk full?); " + path + " is unchanged");
  }
}

Evaluation evaluate(const Classifier& model, const data::Dataset& split, std::int64_t batch_size, bool pad_to_longest) {
  NoGradGuard no_grad;
  data::Loader loader(split, batch_size, false, 0, pad_to_longest, model.dtype());
  Generator unused(0);  // no dropout at evaluation
  Evaluation e;
  double loss_sum = 0;
  std::int64_t correct = 0;
  for (std::int64_t b = 0; b < loader.num_batches(); ++b) {
    const data::Batch batch = loader.batch(0, b);
    const Tensor logits = model.forward(batch.tokens, batch.features, batch.mask, false, unused);
    const auto n = static_cast<std::int64_t>(batch.indices.size());
    loss_sum += cross_entropy(logits, batch.labels).item() * static_cast<double>(n);
    correct += count_correct(logits, batch.labels);
    e.examples += n;
  }
  e.accuracy = static_cast<double>(correct) / static_cast<double>(e.examples);
  e.loss = loss_sum / static_cast<double>(e.examples);
  return e;
}

optim::AdamWConfig adamw_config(const Json& config) {
  const auto& tc = config.at("train");
  optim::AdamWConfig oc;
  oc.lr = tc.at("lr").get<double>();
  oc.beta1 = tc.at("beta1").get<double>();
  oc.beta2 = tc.at("beta2").get<double>();
  oc.eps = tc.at("eps").get<double>();
  oc.weight_decay = tc.at("weight_decay").get<double>();
  return oc;
}

optim::ScheduleConfig schedule_config(const Json& config) {
  const auto& tc = config.at("train");
  optim::ScheduleConfig sc;
  sc.kind = tc.at("schedule").get<std::string>();
  sc.base_lr = tc.at("lr").get<double>();
  sc.warmup_steps = tc.at("warmup_steps").get<std::int64_t>();
  sc.total_steps = tc.at("steps").get<std::int64_t>();
  sc.min_lr = tc.at("min_lr").get<double>();
  optim::validate(sc);
  return sc;
}

std::uint64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) : 0;
}

void check_memory_estimate(const Json& config, const std::string& what) {
  const Json &m = config.at("model"), &tc = config.at("train");
  const double T = static_cast<double>(config.at("data").at("max_len").get<std::int64_t>());
  const double B = static_cast<double>(
      std::max(tc.at("batch_size").get<std::int64_t>(), tc.at("eval_batch_size").get<std::int64_t>()));
  const double d = static_cast<double>(m.at("d_model").get<std::int64_t>()),
               F = static_cast<double>(m.at("d_ff").get<std::int64_t>());
  const double layers = static_cast<double>(m.at("n_layers").get<std::int64_t>()),
               H = static_cast<double>(m.at("n_heads").get<std::int64_t>());
  const ClassifierConfig mc = config::model_config(config, 1, 0, 2, 1);  // the enums; sizes are read below
  const bool hkt = mc.attention == AttentionKind::Hkt;
  const double L = hkt ? static_cast<double>(mc.hkt.levels) : 1.0;
  const bool composite = hkt && mc.impl == AttentionImpl::Composite;
  const double elem = tc.at("dtype").get<std::string>() == "float64" ? 8.0 : 4.0;
  // Parameters (position table, 256 token rows, the blocks) with their gradients and two
  // AdamW moments; activations kept for the backward, about 12 d + 2 d_ff numbers per
  // token and layer; the composite attention's T x T score matrices per level.
  const double params = (T + 256.0) * d + layers * (4.0 * d * d + 2.0 * d * F);
  const double param_bytes = 4.0 * elem * params;
  const double act_bytes = elem * B * T * (layers * (12.0 * d + 2.0 * F) + d);
  const double score_bytes = composite ? elem * B * H * T * T * (L + 2.0) * layers : 0.0;
  const double total = param_bytes + act_bytes + score_bytes;
  const auto machine = static_cast<double>(physical_memory_bytes());
  if (machine <= 0 || total <= machine) return;
  const auto gib = [](double bytes) {
    std::ostringstream s;
    s << std::setprecision(3) << bytes / double(1ULL << 30) << " GiB";
    return s.str();
  };
  throw Error(what + ": this config needs about " + gib(total) +
              " of memory (data.max_len = " + std::to_string(static_cast<std::int64_t>(T)) + ", batch size " +
              std::to_string(static_cast<std::int64_t>(B)) + ": parameters and optimizer " + gib(param_bytes) +
              ", activations " + gib(act_bytes) +
              (composite ? ", composite attention scores " + gib(score_bytes) : std::string()) +
              "), more than this machine's " + gib(machine) + "; lower data.max_len or train.batch_size" +
              (composite ? " (or use model.hkt.impl = fused)" : ""));
}

std::unique_ptr<Classifier> build_model(const Json& config, const data::Dataset& train) {
  const ClassifierConfig mc =
      config::model_config(config, train.feature_mode() ? 0 : train.vocab_size, train.num_features, train.num_classes,
                           config.at("data").at("max_len").get<std::int64_t>());
  Generator gen(config.at("train").at("seed").get<std::uint64_t>());
  return std::make_unique<Classifier>(mc, gen, config_dtype(config));
}

namespace {
std::map<std::string, std::string> model_sizes(const Classifier& model);
}  // namespace

void save_checkpoint(const std::string& path, const Classifier& model,
                     const std::vector<std::pair<std::string, Tensor>>& extra,
                     const std::map<std::string, std::string>& metadata) {
  auto tensors = model.named_parameters();
  for (auto& [name, t] : tensors) t = t.detach().to(Device::CPU);  // checkpoints are device-independent
  tensors.insert(tensors.end(), extra.begin(), extra.end());
  auto all_metadata = model_sizes(model);
  all_metadata.insert(metadata.begin(), metadata.end());
  safetensors::save(path, tensors, all_metadata);
}

namespace {
// The model's sizes, stored in every checkpoint so that a model can be rebuilt from the
// config and the checkpoint alone (hkt predict).
std::map<std::string, std::string> model_sizes(const Classifier& model) {
  const ClassifierConfig& c = model.config();
  return {{"vocab_size", std::to_string(c.vocab_size)},
          {"num_features", std::to_string(c.num_features)},
          {"num_classes", std::to_string(c.num_classes)},
          {"max_len", std::to_string(c.max_len)}};
}
}  // namespace

std::unique_ptr<Classifier> load_model(const Json& config, const std::string& checkpoint_path) {
  const auto file = safetensors::load(checkpoint_path);
  auto size = [&](const std::string& key) {
    check(file.metadata.count(key) == 1,
          checkpoint_path + ": no metadata '" + key + "' (not a checkpoint written by hkt train)");
    try {
      return std::stoll(file.metadata.at(key));
    } catch (const std::exception&) {
      throw Error(checkpoint_path + ": metadata '" + key + "' is not an integer");
    }
  };
  const ClassifierConfig mc =
      config::model_config(config, size("vocab_size"), size("num_features"), size("num_classes"), size("max_len"));
  Generator gen(0);  // every parameter is overwritten below
  auto model = std::make_unique<Classifier>(mc, gen, config_dtype(config));
  load_weights(*model, checkpoint_path, /*model_from_metadata=*/true);
  return model;
}

void load_weights(const Classifier& model, const std::string& checkpoint_path, bool model_from_metadata) {
  const auto file = safetensors::load(checkpoint_path);
  safetensors::File weights;
  for (const auto& [name, t] : file.tensors)
    if (name.rfind("optimizer.", 0) != 0) weights.tensors.emplace_back(name, t);
  // A NaN or infinite weight would give null logits and losses downstream; training
  // never writes one (it stops at the first non-finite loss or gradient), so the file is
  // damaged. The one exception is +inf in an AdamW second moment (exp_avg_sq), which
  // training does write when a finite gradient's square overflows (AdamW::load_state).
  for (const auto& [name, t] : file.tensors) {
    if (t.dtype() != DType::Float32 && t.dtype() != DType::Float64) continue;
    const bool second_moment = name.rfind("optimizer.", 0) == 0 && name.ends_with(".exp_avg_sq");
    const auto values = t.to_vector();
    for (std::size_t i = 0; i < values.size(); ++i)
      check(std::isfinite(values[i]) || (second_moment && values[i] == HUGE_VAL),
            checkpoint_path + ": tensor '" + name + "' holds a non-finite value (" + std::to_string(values[i]) +
                ") at element " + std::to_string(i) + "; the checkpoint is damaged and cannot be used");
  }
  // Parameters on the GPU are loaded into host copies first, then copied up in place.
  auto params = model.named_parameters();
  std::vector<std::pair<std::string, Tensor>> targets;
  for (const auto& [name, p] : params)
    targets.emplace_back(name, p.device() == Device::CPU ? p : Tensor::empty(p.shape(), p.dtype()));
  try {
    safetensors::load_into(weights, targets);
  } catch (const Error& e) {  // the model's sizes (from the metadata or the config) do not match the tensors
    std::string sizes;
    for (const char* key : {"vocab_size", "max_len", "num_classes", "num_features"})
      if (file.metadata.count(key))
        sizes += std::string(sizes.empty() ? "" : ", ") + key + " = " + file.metadata.at(key);
    throw Error(checkpoint_path + ": its tensors do not fit the model built from " +
                (model_from_metadata ? "its metadata (" + sizes + ") and the config"
                                     : "the config (the checkpoint's metadata: " + sizes + ")") +
                ": " + e.what());
  }
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i].second.device() == Device::CUDA)
      cuda::copy_host_to_device(params[i].second.raw_data(), targets[i].second.raw_data(), targets[i].second.nbytes());
}

namespace {

// The files of a run directory (trainer.h).
struct RunPaths {
  std::string dir, config, last, best, metrics, result;
  explicit RunPaths(const std::string& out_dir)
      : dir(out_dir),
        config(out_dir + "/config.json"),
        last(out_dir + "/last.safetensors"),
        best(out_dir + "/best.safetensors"),
        metrics(out_dir + "/metrics.jsonl"),
        result(out_dir + "/result.json") {}
};

// The "train" section's numbers, read once (their checks are in check_train_keys and
// read_settings, in the order a bad config is reported).
struct TrainSettings {
  std::int64_t steps = 0, batch_size = 0, eval_batch = 0, eval_every = 0, log_every = 0, checkpoint_every = 0;
  double clip_norm = 0, label_smoothing = 0;
  std::uint64_t seed = 0;
  bool pad_to_longest = true;
  optim::ScheduleConfig schedule;
};

// The keys checked before anything else is read; sets the OpenMP thread count.
void check_train_keys(const Json& config) {
  const Json& tc = config.at("train");
  const int threads = config::train_threads(config);
  for (const char* key : {"batch_size", "eval_batch_size"})
    check(tc.at(key).get<std::int64_t>() >= 1, std::string("config key 'train.") + key + "' must be >= 1, got " +
                                                   std::to_string(tc.at(key).get<std::int64_t>()));
  config::use_threads(threads);
}

// The first difference between two configs, for an error message: its key as a JSON
// pointer and both values ("absent" where a side lacks the key), e.g.
//   /train/lr: 0.003 in the checkpoint, 0.5 in config.json
// plus ", and N more" when more keys differ. `was` and `now` name the two sides.
std::string describe_difference(const Json& before, const Json& after, const std::string& was, const std::string& now) {
  const Json patch = Json::diff(before, after);  // RFC 6902 operations turning before into after
  if (patch.empty()) return "";
  std::string key = patch.front().at("path").get<std::string>();
  if (key.size() >= 2 && key.compare(key.size() - 2, 2, "/-") == 0) {
    // "/-" ends the path of an element appended to an array (RFC 6901): name its index.
    // (An object key "-" ends the same way, so only where the parent is an array.)
    const Json::json_pointer parent(key.substr(0, key.size() - 2));
    if (after.contains(parent) && after.at(parent).is_array() && before.contains(parent) &&
        before.at(parent).is_array())
      key = key.substr(0, key.size() - 1) + std::to_string(before.at(parent).size());
  }
  const Json::json_pointer pointer(key);
  const auto value = [&](const Json& side) {
    if (!side.contains(pointer)) return std::string("absent");
    std::string text = side.at(pointer).dump();
    if (text.size() <= 120) return text;
    std::size_t cut = 117;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
    return text.substr(0, cut) + "...";
  };
  return key + ": " + value(before) + " in " + was + ", " + value(after) + " in " + now +
         (patch.size() > 1 ? ", and " + std::to_string(patch.size() - 1) + " more" : std::string());
}

// A run resumes the config it was trained with, checked before the data is loaded or the
// thread count set, each refusal naming the first key that differs:
// - the config given must equal the run's config.json with its defaults filled in
//   (`hkt train --resume DIR` reads that file; a caller of train() may pass another);
// - config.json must equal the config last.safetensors was trained with (kept in its
//   metadata as "config" by save_last), so that an edit made there since the checkpoint
//   does not go unnoticed. train.threads may differ (the machine may change; a run is
//   bit-identical for the same thread count). A checkpoint without the key (written
//   before it was added) is not checked.
// Missing files are left to check_run_directory, which names them.
void check_resumed_config(const Json& config, const RunPaths& paths) {
  if (fs::exists(paths.config)) {  // with every default filled in, as hkt train --resume reads it
    const Json run_config = config::merge(config::read_json_file(paths.config), paths.config);
    check(run_config == config, "resume: the config differs from the run's " + paths.config + " (" +
                                    describe_difference(run_config, config, "config.json", "the config given") +
                                    "; resume the same run unchanged)");
  }
  if (!fs::exists(paths.last)) return;
  const auto metadata = safetensors::load_metadata(paths.last);
  const auto it = metadata.find("config");
  if (it == metadata.end()) return;
  Json saved = config::parse_json(it->second, "resume: " + paths.last + ": metadata 'config'");
  check(saved.is_object(), "resume: " + paths.last + ": metadata 'config' is not a config (a JSON object)");
  Json now = config;
  for (Json* c : {&saved, &now})
    if (c->contains("train") && (*c)["train"].is_object()) (*c)["train"].erase("threads");
  const std::string difference = describe_difference(saved, now, "the checkpoint", "config.json");
  check(difference.empty(), "resume: " + paths.config + " differs from the config " + paths.last +
                                " was trained with (" + difference +
                                "); a run resumes unchanged: restore config.json, or start a new run with --config");
}

// Checks that out_dir can take this run: with resume, a run to continue (its config was
// checked by check_resumed_config); without, no run there unless overwrite. Returns the
// result of a run that is already finished (resume then has nothing to do), else null.
Json check_run_directory(const RunPaths& paths, bool resume, bool overwrite, std::ostream& progress) {
  check(!(resume && overwrite), "train: resume and overwrite exclude each other");
  if (!resume) {
    check(overwrite || !fs::exists(paths.last),
          paths.dir + " already holds a run (last.safetensors); use --resume, --overwrite or another --out");
    return nullptr;
  }
  check(fs::exists(paths.last), "resume: " + paths.last + " does not exist (nothing to resume)");
  check(fs::exists(paths.config), "resume: " + paths.config + " does not exist");
  if (!fs::exists(paths.result)) return nullptr;
  // A finished run: say so and change nothing (its result.json stays as written).
  progress << "resume: the run in " << paths.dir << " is finished (result.json exists); nothing to do\n";
  return config::read_json_file(paths.result);
}

// The rest of the "train" section, checked; the schedule takes AdamW's learning rate.
TrainSettings read_settings(const Json& config) {
  const Json& tc = config.at("train");
  TrainSettings s;
  s.schedule = schedule_config(config);
  s.steps = s.schedule.total_steps;
  s.batch_size = tc.at("batch_size").get<std::int64_t>();
  s.eval_batch = tc.at("eval_batch_size").get<std::int64_t>();
  s.eval_every = tc.at("eval_every").get<std::int64_t>();
  s.log_every = tc.at("log_every").get<std::int64_t>();
  s.checkpoint_every = tc.at("checkpoint_every").get<std::int64_t>();
  check(s.steps >= 1, "config key 'train.steps' must be >= 1");
  check(s.eval_every >= 1 && s.log_every >= 1 && s.checkpoint_every >= 1,
        "config keys 'train.eval_every', 'log_every', 'checkpoint_every' must be >= 1");
  s.clip_norm = tc.at("clip_norm").get<double>();
  s.label_smoothing = tc.at("label_smoothing").get<double>();
  s.seed = tc.at("seed").get<std::uint64_t>();
  s.pad_to_longest = tc.at("pad_to_longest").get<bool>();
  return s;
}

// The training-set statistics of the steps since the last log line.
struct Window {
  double loss = 0, tokens = 0, seconds = 0;
  std::int64_t correct = 0, examples = 0, steps = 0;
};

// Where a run stands; everything here is checkpointed, so a resumed run continues
// exactly (numbers with 17 significant digits, which read back exactly).
struct RunState {
  std::int64_t step = 0, best_step = 0;
  double best_val = -1.0, train_seconds = 0.0;
  Window window;
  std::uint64_t dropout_offset = 0;

  std::map<std::string, std::string> metadata() const {
    auto exact = [](double v) {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", v);
      return std::string(buf);
    };
    return {{"step", std::to_string(step)},
            {"dropout_offset", std::to_string(dropout_offset)},
            {"best_val_accuracy", exact(best_val)},
            {"best_step", std::to_string(best_step)},
            {"train_seconds", exact(train_seconds)},
            {"window_loss", exact(window.loss)},
            {"window_tokens", exact(window.tokens)},
            {"window_seconds", exact(window.seconds)},
            {"window_correct", std::to_string(window.correct)},
            {"window_examples", std::to_string(window.examples)},
            {"window_steps", std::to_string(window.steps)},
            {"format", "hkt-checkpoint-1"}};
  }

  // The state saved in a checkpoint's metadata; throws naming the file and key when one
  // is missing or not a number.
  static RunState from_metadata(const std::map<std::string, std::string>& m, const std::string& path,
                                std::int64_t steps) {
    auto get = [&](const std::string& k) -> double {
      check(m.count(k) == 1, "resume: " + path + " has no metadata '" + k + "'");
      const std::string& text = m.at(k);
      std::size_t used = 0;
      double v = 0;
      try {
        v = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      check(used == text.size() && !text.empty() && std::isfinite(v) && v >= -1,
            "resume: " + path + ": metadata '" + k + "' = '" + text + "' is not a valid number");
      return v;
    };
    RunState r;
    r.step = static_cast<std::int64_t>(get("step"));
    check(r.step >= 1 && r.step <= steps,
          "resume: " + path + ": step " + std::to_string(r.step) + " is outside 1.." + std::to_string(steps));
    r.dropout_offset = static_cast<std::uint64_t>(get("dropout_offset"));
    r.best_val = get("best_val_accuracy");
    r.best_step = static_cast<std::int64_t>(get("best_step"));
    r.train_seconds = get("train_seconds");
    r.window.loss = get("window_loss");
    r.window.tokens = get("window_tokens");
    r.window.seconds = get("window_seconds");
    r.window.correct = static_cast<std::int64_t>(get("window_correct"));
    r.window.examples = static_cast<std::int64_t>(get("window_examples"));
    r.window.steps = static_cast<std::int64_t>(get("window_steps"));
    return r;
  }
};

// Keeps the lines of metrics.jsonl up to `step` (the steps after a checkpoint run again
// on resume); a line cut short by the interruption is dropped with a warning.
void truncate_metrics(const std::string& path, std::int64_t step, std::ostream& progress) {
  std::ifstream in(path);
  std::string line, kept;
  std::int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    try {
      if (Json::parse(line).at("step").get<std::int64_t>() <= step) kept += line + "\n";
    } catch (const Json::exception&) {
      progress << "warning: " << path << ":" << line_no << ": dropped a partial line\n";
    }
  }
  write_file_atomic(path, kept);
}

// The model moved to `device`, then its parameters: the optimizer that takes them keeps
// its moments beside them, so the move comes first.
std::vector<std::pair<std::string, Tensor>> parameters_on(Classifier& model, Device device) {
  model.to(device);
  return model.named_parameters();
}

// A run being trained: the data, model and optimizer of one config, its files and state.
class Run {
 public:
  Run(const Json& config, const TrainOptions& options, const RunPaths& paths, TaskData task)
      : config_(config),
        options_(options),
        paths_(paths),
        progress_(*options.progress),
        task_(std::move(task)),
        model_(build_model(config, task_.train)),
        optimizer_(parameters_on(*model_, options.device), adamw_config(config)),
        s_(read_settings(config)),
        loader_(task_.train, s_.batch_size, true, s_.seed, s_.pad_to_longest, model_->dtype()),
        dropout_gen_(s_.seed ^ 0xD1B54A32D192ED03ULL) {  // dropout's own stream, apart from the initialisation's
    for (const auto& [n, p] : model_->named_parameters()) params_.push_back(p);
  }

  // Creates the run directory (or takes over the one resumed), then trains to the end
  // or to options.stop_after. Returns result.json's content (empty when stopped early).
  Json train() {
    fs::create_directories(paths_.dir);
    lock_.emplace(paths_.dir, options_.resume ? "hkt train --resume" : "hkt train");  // one writer per run directory
    if (options_.overwrite)
      for (const char* f : {"metrics.jsonl", "best.safetensors", "last.safetensors", "result.json"})
        fs::remove(fs::path(paths_.dir) / f);
    if (options_.resume)
      restore();
    else
      write_file_atomic(paths_.config, config_.dump(2) + "\n");
    last_saved_step_ = options_.resume ? state_.step : 0;
    metrics_.open(paths_.metrics, std::ios::app);
    check(metrics_.good(), paths_.metrics + ": cannot write");

    reset_peak_cpu_memory();  // result.json reports the peak of the engine's tensors while training
    run_start_ = std::chrono::steady_clock::now();
    first_step_ = state_.step;
    while (state_.step < s_.steps) {
      const std::int64_t step = ++state_.step;
      const Step done = train_step(step);  // its tensors stay alive to the end of the iteration
      if (step % s_.log_every == 0 || step == s_.steps) log_window(done.lr);
      if (step % s_.eval_every == 0 || step == s_.steps) validate();
      if (step % s_.checkpoint_every == 0 || step == s_.steps || step == options_.stop_after) save_last();
      if (step == options_.stop_after && step < s_.steps) {
        progress_ << "stopped after step " << step << " (resume with --resume " << paths_.dir << ")\n";
        return Json::object();
      }
    }
    return finish();
  }

 private:
  // Loads last.safetensors: weights, optimizer state and the run's state.
  void restore() {
    const auto file = safetensors::load(paths_.last);
    load_weights(*model_, paths_.last);
    std::vector<std::pair<std::string, Tensor>> state;
    for (const auto& [name, t] : file.tensors)
      if (name.rfind("optimizer.", 0) == 0) state.emplace_back(name.substr(10), t);
    optimizer_.load_state(state);
    state_ = RunState::from_metadata(file.metadata, paths_.last, s_.steps);
    // A stop at or before the checkpoint's step would never be reached: the run would go
    // on to its end instead. Checked here, where the step has been read and validated,
    // before anything in the run directory changes.
    check(options_.stop_after == 0 || options_.stop_after > state_.step,
          "resume: --stop-after " + std::to_string(options_.stop_after) + " is not after step " +
              std::to_string(state_.step) + ", where " + paths_.last + " stands (give a later step, or 0)");
    dropout_gen_.advance(state_.dropout_offset);
    truncate_metrics(paths_.metrics, state_.step, progress_);
    progress_ << "resumed " << paths_.dir << " at step " << state_.step << "\n";
  }

  // One optimizer step's batch, logits and loss, and the learning rate it used. The loop
  // keeps it until its logging, validation and checkpoint are done, so the peak memory
  // result.json reports counts them alongside.
  struct Step {
    data::Batch batch;
    Tensor logits, loss;
    double lr = 0;
  };

  // One optimizer step on the step-th batch: forward, loss, backward, clipping, AdamW.
  // Adds the batch to the window. On the GPU nothing of the step is read back here: its
  // loss, accuracy and gradient norm wait in unread_ for settle(), so the host queues the
  // next step's work while the device runs this one's.
  Step train_step(std::int64_t step) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::int64_t waits_before = cuda::host_waits();
    const std::int64_t nb = loader_.num_batches();
    Step done;
    done.batch = loader_.batch((step - 1) / nb, (step - 1) % nb);
    const data::Batch& batch = done.batch;
    done.logits = model_->forward(batch.tokens, batch.features, batch.mask, true, dropout_gen_);
    done.loss = cross_entropy(done.logits, batch.labels, -100, s_.label_smoothing);
    const Tensor& loss = done.loss;
    if (!deferred_) check_loss(step, loss.item());  // before the backward, which a non-finite loss would spoil
    loss.backward();
    Tensor grad_sum_sq;  // on the GPU: the gradients' sum of squares, read by settle()
    try {
      if (deferred_)
        grad_sum_sq = optim::clip_grad_norm_on_device(params_, s_.clip_norm);
      else
        grad_norm_ = optim::clip_grad_norm(params_, s_.clip_norm);
    } catch (const Error& e) {
      throw Error("step " + std::to_string(step) + ": " + e.what() + "; training stopped (" + checkpoint_note() + ")");
    }
    done.lr = optim::learning_rate(s_.schedule, step);
    optimizer_.step(done.lr);
    optimizer_.zero_grad();
    unread_.push_back({step, loss.detach(), done.logits.detach(), batch.labels, grad_sum_sq});
    if (!deferred_) settle();  // the CPU reads its step at once, inside the step's time
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Window& w = state_.window;
    state_.train_seconds += seconds;
    w.seconds += seconds;
    w.examples += static_cast<std::int64_t>(batch.indices.size());
    w.tokens += sum(batch.lengths.to(DType::Float64)).item();
    ++w.steps;
    window_host_waits_ += cuda::host_waits() - waits_before;
    // The GPU reads at most kMaxUnread steps late even with a long log_every: that bounds
    // the tensors kept in unread_ and the steps run after a non-finite one before the run
    // stops (settle() times its own wait).
    if (deferred_ && unread_.size() >= kMaxUnread) settle();
    return done;
  }

  // Throws the error of a non-finite loss at `step` (docs/engine.md convention 9).
  void check_loss(std::int64_t step, double loss_value) const {
    if (!std::isfinite(loss_value))
      throw Error("step " + std::to_string(step) + ": the loss is " + format_number(loss_value) +
                  "; training stopped (" + checkpoint_note() + ")");
  }

  // What the host reads of one step: the loss and the accuracy of the window, and the
  // gradient norm (the GPU's sum of squares; undefined on the CPU, where clip_grad_norm
  // returned the norm at once).
  struct Unread {
    std::int64_t step;
    Tensor loss, logits, labels, grad_sum_sq;
  };

  // Reads every step not yet read, in step order, into the window: its loss (a non-finite
  // one stops the run, naming its step), its correct predictions and its gradient norm (a
  // non-finite norm too). On the CPU each step is read as it ends; on the GPU before each
  // log line, validation and checkpoint, so those never see a step whose loss is unread.
  // The time the host waits here for the device's work counts as training time.
  void settle() {
    const auto t0 = std::chrono::steady_clock::now();
    Window& w = state_.window;
    for (const Unread& u : unread_) {
      const double loss_value = u.loss.item();
      check_loss(u.step, loss_value);
      if (u.grad_sum_sq.defined()) {
        const double norm = std::sqrt(u.grad_sum_sq.item());
        if (!std::isfinite(norm))
          throw Error("step " + std::to_string(u.step) + ": clip_grad_norm: the gradient norm is " +
                      format_number(norm) +
                      " (a gradient holds a non-finite value, or the sum of their squares overflows float64; on the "
                      "GPU the norm is read at the next log step, validation or checkpoint, so the parameter is not "
                      "named); training stopped (" +
                      checkpoint_note() + ")");
        grad_norm_ = norm;
      }
      w.loss += loss_value;
      w.correct += count_correct(u.logits, u.labels);
    }
    unread_.clear();
    if (deferred_) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      state_.train_seconds += seconds;
      w.seconds += seconds;
    }
  }

  // A training line in metrics.jsonl and on the progress stream; empties the window.
  // GPU runs add "host_waits": how often the host waited for the device during the
  // window's steps (cuda::host_waits; the reads of settle() and of this line excluded).
  void log_window(double lr) {
    settle();
    const std::int64_t step = state_.step, nb = loader_.num_batches();
    Window& w = state_.window;
    Json line = {{"step", step},
                 {"epoch", (step - 1) / nb},
                 {"lr", lr},
                 {"loss", w.loss / static_cast<double>(w.steps)},
                 {"accuracy", static_cast<double>(w.correct) / static_cast<double>(w.examples)},
                 {"grad_norm", grad_norm_},
                 {"tokens_per_s", w.tokens / w.seconds},
                 {"level_weights", level_weights(*model_)}};
    if (options_.device == Device::CUDA) line["host_waits"] = window_host_waits_;
    window_host_waits_ = 0;
    write_metrics(line);
    load_max_ = std::max(load_max_, load_average_1min());
    const double done = static_cast<double>(step - first_step_), left = static_cast<double>(s_.steps - step);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start_).count();
    std::ostringstream msg;
    msg << "step " << step << "/" << s_.steps << " epoch " << (step - 1) / nb << " loss " << std::fixed
        << std::setprecision(4) << line["loss"].get<double>() << " acc " << std::setprecision(3)
        << line["accuracy"].get<double>() << " " << std::setprecision(0) << w.tokens / w.seconds << " tok/s ETA "
        << format_duration(elapsed / done * left);
    if (options_.progress_is_terminal) {
      const int width = 24,
                filled = static_cast<int>(width * static_cast<double>(step) / static_cast<double>(s_.steps));
      progress_ << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
                << std::string(static_cast<std::size_t>(width - filled), ' ') << "] " << msg.str() << "   "
                << std::flush;
    } else {
      progress_ << msg.str() << "\n" << std::flush;
    }
    w = Window{};
  }

  // Evaluates the validation split; a new best is saved to best.safetensors.
  void validate() {
    settle();
    const std::int64_t step = state_.step;
    const Evaluation val = evaluate(*model_, task_.val, s_.eval_batch, s_.pad_to_longest);
    const bool better = val.accuracy > state_.best_val;
    if (better) {
      state_.best_val = val.accuracy;
      state_.best_step = step;
      save_checkpoint(paths_.best, *model_, {}, {{"step", std::to_string(step)}, {"format", "hkt-weights-1"}});
    }
    Json line = {{"step", step},
                 {"val_accuracy", val.accuracy},
                 {"val_loss", val.loss},
                 {"best", better},
                 {"level_weights", level_weights(*model_)}};
    if (options_.eval_metrics) {
      const Json extra = options_.eval_metrics(*model_);
      check(extra.is_object(), "train: TrainOptions::eval_metrics must return a JSON object");
      for (const auto& [key, value] : extra.items()) {
        check(!line.contains(key),
              "train: TrainOptions::eval_metrics returned '" + key + "', a key of the line itself");
        line[key] = value;
      }
    }
    write_metrics(line);
    if (options_.progress_is_terminal) progress_ << "\n";
    progress_ << "step " << step << ": validation accuracy " << std::fixed << std::setprecision(4) << val.accuracy
              << (better ? " (best)" : "") << "\n"
              << std::flush;
  }

  // Appends one line to metrics.jsonl; a failed write stops the run, naming the
  // checkpoint that is left.
  void write_metrics(const Json& line) {
    metrics_ << line.dump() << "\n" << std::flush;
    check(metrics_.good(),
          paths_.metrics + ": write failed at step " + std::to_string(state_.step) + " (disk full?); training stopped" +
              (last_saved_step_ > 0 ? ", " + paths_.last + " holds step " + std::to_string(last_saved_step_)
                                    : std::string(" before its first checkpoint")));
  }

  // Writes last.safetensors: weights, optimizer state and RunState (atomically, so the
  // previous checkpoint stays intact when this one fails).
  void save_last() {
    settle();  // a checkpoint never holds weights from after an unread non-finite step
    std::vector<std::pair<std::string, Tensor>> state;
    for (auto& [name, t] : optimizer_.state()) state.emplace_back("optimizer." + name, t);
    state_.dropout_offset = dropout_gen_.offset();
    try {
      auto metadata = state_.metadata();
      metadata["config"] = config_.dump();  // what restore() checks config.json against
      save_checkpoint(paths_.last, *model_, state, metadata);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (at step " + std::to_string(state_.step) + "; training stopped, " +
                  (last_saved_step_ > 0 ? paths_.last + " still holds step " + std::to_string(last_saved_step_)
                                        : std::string("before its first checkpoint")) +
                  ")");
    }
    last_saved_step_ = state_.step;
  }

  std::string checkpoint_note() const {
    return last_saved_step_ > 0
               ? "the last checkpoint, " + paths_.last + ", is from step " + std::to_string(last_saved_step_)
               : std::string("no checkpoint was written yet");
  }

  // Evaluates test once, from the best checkpoint reloaded from disk (which must
  // reproduce the validation accuracy it was chosen for, exactly); writes result.json.
  Json finish() {
    const double peak_tensor_bytes = static_cast<double>(cpu_memory_stats().peak_bytes);
    auto best = build_model(config_, task_.train);
    load_weights(*best, paths_.best);
    best->to(options_.device);
    const Evaluation val = evaluate(*best, task_.val, s_.eval_batch, s_.pad_to_longest);
    check(val.accuracy == state_.best_val, "the reloaded best checkpoint gives validation accuracy " +
                                               std::to_string(val.accuracy) + ", not the " +
                                               std::to_string(state_.best_val) + " it was saved with");
    const Evaluation test = evaluate(*best, task_.test, s_.eval_batch, s_.pad_to_longest);
    Json extra = Json::object();
    for (const auto& d : task_.extra_tests) {
      const Evaluation e = evaluate(*best, d, s_.eval_batch, s_.pad_to_longest);
      extra[d.name] = {{"accuracy", e.accuracy}, {"examples", e.examples}, {"chance_level", d.chance_level()}};
    }
    const Device device = options_.device;
    const Json result = {
        {"task", config_.at("data").at("task")},
        {"attention", config_.at("model").at("attention")},
        {"best_val_accuracy", state_.best_val},
        {"best_step", state_.best_step},
        {"test_accuracy", test.accuracy},
        {"test_examples", test.examples},
        {"chance_level", task_.test.chance_level()},
        {"extra_tests", extra},
        {"parameter_count", model_->parameter_count()},
        {"steps", s_.steps},
        {"time_per_step_ms", 1000.0 * state_.train_seconds / static_cast<double>(s_.steps)},
        {"train_seconds", state_.train_seconds},
        {"peak_tensor_bytes", peak_tensor_bytes},
        {"device", device_name(device)},
        {"peak_cuda_tensor_bytes", device == Device::CUDA ? cuda::memory_stats().peak_allocated_bytes : 0},
        {"machine", {{"cpu", cpu_model()}, {"threads", omp_get_max_threads()}, {"load_average_max", load_max_}}}};
    write_file_atomic(paths_.result, result.dump(2) + "\n");
    return result;
  }

  const Json& config_;
  const TrainOptions& options_;
  const RunPaths paths_;
  std::ostream& progress_;
  TaskData task_;
  std::unique_ptr<Classifier> model_;
  optim::AdamW optimizer_;
  TrainSettings s_;
  data::Loader loader_;
  Generator dropout_gen_;
  std::vector<Tensor> params_;
  RunState state_;
  std::optional<RunLock> lock_;  // before metrics_: destroyed after it, so the file closes under the lock
  std::ofstream metrics_;
  std::int64_t last_saved_step_ = 0, first_step_ = 0;
  // GPU runs read each step's numbers back only in settle() (train_step says why).
  const bool deferred_ = options_.device == Device::CUDA;
  static constexpr std::size_t kMaxUnread = 64;
  std::vector<Unread> unread_;
  std::int64_t window_host_waits_ = 0;  // host waits inside this window's steps
  double grad_norm_ = 0;
  double load_max_ = -1;  // the highest 1-minute load average seen at a log step (machine.h)
  std::chrono::steady_clock::time_point run_start_;
};

}  // namespace

Json train(const Json& config, const TrainOptions& options) {
  check(options.progress != nullptr, "train: options.progress is null");
  if (options.device == Device::CUDA) cuda::require_device("train --device cuda");
  const RunPaths paths(options.out_dir);
  if (options.resume) check_resumed_config(config, paths);  // before anything else is read or printed
  const Json& tc = config.at("train");
  check_train_keys(config);
  check_memory_estimate(config, "train");  // before the data (it parses the model's enums too)
  if (Json finished = check_run_directory(paths, options.resume, options.overwrite, *options.progress);
      !finished.is_null())
    return finished;
  check(tc.at("seed").get<std::int64_t>() >= 0, "config key 'train.seed' must be >= 0");
  check(tc.at("clip_norm").get<double>() >= 0, "config key 'train.clip_norm' must be >= 0 (0: no clipping)");
  // Everything that can be refused (data, model, optimizer, schedule) is checked before
  // the run directory is touched, so a bad config never harms an existing run.
  TaskData task = load_task(config);
  for (const auto& w : task.warnings) *options.progress << "warning: " << w << "\n";
  Run run(config, options, paths, std::move(task));
  return run.train();
}

}  // namespace hkt
