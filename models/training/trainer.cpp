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
#include <ostream>
#include <sstream>

#include "io/safetensors.h"
#include "ops.h"
#include "optim/adamw.h"
#include "storage.h"
#include "theory.h"
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
  check(d == "float32" || d == "float64", "config key 'train.dtype' must be \"float32\" or \"float64\", got \"" + d + "\"");
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

// Share of the symmetric part of each bilinear form M_l,h = W_Q,h^(l)T W_K,h^(l)
// (Props. 3.5-3.6, theory.h): ||M^sym||_F / ||M||_F as [layer][head][level], logged at
// every evaluation so that the reciprocal/directional balance can be followed in training
// (the antisymmetric share is sqrt(1 - share^2)).
Json sym_shares(const Classifier& model) {
  Json out = Json::array();
  NoGradGuard no_grad;
  for (const auto& block : model.blocks()) {
    const HierarchicalAttention& attn = block->attention();
    Json layer = Json::array();
    for (std::int64_t h = 0; h < attn.config().n_heads; ++h) {
      Json row = Json::array();
      for (int l = 0; l < attn.config().levels; ++l) row.push_back(theory::decompose(theory::bilinear_form(attn, l, h)).sym_share);
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

std::uint64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) : 0;
}

void check_memory_estimate(const Json& config, const std::string& what) {
  const Json &m = config.at("model"), &tc = config.at("train");
  const double T = static_cast<double>(config.at("data").at("max_len").get<std::int64_t>());
  const double B = static_cast<double>(std::max(tc.at("batch_size").get<std::int64_t>(), tc.at("eval_batch_size").get<std::int64_t>()));
  const double d = static_cast<double>(m.at("d_model").get<std::int64_t>()), F = static_cast<double>(m.at("d_ff").get<std::int64_t>());
  const double layers = static_cast<double>(m.at("n_layers").get<std::int64_t>()), H = static_cast<double>(m.at("n_heads").get<std::int64_t>());
  const bool hkt = m.at("attention").get<std::string>() == "hkt";
  const double L = hkt ? static_cast<double>(m.at("hkt").at("levels").get<int>()) : 1.0;
  const bool composite = hkt && m.at("hkt").at("impl").get<std::string>() == "composite";
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
  throw Error(what + ": this config needs about " + gib(total) + " of memory (data.max_len = " +
              std::to_string(static_cast<std::int64_t>(T)) + ", batch size " + std::to_string(static_cast<std::int64_t>(B)) +
              ": parameters and optimizer " + gib(param_bytes) + ", activations " + gib(act_bytes) +
              (composite ? ", composite attention scores " + gib(score_bytes) : std::string()) + "), more than this machine's " +
              gib(machine) + "; lower data.max_len or train.batch_size" + (composite ? " (or use model.hkt.impl = fused)" : ""));
}

std::unique_ptr<Classifier> build_model(const Json& config, const data::Dataset& train) {
  const ClassifierConfig mc = config::model_config(config, train.feature_mode() ? 0 : train.vocab_size, train.num_features,
                                                   train.num_classes, config.at("data").at("max_len").get<std::int64_t>());
  Generator gen(config.at("train").at("seed").get<std::uint64_t>());
  return std::make_unique<Classifier>(mc, gen, config_dtype(config));
}

namespace {
std::map<std::string, std::string> model_sizes(const Classifier& model);
}  // namespace

void save_checkpoint(const std::string& path, const Classifier& model, const std::vector<std::pair<std::string, Tensor>>& extra,
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
  return {{"vocab_size", std::to_string(c.vocab_size)}, {"num_features", std::to_string(c.num_features)},
          {"num_classes", std::to_string(c.num_classes)}, {"max_len", std::to_string(c.max_len)}};
}
}  // namespace

