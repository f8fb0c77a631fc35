// cmd_bench_step.cpp: `hkt bench step`: the time and memory of one training step
// (forward, cross-entropy loss, backward, gradient clipping, AdamW update) of the
// classifier a config describes, on a synthetic batch of train.batch_size sequences of
// data.max_len tokens. tools/bench_torch.py measures the same step in PyTorch, and
// tools/bench_vs_torch.py runs the two side by side (docs/benchmarks.md).
//
// Why a synthetic batch: a step's cost depends on the shapes only (every sequence is full
// length, no padding), and generating ListOps or reading IMDB would dominate a short
// benchmark. The vocabulary and class count are the task's (task_shape below).
//
// Memory is the process's resident set (RSS), as the kernel counts it: VmHWM, the peak,
// is reset (/proc/self/clear_refs, value 5) after the set-up and read after the timed
// steps, so "peak_rss_mib" is the largest RSS while stepping and "step_rss_mib" what the
// steps added to the RSS they started from. PyTorch's side reads the same two numbers.
//
// With --device cuda the model and its optimizer live on the GPU; the batch stays on the
// host and is uploaded by each step's forward, as in hkt train. Each timed
// step ends with the loss read on the host, which waits for the step's work, so the times
// are whole steps. The device memory is the caching allocator's: "peak_cuda_mib" is the
// peak of the bytes in tensors over the timed steps (cuda::reset_peak_memory after the
// warm-up), "reserved_cuda_mib" what the cache holds from the driver at the end.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "config.h"
#include "cuda_backend.h"
#include "io/safetensors.h"
#include "ops.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "trainer.h"

namespace hkt::tools {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// The command line of `hkt bench step` (add_bench_step_command documents each option).
struct StepArgs {
  std::string config_path;
  std::vector<std::string> sets;
  int threads = 0;
  int repeats = 10;
  int warmup = 2;
  bool json = false;
  std::string export_dir;
  Device device = Device::CPU;
};

// The input shape of a task: (vocab_size, num_features, num_classes), as its reader
// builds it (datasets/*.h); no data is read.
struct TaskShape {
  std::int64_t vocab_size = 0, num_features = 0, num_classes = 0;
};

TaskShape task_shape(const Json& config) {
  const auto& data = config.at("data");
  const std::string task = data.at("task").get<std::string>();
  if (task == "listops") return {16, 0, 10};
  if (task == "imdb") return {257, 0, 2};
  if (task == "fashion-mnist") return {256, 0, 10};
  if (task == "cifar10") {
    if (data.at("cifar10").at("mode").get<std::string>() == "rgb") return {0, 3, 10};
    return {256, 0, 10};
  }
  throw Error("bench step: config key 'data.task' is '" + task + "', not one of listops, imdb, fashion-mnist, cifar10");
}

// Reads one "Name:   value kB" line of /proc/self/status, in MiB (0 where unreadable).
double proc_status_mib(const std::string& name) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + ":", 0) == 0) return std::stod(line.substr(name.size() + 1)) / 1024.0;
  return 0.0;
}

// Resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0; ignored elsewhere).
void reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
}

// The median of a non-empty list (the mean of the two middle values for an even count).
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The synthetic batch: tokens uniform in [1, vocab_size) (or features uniform in [0, 1)),
// labels uniform over the classes, every step real. Seeded, so hkt and PyTorch see the
// same batch through the exported file.
struct Batch {
  Tensor tokens, features, mask, labels;
};