std::unique_ptr<Classifier> load_model(const Json& config, const std::string& checkpoint_path) {
  const auto file = safetensors::load(checkpoint_path);
  auto size = [&](const std::string& key) {
    check(file.metadata.count(key) == 1, checkpoint_path + ": no metadata '" + key + "' (not a checkpoint written by hkt train)");
    try {
      return std::stoll(file.metadata.at(key));
    } catch (const std::exception&) {
      throw Error(checkpoint_path + ": metadata '" + key + "' is not an integer");
    }
  };
  const ClassifierConfig mc = config::model_config(config, size("vocab_size"), size("num_features"), size("num_classes"), size("max_len"));
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
  // never writes one (it stops at the first non-finite value), so the file is damaged.
  for (const auto& [name, t] : file.tensors) {
    if (t.dtype() != DType::Float32 && t.dtype() != DType::Float64) continue;
    const auto values = t.to_vector();
    for (std::size_t i = 0; i < values.size(); ++i)
      check(std::isfinite(values[i]), checkpoint_path + ": tensor '" + name + "' holds a non-finite value (" +
                                          std::to_string(values[i]) + ") at element " + std::to_string(i) +
                                          "; the checkpoint is damaged and cannot be used");
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
      if (file.metadata.count(key)) sizes += std::string(sizes.empty() ? "" : ", ") + key + " = " + file.metadata.at(key);
    throw Error(checkpoint_path + ": its tensors do not fit the model built from " +
                (model_from_metadata ? "its metadata (" + sizes + ") and the config"
                                     : "the config (the checkpoint's metadata: " + sizes + ")") +
                ": " + e.what());
  }
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i].second.device() == Device::CUDA)
      cuda::copy_host_to_device(params[i].second.raw_data(), targets[i].second.raw_data(), targets[i].second.nbytes());
}