Batch make_batch(const TaskShape& s, std::int64_t B, std::int64_t T, std::int64_t valid_last, DType dtype,
                 std::uint64_t seed) {
  Generator gen(seed);
  Batch b;
  if (s.vocab_size > 0) {
    const auto u = Tensor::uniform({B, T}, gen, 0.0, 1.0, DType::Float64).to_vector();
    std::vector<std::int64_t> tok(u.size());
    for (std::size_t i = 0; i < u.size(); ++i)
      tok[i] = 1 + static_cast<std::int64_t>(u[i] * static_cast<double>(s.vocab_size - 1));
    b.tokens = Tensor::from_indices(tok, {B, T});
  } else {
    b.features = Tensor::uniform({B, T, s.num_features}, gen, 0.0, 1.0, dtype);
  }
  std::vector<std::int64_t> mask(static_cast<std::size_t>(B * T), 1);
  for (std::int64_t t = valid_last; t < T; ++t)
    mask[static_cast<std::size_t>((B - 1) * T + t)] = 0;  // padding, last example
  b.mask = Tensor::from_indices(mask, {B, T});
  const auto v = Tensor::uniform({B}, gen, 0.0, 1.0, DType::Float64).to_vector();
  std::vector<std::int64_t> labels(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    labels[i] = static_cast<std::int64_t>(v[i] * static_cast<double>(s.num_classes));
  b.labels = Tensor::from_indices(labels, {B});
  return b;
}

// Writes what tools/bench_torch.py needs to rebuild the model and check its logits:
// model.safetensors (the initial parameters, hkt's names), batch.safetensors (the timed
// batch, and a two-example check batch with padding, with hkt's evaluation logits of
// both in float64) and config.json (the resolved config).
void export_for_torch(const std::string& dir, const Json& config, const Classifier& model, const Batch& batch,
                      const Batch& check_batch) {
  // The export writes config.json, which in a training run's directory is the run's own
  // (and what --resume reads): such a directory is refused.
  for (const char* run_file : {"last.safetensors", "best.safetensors", "metrics.jsonl", "result.json"})
    check(!fs::exists(fs::path(dir) / run_file), "bench step: --export " + dir + " holds a training run (" + run_file +
                                                     "), whose config.json it would overwrite; give another directory");
  std::error_code ec;
  fs::create_directories(dir, ec);
  check(!ec && fs::is_directory(dir),
        "bench step: --export " + dir + ": cannot create the directory" + (ec ? " (" + ec.message() + ")" : ""));
  NoGradGuard no_grad;  // evaluation forwards: no graph
  safetensors::save((fs::path(dir) / "model.safetensors").string(), model.named_parameters());
  Generator unused(0);
  const Tensor logits = model.forward(batch.tokens, batch.features, batch.mask, false, unused).to(DType::Float64);
  const Tensor check_logits =
      model.forward(check_batch.tokens, check_batch.features, check_batch.mask, false, unused).to(DType::Float64);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [prefix, b] : {std::pair<std::string, const Batch*>{"", &batch}, {"check_", &check_batch}}) {
    if (b->tokens.defined()) tensors.emplace_back(prefix + "tokens", b->tokens);
    if (b->features.defined()) tensors.emplace_back(prefix + "features", b->features);
    tensors.emplace_back(prefix + "mask", b->mask);
    tensors.emplace_back(prefix + "labels", b->labels);
  }
  tensors.emplace_back("logits", logits.detach());
  tensors.emplace_back("check_logits", check_logits.detach());
  safetensors::save((fs::path(dir) / "batch.safetensors").string(), tensors);
  write_file_atomic((fs::path(dir) / "config.json").string(), config.dump(2) + "\n");
}