Json train(const Json& config, const std::string& out_dir, bool resume, std::ostream& progress, bool progress_is_terminal,
           std::int64_t stop_after, bool overwrite, Device device) {
  if (device == Device::CUDA) cuda::require_device("train --device cuda");
  const Json& tc = config.at("train");
  const int threads = tc.at("threads").get<int>();
  check(threads >= 0, "config key 'train.threads' must be >= 0 (0: the OpenMP default), got " + std::to_string(threads));
  for (const char* key : {"batch_size", "eval_batch_size"})
    check(tc.at(key).get<std::int64_t>() >= 1, std::string("config key 'train.") + key + "' must be >= 1, got " +
                                                   std::to_string(tc.at(key).get<std::int64_t>()));
  if (threads > 0) omp_set_num_threads(threads);
  check_memory_estimate(config, "train");  // before the data, which max_len sizes too
  const std::string config_path = out_dir + "/config.json", last_path = out_dir + "/last.safetensors",
                    best_path = out_dir + "/best.safetensors", metrics_path = out_dir + "/metrics.jsonl";
  check(!(resume && overwrite), "train: resume and overwrite exclude each other");
  if (resume) {
    check(fs::exists(last_path), "resume: " + last_path + " does not exist (nothing to resume)");
    check(fs::exists(config_path), "resume: " + config_path + " does not exist");
    const Json saved = config::read_json_file(config_path);
    check(saved == config, "resume: the config differs from the run's " + config_path + " (resume the same run unchanged)");
    if (fs::exists(out_dir + "/result.json")) {
      // A finished run: say so and change nothing (its result.json stays as written).
      progress << "resume: the run in " << out_dir << " is finished (result.json exists); nothing to do\n";
      return config::read_json_file(out_dir + "/result.json");
    }
  } else {
    check(overwrite || !fs::exists(last_path), out_dir + " already holds a run (last.safetensors); use --resume, --overwrite or another --out");
  }
  for (const char* key : {"seed"})
    check(tc.at(key).get<std::int64_t>() >= 0, std::string("config key 'train.") + key + "' must be >= 0");
  check(tc.at("clip_norm").get<double>() >= 0, "config key 'train.clip_norm' must be >= 0 (0: no clipping)");

  // Everything that can be refused (data, model, optimizer, schedule) is checked before
  // the run directory is touched, so a bad config never harms an existing run.
  TaskData task = load_task(config);
  for (const auto& w : task.warnings) progress << "warning: " << w << "\n";
  auto model = build_model(config, task.train);
  model->to(device);  // before the optimizer, whose moments live beside the parameters
  const auto params = model->named_parameters();
  std::vector<Tensor> param_tensors;
  for (const auto& [n, p] : params) param_tensors.push_back(p);
  const optim::AdamWConfig oc = adamw_config(config);
  optim::AdamW optimizer(params, oc);
  optim::ScheduleConfig sc;
  sc.kind = tc.at("schedule").get<std::string>();
  sc.base_lr = oc.lr;
  sc.warmup_steps = tc.at("warmup_steps").get<std::int64_t>();
  sc.total_steps = tc.at("steps").get<std::int64_t>();
  sc.min_lr = tc.at("min_lr").get<double>();
  optim::validate(sc);
  const std::int64_t steps = sc.total_steps, batch_size = tc.at("batch_size").get<std::int64_t>(),
                     eval_batch = tc.at("eval_batch_size").get<std::int64_t>(), eval_every = tc.at("eval_every").get<std::int64_t>(),
                     log_every = tc.at("log_every").get<std::int64_t>(), ckpt_every = tc.at("checkpoint_every").get<std::int64_t>();
  check(steps >= 1, "config key 'train.steps' must be >= 1");
  check(eval_every >= 1 && log_every >= 1 && ckpt_every >= 1, "config keys 'train.eval_every', 'log_every', 'checkpoint_every' must be >= 1");
  const double clip = tc.at("clip_norm").get<double>(), smoothing = tc.at("label_smoothing").get<double>();
  const std::uint64_t seed = tc.at("seed").get<std::uint64_t>();
  const bool pad_longest = tc.at("pad_to_longest").get<bool>();
  data::Loader loader(task.train, batch_size, true, seed, pad_longest, model->dtype());
  // Dropout has its own stream, keyed apart from the initialisation's (which used seed).
  Generator dropout_gen(seed ^ 0xD1B54A32D192ED03ULL);

  fs::create_directories(out_dir);
  const RunLock lock(out_dir, resume ? "hkt train --resume" : "hkt train");  // one writer per run directory
  if (overwrite)
    for (const char* f : {"metrics.jsonl", "best.safetensors", "last.safetensors", "result.json"}) fs::remove(fs::path(out_dir) / f);
  if (!resume) write_file_atomic(config_path, config.dump(2) + "\n");

  std::int64_t step = 0, best_step = 0;
  double best_val = -1.0, train_seconds = 0.0;
  double window_loss = 0, window_tokens = 0, window_seconds = 0;
  std::int64_t window_correct = 0, window_examples = 0, window_steps = 0;
  if (resume) {
    const auto file = safetensors::load(last_path);
    load_weights(*model, last_path);
    std::vector<std::pair<std::string, Tensor>> state;
    for (const auto& [name, t] : file.tensors)
      if (name.rfind("optimizer.", 0) == 0) state.emplace_back(name.substr(10), t);
    optimizer.load_state(state);
    // Numbers were written with 17 significant digits, so they read back exactly.
    auto meta = [&](const std::string& k) -> double {
      check(file.metadata.count(k) == 1, "resume: " + last_path + " has no metadata '" + k + "'");
      const std::string& text = file.metadata.at(k);
      std::size_t used = 0;
      double v = 0;
      try {
        v = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      check(used == text.size() && !text.empty() && std::isfinite(v) && v >= -1,
            "resume: " + last_path + ": metadata '" + k + "' = '" + text + "' is not a valid number");
      return v;
    };
    step = static_cast<std::int64_t>(meta("step"));
    check(step >= 1 && step <= steps, "resume: " + last_path + ": step " + std::to_string(step) + " is outside 1.." + std::to_string(steps));
    dropout_gen.advance(static_cast<std::uint64_t>(meta("dropout_offset")));
    best_val = meta("best_val_accuracy");
    best_step = static_cast<std::int64_t>(meta("best_step"));
    train_seconds = meta("train_seconds");
    window_loss = meta("window_loss");
    window_tokens = meta("window_tokens");
    window_seconds = meta("window_seconds");
    window_correct = static_cast<std::int64_t>(meta("window_correct"));
    window_examples = static_cast<std::int64_t>(meta("window_examples"));
    window_steps = static_cast<std::int64_t>(meta("window_steps"));
    // Keep the metrics up to the checkpoint; the steps after it run again.
    std::ifstream in(metrics_path);
    std::string line, kept;
    std::int64_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.empty()) continue;
      try {
        if (Json::parse(line).at("step").get<std::int64_t>() <= step) kept += line + "\n";
      } catch (const Json::exception&) {  // a line cut short by the interruption
        progress << "warning: " << metrics_path << ":" << line_no << ": dropped a partial line\n";
      }
    }
    write_file_atomic(metrics_path, kept);
    progress << "resumed " << out_dir << " at step " << step << "\n";
  }
  std::int64_t last_saved_step = resume ? step : 0;  // for the message of a stopped run
  std::ofstream metrics(metrics_path, std::ios::app);
  check(metrics.good(), metrics_path + ": cannot write");
  auto save_last = [&] {
    std::vector<std::pair<std::string, Tensor>> state;
    for (auto& [name, t] : optimizer.state()) state.emplace_back("optimizer." + name, t);
    auto exact = [](double v) {  // 17 significant digits: the double reads back exactly
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", v);
      return std::string(buf);
    };
    try {
      save_checkpoint(last_path, *model, state,
                    {{"step", std::to_string(step)}, {"dropout_offset", std::to_string(dropout_gen.offset())},
                     {"best_val_accuracy", exact(best_val)}, {"best_step", std::to_string(best_step)},
                     {"train_seconds", exact(train_seconds)}, {"window_loss", exact(window_loss)},
                     {"window_tokens", exact(window_tokens)}, {"window_seconds", exact(window_seconds)},
                     {"window_correct", std::to_string(window_correct)}, {"window_examples", std::to_string(window_examples)},
                     {"window_steps", std::to_string(window_steps)}, {"format", "hkt-checkpoint-1"}});
    } catch (const Error& e) {  // the previous checkpoint is intact (atomic write)
      throw Error(std::string(e.what()) + " (at step " + std::to_string(step) + "; training stopped, " +
                  (last_saved_step > 0 ? last_path + " still holds step " + std::to_string(last_saved_step)
                                       : std::string("before its first checkpoint")) + ")");
    }
    last_saved_step = step;
  };

  const std::int64_t nb = loader.num_batches();
  auto checkpoint_note = [&] {
    return last_saved_step > 0 ? "the last checkpoint, " + last_path + ", is from step " + std::to_string(last_saved_step)
                               : std::string("no checkpoint was written yet");
  };
  reset_peak_cpu_memory();  // result.json reports the peak of the engine's tensors while training
  const auto run_start = std::chrono::steady_clock::now();
  const std::int64_t first_step = step;
  while (step < steps) {
    ++step;
    const auto t0 = std::chrono::steady_clock::now();
    const data::Batch batch = loader.batch((step - 1) / nb, (step - 1) % nb);
    const Tensor logits = model->forward(batch.tokens, batch.features, batch.mask, true, dropout_gen);
    const Tensor loss = cross_entropy(logits, batch.labels, -100, smoothing);
    const double loss_value = loss.item();
    if (!std::isfinite(loss_value))
      throw Error("step " + std::to_string(step) + ": the loss is " + std::to_string(loss_value) +
                  "; training stopped (" + checkpoint_note() + ")");
    loss.backward();
    double grad_norm = 0;
    try {
      grad_norm = optim::clip_grad_norm(param_tensors, clip);
    } catch (const Error& e) {
      throw Error("step " + std::to_string(step) + ": " + e.what() + "; training stopped (" + checkpoint_note() + ")");
    }
    const double lr = optim::learning_rate(sc, step);
    optimizer.step(lr);
    optimizer.zero_grad();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    train_seconds += seconds;
    window_seconds += seconds;
    window_loss += loss_value;
    window_correct += count_correct(logits.detach(), batch.labels);
    window_examples += static_cast<std::int64_t>(batch.indices.size());
    window_tokens += sum(batch.lengths.to(DType::Float64)).item();
    ++window_steps;

    if (step % log_every == 0 || step == steps) {
      Json line = {{"step", step}, {"epoch", (step - 1) / nb}, {"lr", lr}, {"loss", window_loss / static_cast<double>(window_steps)},
                   {"accuracy", static_cast<double>(window_correct) / static_cast<double>(window_examples)},
                   {"grad_norm", grad_norm}, {"tokens_per_s", window_tokens / window_seconds},
                   {"level_weights", level_weights(*model)}};
      metrics << line.dump() << "\n" << std::flush;
      check(metrics.good(), metrics_path + ": write failed at step " + std::to_string(step) + " (disk full?); training stopped" +
                                (last_saved_step > 0 ? ", " + last_path + " holds step " + std::to_string(last_saved_step)
                                                     : std::string(" before its first checkpoint")));
      const double done = static_cast<double>(step - first_step), left = static_cast<double>(steps - step);
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
      std::ostringstream msg;
      msg << "step " << step << "/" << steps << " epoch " << (step - 1) / nb << " loss " << std::fixed << std::setprecision(4)
          << line["loss"].get<double>() << " acc " << std::setprecision(3) << line["accuracy"].get<double>() << " "
          << std::setprecision(0) << window_tokens / window_seconds << " tok/s ETA " << format_duration(elapsed / done * left);
      if (progress_is_terminal) {
        const int width = 24, filled = static_cast<int>(width * static_cast<double>(step) / static_cast<double>(steps));
        progress << "\r[" << std::string(static_cast<std::size_t>(filled), '#') << std::string(static_cast<std::size_t>(width - filled), ' ')
                 << "] " << msg.str() << "   " << std::flush;
      } else {
        progress << msg.str() << "\n" << std::flush;
      }
      window_loss = window_tokens = window_seconds = 0;
      window_correct = window_examples = window_steps = 0;
    }
    if (step % eval_every == 0 || step == steps) {
      const Evaluation val = evaluate(*model, task.val, eval_batch, pad_longest);
      const bool better = val.accuracy > best_val;
      if (better) {
        best_val = val.accuracy;
        best_step = step;
        save_checkpoint(best_path, *model, {}, {{"step", std::to_string(step)}, {"format", "hkt-weights-1"}});
      }
      metrics << Json{{"step", step}, {"val_accuracy", val.accuracy}, {"val_loss", val.loss}, {"best", better},
                      {"level_weights", level_weights(*model)}, {"m_sym_share", sym_shares(*model)}}.dump() << "\n"
              << std::flush;
      check(metrics.good(), metrics_path + ": write failed at step " + std::to_string(step) + " (disk full?); training stopped" +
                                (last_saved_step > 0 ? ", " + last_path + " holds step " + std::to_string(last_saved_step)
                                                     : std::string(" before its first checkpoint")));
      if (progress_is_terminal) progress << "\n";
      progress << "step " << step << ": validation accuracy " << std::fixed << std::setprecision(4) << val.accuracy
               << (better ? " (best)" : "") << "\n" << std::flush;
    }
    if (step % ckpt_every == 0 || step == steps || step == stop_after) save_last();
    if (step == stop_after && step < steps) {
      progress << "stopped after step " << step << " (resume with --resume " << out_dir << ")\n";
      return Json::object();
    }
  }

  const double peak_tensor_bytes = static_cast<double>(cpu_memory_stats().peak_bytes);
  // Evaluate test once, from the best checkpoint reloaded from disk; the reloaded model
  // must reproduce the validation accuracy it was chosen for, exactly.
  auto best = build_model(config, task.train);
  load_weights(*best, best_path);
  best->to(device);
  const Evaluation val = evaluate(*best, task.val, eval_batch, pad_longest);
  check(val.accuracy == best_val, "the reloaded best checkpoint gives validation accuracy " + std::to_string(val.accuracy) +
                                      ", not the " + std::to_string(best_val) + " it was saved with");
  const Evaluation test = evaluate(*best, task.test, eval_batch, pad_longest);
  Json extra = Json::object();
  for (const auto& d : task.extra_tests) {
    const Evaluation e = evaluate(*best, d, eval_batch, pad_longest);
    extra[d.name] = {{"accuracy", e.accuracy}, {"examples", e.examples}, {"chance_level", d.chance_level()}};
  }
  const Json result = {{"task", config.at("data").at("task")},
                       {"attention", config.at("model").at("attention")},
                       {"best_val_accuracy", best_val},
                       {"best_step", best_step},
                       {"test_accuracy", test.accuracy},
                       {"test_examples", test.examples},
                       {"chance_level", task.test.chance_level()},
                       {"extra_tests", extra},
                       {"parameter_count", model->parameter_count()},
                       {"steps", steps},
                       {"time_per_step_ms", 1000.0 * train_seconds / static_cast<double>(steps)},
                       {"train_seconds", train_seconds},
                       {"peak_tensor_bytes", peak_tensor_bytes},
                       {"device", device_name(device)},
                       {"peak_cuda_tensor_bytes", device == Device::CUDA ? cuda::memory_stats().peak_allocated_bytes : 0}};
  write_file_atomic(out_dir + "/result.json", result.dump(2) + "\n");
  return result;
}

}  // namespace hkt