// Builds the model and optimizer of the config, optionally exports, then warms up and
// times a.repeats steps; prints one line or one JSON object. Throws hkt::Error naming the
// config key or path that is wrong.
int run_step_bench(const StepArgs& a) {
  Json config = config::apply_sets(config::load_file(a.config_path), a.sets);
  const auto& tc = config.at("train");
  const int config_threads = config::train_threads(config);
  config::use_threads(a.threads > 0 ? a.threads : config_threads);
  const TaskShape shape = task_shape(config);
  const std::int64_t T = config.at("data").at("max_len").get<std::int64_t>(),
                     B = tc.at("batch_size").get<std::int64_t>();
  check(B >= 1, "bench step: config key 'train.batch_size' must be >= 1");
  check_memory_estimate(config, "bench step");
  const std::string dtype_name = tc.at("dtype").get<std::string>();
  check(dtype_name == "float32" || dtype_name == "float64",
        "bench step: config key 'train.dtype' must be float32 or float64");
  const DType dtype = dtype_name == "float64" ? DType::Float64 : DType::Float32;
  const ClassifierConfig mc = config::model_config(config, shape.vocab_size, shape.num_features, shape.num_classes, T);
  Generator init(tc.at("seed").get<std::uint64_t>());
  Classifier model(mc, init, dtype);
  const bool on_gpu = a.device == Device::CUDA;
  if (on_gpu) {
    check(a.export_dir.empty(), "bench step: --export runs on the cpu (drop --device cuda)");
    model.to(Device::CUDA);  // before the optimizer, whose moments follow the parameters
  }
  const auto params = model.named_parameters();
  std::vector<Tensor> param_tensors;
  for (const auto& [n, p] : params) param_tensors.push_back(p);
  const optim::AdamWConfig oc = adamw_config(config);
  optim::AdamW optimizer(params, oc);
  const double clip = tc.at("clip_norm").get<double>(), smoothing = tc.at("label_smoothing").get<double>();

  const Batch batch = make_batch(shape, B, T, T, dtype, 1);
  if (!a.export_dir.empty())
    export_for_torch(a.export_dir, config, model, batch, make_batch(shape, 2, T, T / 2 + 1, dtype, 2));

  Generator dropout_gen(7);
  auto step = [&] {
    const Tensor logits = model.forward(batch.tokens, batch.features, batch.mask, true, dropout_gen);
    const Tensor loss = cross_entropy(logits, batch.labels, -100, smoothing);
    loss.backward();
    optim::clip_grad_norm(param_tensors, clip);
    optimizer.step(oc.lr);
    optimizer.zero_grad();
    return loss.item();
  };
  for (int i = 0; i < a.warmup; ++i) step();
  const double rss_before = proc_status_mib("VmRSS");
  reset_peak_rss();
  if (on_gpu) cuda::reset_peak_memory();
  std::vector<double> ms;
  double loss = 0;
  for (int i = 0; i < a.repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    loss = step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const double peak = proc_status_mib("VmHWM");
  const cuda::CudaMemoryStats gpu_memory = on_gpu ? cuda::memory_stats() : cuda::CudaMemoryStats{};
  const double mib = 1024.0 * 1024.0;
  check(std::isfinite(loss), "bench step: the loss is not finite (" + std::to_string(loss) + ")");
  std::int64_t n_params = 0;
  for (const auto& p : param_tensors) n_params += p.numel();
  Json row = {{"framework", "hkt"},
              {"device", device_name(a.device)},
              {"attention", enum_name(mc.attention)},
              {"levels", mc.attention == AttentionKind::Mha ? 1 : mc.hkt.levels},
              {"attention_precision", enum_name(mc.hkt.precision)},
              {"T", T},
              {"batch_size", B},
              {"threads", omp_get_max_threads()},
              {"parameters", n_params},
              {"repeats", a.repeats},
              {"median_ms", median(ms)},
              {"min_ms", *std::min_element(ms.begin(), ms.end())},
              {"peak_rss_mib", peak},
              {"step_rss_mib", peak - rss_before},
              {"final_loss", loss}};
  if (on_gpu) {
    row["peak_cuda_mib"] = static_cast<double>(gpu_memory.peak_allocated_bytes) / mib;
    row["reserved_cuda_mib"] = static_cast<double>(gpu_memory.reserved_bytes) / mib;
  }
  if (a.json) {
    std::cout << row.dump() << "\n";
  } else {
    std::printf(
        "hkt attention=%s T=%lld B=%lld device=%s threads=%d: median %.1f ms/step (min %.1f, %d steps), peak RSS %.1f "
        "MiB (%+.1f while stepping)",
        enum_name(mc.attention).c_str(), static_cast<long long>(T), static_cast<long long>(B),
        device_name(a.device).c_str(), omp_get_max_threads(), median(ms), *std::min_element(ms.begin(), ms.end()),
        a.repeats, peak, peak - rss_before);
    if (on_gpu)
      std::printf(", peak device memory %.1f MiB in tensors (%.1f MiB reserved)",
                  static_cast<double>(gpu_memory.peak_allocated_bytes) / mib,
                  static_cast<double>(gpu_memory.reserved_bytes) / mib);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

void add_bench_step_command(CLI::App* bench) {
  auto args = std::make_shared<StepArgs>();
  auto* sub = bench->add_subcommand(
      "step",
      "Time and peak RSS of one training step (forward, backward, AdamW) of a config's model on a synthetic batch");
  sub->add_option("--config", args->config_path, "Config file (the model, data.max_len = T, train.batch_size = B)")
      ->required()
      ->check(readable_file());
  sub->add_option("--set", args->sets, "Override a config key: --set data.max_len=1024 (repeatable)");
  sub->add_option("--threads", args->threads, "OpenMP threads (0: train.threads, then the OpenMP default)")
      ->capture_default_str()
      ->check(CLI::Range(0, config::kMaxThreads));
  sub->add_option("--repeats", args->repeats, "Timed steps (the median is reported)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--warmup", args->warmup, "Untimed steps first")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--export", args->export_dir,
                  "Also write DIR/{model,batch}.safetensors and DIR/config.json for tools/bench_torch.py")
      ->check(nonempty_path());
  sub->add_flag("--json", args->json, "Print one JSON line instead of text");
  auto device_str = std::make_shared<std::string>("cpu");
  sub->add_option("--device", *device_str,
                  "cpu, or cuda (model and optimizer on the GPU, the batch uploaded by each step as in hkt train; also "
                  "reports the device's peak tensor memory)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  on_selected(sub, [args, device_str] {
    args->device = parse_device(*device_str);
    if (args->device == Device::CUDA) cuda::require_device("bench step --device cuda");
    return run_step_bench(*args);
  });
}

}  // namespace hkt::tools
