// test_cuda_backend.cpp: the CUDA backend. Without a usable device (no CUDA in the
// build, or no GPU) every request fails with a message saying why, and the GPU tests
// report "skipped: no CUDA device" to ctest. With a device (a real GPU, or the EMULATE
// build's host-memory stand-in) they run the consistency harness over every op, compare
// the dropout masks, and train a model on the GPU against the same run on the CPU.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "attention/hkt_attention.h"
#include "config.h"
#include "cuda_backend.h"
#include "gradcheck/consistency.h"
#include "gradcheck/gradcheck.h"
#include "hierarchical_attention.h"
#include "module.h"
#include "optim/adamw.h"
#include "task.h"
#include "test_helpers.h"
#include "train_helpers.h"
#include "trainer.h"

using namespace hkt;
using namespace hkt::test;
namespace fs = std::filesystem;

TEST_CASE("cuda: without a device every request fails clearly", "[cuda]") {
  std::string reason;
  if (cuda::device_count(&reason) > 0) {
    std::cout << "skipped: a CUDA device is present (" << cuda::device_info(0).name << ")" << std::endl;
    return;
  }
  CHECK_FALSE(reason.empty());
  const std::string expected =
      cuda::built_with_cuda() ? "no CUDA device is available" : "this build has no CUDA support";
  require_error([] { Tensor::ones({2}).to(Device::CUDA); }, "to(cuda): " + expected);
  require_error([] { Tensor::zeros({2}, DType::Float32, Device::CUDA); }, expected);
  require_error([] { cuda::device_info(0); }, expected);
  require_error([] { gradcheck::run_consistency("", DType::Float64); }, "CUDA consistency harness: " + expected);
  std::ostringstream log;
  require_error([&] { train_run(config::defaults(), "unused_dir", log, false, 0, false, Device::CUDA); },
                "train --device cuda: " + expected);
  CHECK(parse_device("cpu") == Device::CPU);
  require_error([] { parse_device("gpu"); }, "unknown device 'gpu' (expected cpu or cuda)");
  // CPU work is unaffected.
  CHECK(sum(Tensor::ones({3})).item() == 3.0);
}

namespace {
// Runs the harness in `dtype` and checks every row; every op of the gradient checker
// must be covered, and only the CPU-only fused attention op may be skipped.
void check_harness(DType dtype) {
  const auto results = gradcheck::run_consistency("", dtype);
  std::set<std::string> covered;
  for (const auto& r : results) {
    INFO(r.op << " " << r.shape << ": forward " << r.forward_err << ", backward " << r.backward_err << ", bound "
              << r.bound << " " << r.note);
    CHECK_FALSE(r.skipped);  // every op has a CUDA path
    CHECK(r.passed);
    CHECK(r.forward_err <= r.bound);
    CHECK(r.backward_err <= r.bound);
    covered.insert(r.op);
  }
  for (const auto& op : gradcheck::op_names()) CHECK(covered.count(op) == 1);
  CHECK(covered.count("hkt_attention_composite") == 1);
}
}  // namespace

TEST_CASE("cuda: every op, forward and backward, agrees with the CPU in float64", "[cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  check_harness(DType::Float64);
}

TEST_CASE("cuda: every op, forward and backward, agrees with the CPU in float32", "[cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  check_harness(DType::Float32);
}

TEST_CASE("cuda: one seed gives the same dropout mask on the GPU as on the CPU", "[cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  const Tensor x = Tensor::ones({3, 1001});
  Generator on_cpu(42), on_gpu(42);
  const auto a = dropout(x, 0.25, on_cpu).to_vector();
  const auto b = dropout(x.to(Device::CUDA), 0.25, on_gpu).to_vector();
  CHECK(a == b);  // the same Philox numbers: exactly the same mask and scale
  CHECK(on_cpu.offset() == on_gpu.offset());
  std::size_t dropped = 0;
  for (double v : a) dropped += v == 0.0;
  CHECK(dropped > 650);  // about 0.25 * 3003 = 751 dropped
  CHECK(dropped < 850);
}

TEST_CASE("cuda: memory is cached, out of memory names the size, devices never mix silently", "[cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  cuda::empty_cache();
  const auto before = cuda::memory_stats();
  { Tensor t = Tensor::zeros({1000}, DType::Float32, Device::CUDA); }
  const auto after_free = cuda::memory_stats();
  CHECK(after_free.allocated_bytes == before.allocated_bytes);
  CHECK(after_free.reserved_bytes == before.reserved_bytes + 4096);  // 4000 bytes rounded to 512s, kept in the cache
  { Tensor t = Tensor::zeros({1000}, DType::Float32, Device::CUDA); }
  CHECK(cuda::memory_stats().reserved_bytes == after_free.reserved_bytes);  // reused, not allocated again
  // 2^48 floats = 1 PiB: more than any device has.
  require_error([] { Tensor::empty({std::int64_t{1} << 48}, DType::Float32, Device::CUDA); },
                "cuda allocate: out of memory asking for 1125899906842624 bytes; device free memory");
  // Mixing devices is an error naming both, never a silent copy.
  Tensor w = Tensor::ones({2}, DType::Float32, Device::CUDA).set_requires_grad();
  require_error([&] { add(w, Tensor::ones({2})); }, "add: devices differ (cuda and cpu)");
  require_error([&] { mul(w, 2.0).backward(Tensor::ones({2})); }, "backward: gradient is on cpu, the output on cuda");
  const Tensor q = Tensor::zeros({1, 1, 4, 129}, DType::Float32, Device::CUDA);
  require_error(
      [&] {
        hkt_attention_fused({q}, {q}, q, Tensor::ones({1, 1}, DType::Float32, Device::CUDA), Tensor());
      },
      "hkt_attention_fused: the CUDA kernels take L <= 4 levels and d_h <= 128, got L = 1, d_h = 129");
}

TEST_CASE("cuda: a module moved after its optimizer was built trains like one on the CPU", "[cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  std::vector<std::vector<double>> after_steps;
  for (Device device : {Device::CPU, Device::CUDA}) {
    ParameterGroup group;
    Tensor w = group.add("w", Tensor::from_vector({0.5, -1.0, 2.0, 0.25}, {2, 2}));
    optim::AdamWConfig config;
    config.weight_decay = 0.1;
    optim::AdamW adamw(group.named_parameters(), config);  // moments made on the CPU
    group.to(device);                                      // then the parameter moves
    CHECK(w.device() == device);
    for (int step = 0; step < 3; ++step) {
      adamw.zero_grad();
      sum(mul(w, w)).backward();
      adamw.step(0.1);
    }
    after_steps.push_back(w.to_vector());
  }
  for (std::size_t i = 0; i < after_steps[0].size(); ++i)
    CHECK(std::abs(after_steps[0][i] - after_steps[1][i]) <= 1e-6);
}

namespace {
config::Json tiny_config(const std::string& attention, std::int64_t steps) {
  config::Json overrides = config::Json::parse(R"({
    "data": {"task": "listops", "max_len": 40,
             "listops": {"source": "generate", "train": 32, "val": 16, "test": 16, "seed": 5}},
    "model": {"d_model": 32, "n_heads": 2, "n_layers": 1, "d_ff": 64, "dropout": 0.1},
    "train": {"batch_size": 8, "lr": 0.003, "schedule": "constant", "warmup_steps": 2, "eval_every": 10,
              "log_every": 1, "checkpoint_every": 5, "threads": 1}
  })");
  overrides["model"]["attention"] = attention;
  overrides["train"]["steps"] = steps;
  return config::merge(overrides);
}

// The per-step training losses of a run's metrics.jsonl (log_every = 1).
std::vector<double> losses(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) {
    const auto j = config::Json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

std::string fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("hkt_test_cuda_" + name);
  fs::remove_all(dir);
  return dir.string();
}
}  // namespace

TEST_CASE("cuda: model.attention_precision = bf16 trains on the tensor-core kernels, near the float32 curve",
          "[cuda][train]") {
  HKT_SKIP_UNLESS_CUDA();
  for (const std::string attention : {"mha", "hkt"}) {
    INFO(attention);
    auto cfg = tiny_config(attention, 20);
    const std::string fp32_dir = fresh_dir("fp32_" + attention), bf16_dir = fresh_dir("bf16_" + attention);
    std::ostringstream log;
    train_run(cfg, fp32_dir, log, false, 0, false, Device::CUDA);
    cfg["model"]["attention_precision"] = "bf16";
    train_run(cfg, bf16_dir, log, false, 0, false, Device::CUDA);
    const auto a = losses(fp32_dir), b = losses(bf16_dir);
    REQUIRE(a.size() == 20);
    REQUIRE(b.size() == 20);
    // Step 1 has the same weights and batch: the losses differ by the attention's bf16
    // rounding (about 2^-9 relative in its output), which the float32 kernels do not make.
    INFO("step 1: fp32 " << a[0] << ", bf16 " << b[0]);
    CHECK(a[0] != b[0]);
    CHECK(std::abs(a[0] - b[0]) <= 1e-2 * std::abs(a[0]));
    for (std::size_t i = 1; i < a.size(); ++i) {
      INFO("step " << i + 1 << ": fp32 " << a[i] << ", bf16 " << b[i]);
      CHECK(std::abs(a[i] - b[i]) <= 5e-2 * std::abs(a[i]));
    }
  }
}

TEST_CASE("cuda: bf16 attention where the fused kernels do not reach (d_h > 128) is refused, not run in float32",
          "[cuda][errors]") {
  HKT_SKIP_UNLESS_CUDA();
  AttentionConfig c;
  c.d_model = 272;  // 2 heads of d_h = 136
  c.n_heads = 2;
  c.levels = 2;
  c.precision = AttentionPrecision::Bf16;
  Generator gen(1);
  HierarchicalAttention m(c, gen);
  m.to(Device::CUDA);
  const Tensor x = Tensor::normal({1, 8, 272}, gen, 0.0, 1.0, DType::Float32).to(Device::CUDA);
  require_error(
      [&] { (void)m.forward(x, Tensor()); },
      "attention: model.attention_precision = \"bf16\" needs the fused CUDA kernels, which take L <= 4 levels "
      "and d_h <= 128, got d_h = 136");
  CHECK(m.forward(x, Tensor(), AttentionImpl::Composite).shape() == Shape{1, 8, 272});  // composite: documented as fp32
  m.to(Device::CPU);
  CHECK(m.forward(x.to(Device::CPU), Tensor()).shape() == Shape{1, 8, 272});  // the CPU ignores the setting
}

TEST_CASE("cuda: a model trains on the GPU along the CPU's loss curve, and its checkpoints load anywhere",
          "[cuda][train]") {
  HKT_SKIP_UNLESS_CUDA();
  for (const std::string attention : {"mha", "hkt"}) {
    INFO(attention);
    const auto cfg = tiny_config(attention, 20);
    const std::string cpu_dir = fresh_dir("cpu_" + attention), gpu_dir = fresh_dir("gpu_" + attention);
    std::ostringstream log;
    train_run(cfg, cpu_dir, log);
    const auto result = train_run(cfg, gpu_dir, log, false, 0, false, Device::CUDA);
    CHECK(result["device"] == "cuda");
    const auto a = losses(cpu_dir), b = losses(gpu_dir);
    REQUIRE(a.size() == 20);
    REQUIRE(b.size() == 20);
    // The same initialisation, batches and dropout masks: the curves differ by float32
    // rounding only, which grows slowly with the steps.
    for (std::size_t i = 0; i < 5; ++i) {
      INFO("step " << i + 1 << ": cpu " << a[i] << ", gpu " << b[i]);
      CHECK(std::abs(a[i] - b[i]) <= 1e-5 * std::abs(a[i]));
    }
    for (std::size_t i = 5; i < a.size(); ++i) {
      INFO("step " << i + 1 << ": cpu " << a[i] << ", gpu " << b[i]);
      CHECK(std::abs(a[i] - b[i]) <= 1e-3 * std::abs(a[i]));
    }
    // The GPU run's best checkpoint, loaded on the CPU, gives the accuracy it reported.
    const TaskData task = load_task(cfg);
    auto model = load_model(cfg, gpu_dir + "/best.safetensors");
    CHECK(model->device() == Device::CPU);
    // Evaluated on the GPU there and on the CPU here: one of the 16 test examples may
    // flip on an argmax near-tie under different rounding, not more.
    CHECK(std::abs(evaluate(*model, task.test, 64).accuracy - result["test_accuracy"].get<double>()) <=
          1.0 / 16 + 1e-12);
  }
  // A run stopped on the GPU resumes on the CPU (checkpoints are device-independent) and
  // ends where the CPU-only run ends, up to float32 rounding.
  const auto cfg = tiny_config("hkt", 20);
  const std::string whole = (fs::temp_directory_path() / "hkt_test_cuda_cpu_hkt").string();  // the CPU run above
  const std::string split = fresh_dir("split_hkt");
  std::ostringstream log;
  CHECK(train_run(cfg, split, log, false, 10, false, Device::CUDA).empty());
  train_run(cfg, split, log, true);
  const auto a = losses(whole), b = losses(split);
  REQUIRE(b.size() == a.size());
  CHECK(std::abs(a.back() - b.back()) <= 1e-3 * std::abs(a.back()));
}

TEST_CASE("cuda: the cross-entropy loss is one block's fixed-order sum, equal to a float64 sum over the rows",
          "[cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  // N = 1000 rows (several per thread of the 256-thread block), N = 3 (fewer rows than
  // threads), with ignored rows and label smoothing, and every row ignored (loss 0).
  // Expected: the mean over the counted rows of -((1 - eps) logp[t] + eps mean_c logp[c]),
  // logp the log-softmax of the logits, all computed here in double.
  for (const auto& [N, eps, every_other_ignored] :
       {std::tuple<std::int64_t, double, bool>{1000, 0.0, false}, {1000, 0.1, true}, {3, 0.2, false}}) {
    const std::int64_t C = 7;
    Generator g(static_cast<std::uint64_t>(N) + 3);
    const Tensor logits = Tensor::normal({N, C}, g, 0.0, 2.0, DType::Float64);
    std::vector<std::int64_t> t(static_cast<std::size_t>(N));
    for (std::int64_t i = 0; i < N; ++i)
      t[static_cast<std::size_t>(i)] = every_other_ignored && i % 2 ? -100 : (i * 5) % C;
    const auto x = logits.to_vector();
    double total = 0;
    std::int64_t count = 0;
    for (std::int64_t i = 0; i < N; ++i) {
      if (t[static_cast<std::size_t>(i)] == -100) continue;
      double mx = -INFINITY, z = 0, mean = 0;
      for (std::int64_t c = 0; c < C; ++c) mx = std::max(mx, x[static_cast<std::size_t>(i * C + c)]);
      for (std::int64_t c = 0; c < C; ++c) z += std::exp(x[static_cast<std::size_t>(i * C + c)] - mx);
      const auto logp = [&](std::int64_t c) { return x[static_cast<std::size_t>(i * C + c)] - mx - std::log(z); };
      for (std::int64_t c = 0; c < C; ++c) mean += logp(c) / static_cast<double>(C);
      total += -((1 - eps) * logp(t[static_cast<std::size_t>(i)]) + eps * mean);
      ++count;
    }
    const double want = total / static_cast<double>(count);
    const Tensor targets = Tensor::from_indices(t, {N});
    const auto loss_on = [&](Device d) {
      return cross_entropy(logits.to(d), targets.to(d), -100, eps).to(Device::CPU).item();
    };
    INFO("N=" << N << " eps=" << eps);
    CHECK(std::fabs(loss_on(Device::CUDA) - want) <= 1e-13 * std::fabs(want));
    CHECK(std::fabs(loss_on(Device::CPU) - want) <= 1e-13 * std::fabs(want));
#if defined(HKT_EMULATE_CUDA)
    // The block's sum is the same under every thread schedule.
    CHECK(thread_order_difference([&] { return std::vector<std::vector<double>>{{loss_on(Device::CUDA)}}; }) == "");
#endif
  }
  const Tensor logits = Tensor::ones({4, 3}, DType::Float64);
  const Tensor none = Tensor::from_indices({-100, -100, -100, -100}, {4});
  CHECK(cross_entropy(logits.to(Device::CUDA), none.to(Device::CUDA)).to(Device::CPU).item() == 0.0);
}

TEST_CASE("cuda: column sums and the clipping norm's sum of squares by thread blocks equal float64 sums", "[cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  // column_sums: N = 700 rows (three chunks of 256 on the GPU, the last partial), D = 45
  // columns (two blocks of 32, the second partial), with and without xhat; N = 0 gives
  // zeros. Expected: sum_r g[r, j] xhat[r, j] in long double, written here.
  for (DType dtype : {DType::Float64, DType::Float32}) {
    for (std::int64_t N : {700, 3, 0}) {
      const std::int64_t D = 45;
      Generator gen(static_cast<std::uint64_t>(N) + 17);
      const Tensor g = Tensor::normal({N, D}, gen, 0.5, 2.0, dtype),
                   xhat = Tensor::normal({N, D}, gen, 0.0, 1.0, dtype);
      const auto gv = g.to_vector(), hv = xhat.to_vector();
      for (const bool with_xhat : {true, false}) {
        const Tensor gd = g.to(Device::CUDA), hd = xhat.to(Device::CUDA);
        // NaN first: every sum must be written (N = 0 included).
        Tensor out = Tensor::from_vector(std::vector<double>(D, NAN), {D}, dtype).to(Device::CUDA);
        cuda::column_sums(gd.raw_data(), with_xhat ? hd.raw_data() : nullptr, out.raw_data(), N, D, dtype);
        const auto got = out.to_vector();
        for (std::int64_t j = 0; j < D; ++j) {
          long double want = 0, magnitude = 0;
          for (std::int64_t r = 0; r < N; ++r) {
            const auto i = static_cast<std::size_t>(r * D + j);
            const long double term = static_cast<long double>(gv[i]) * (with_xhat ? hv[i] : 1.0);
            want += term;
            magnitude += std::fabs(term);
          }
          INFO(dtype_name(dtype) << " N=" << N << " column " << j << (with_xhat ? " with xhat" : ""));
          // Double sums of N terms, then one rounding to the dtype.
          const double rounding = dtype == DType::Float32 ? 6e-8 : 1.2e-16;
          CHECK(std::fabs(got[static_cast<std::size_t>(j)] - static_cast<double>(want)) <=
                rounding * std::fabs(static_cast<double>(want)) + 1e-14 * static_cast<double>(magnitude));
        }
      }
    }
  }

  // sum_of_squares over several arrays in one call: float32 and float64 arrays, one over
  // many chunks of 4096, an empty one, a single element; no arrays at all gives 0.
  Generator gen(3);
  const std::vector<Tensor> arrays = {Tensor::normal({10000}, gen, 0.1, 1.0, DType::Float32),
                                      Tensor::normal({4097}, gen, -0.3, 2.0, DType::Float64),
                                      Tensor::zeros({0}, DType::Float32), Tensor::from_vector({-3.0}, {1})};
  long double want = 0;
  std::vector<Tensor> on_gpu;
  std::vector<cuda::DeviceArray> spans;
  for (const auto& a : arrays) {
    for (double x : a.to_vector()) want += static_cast<long double>(x) * x;
    on_gpu.push_back(a.to(Device::CUDA));
    spans.push_back({on_gpu.back().raw_data(), on_gpu.back().numel(), on_gpu.back().dtype()});
  }
  const double total = cuda::sum_of_squares(spans);
  CHECK(std::fabs(total - static_cast<double>(want)) <= 1e-14 * static_cast<double>(want));
  CHECK(cuda::sum_of_squares({}) == 0.0);
  CHECK(cuda::sum_of_squares({spans[2]}) == 0.0);
  require_error([&] { cuda::sum_of_squares({{on_gpu[0].raw_data(), 4, DType::Int64}}); }, "sum_of_squares on cuda");
#if defined(HKT_EMULATE_CUDA)
  const Tensor g = Tensor::normal({700, 45}, gen, 0.0, 1.0, DType::Float32).to(Device::CUDA);
  CHECK(thread_order_difference([&] {
          Tensor out = Tensor::zeros({45}, DType::Float32, Device::CUDA);
          cuda::column_sums(g.raw_data(), g.raw_data(), out.raw_data(), 700, 45, DType::Float32);
          return std::vector<std::vector<double>>{out.to_vector(), {cuda::sum_of_squares(spans)}};
        }) == "");
#endif
}

TEST_CASE("cuda: softmax, log_softmax and layer_norm rows by warps give the same bits under every thread order",
          "[cuda]") {
  HKT_SKIP_UNLESS_CUDA();
#if !defined(HKT_EMULATE_CUDA)
  std::cout << "skipped: thread orders are the emulator's" << std::endl;
#else
  // Rows of 1, 31, 33 and 300 elements (fewer than a warp, one short of it, one over, and
  // ten a lane), forward and backward; each op's values against the CPU are the
  // consistency harness's (the cases above in every dtype).
  for (std::int64_t n : {1, 31, 33, 300}) {
    INFO("row length " << n);
    Generator gen(static_cast<std::uint64_t>(n));
    const Tensor x = Tensor::normal({7, n}, gen, 0.0, 3.0, DType::Float32);
    const Tensor w = Tensor::normal({n}, gen, 1.0, 0.5, DType::Float32), b = Tensor::normal({n}, gen);
    const Tensor upstream = Tensor::normal({7, n}, gen, 0.0, 1.0, DType::Float32).to(Device::CUDA);
    CHECK(thread_order_difference([&] {
            std::vector<std::vector<double>> out;
            for (int op = 0; op < 3; ++op) {
              Tensor xd = x.to(Device::CUDA).detach().set_requires_grad();
              Tensor wd = w.to(Device::CUDA).detach().set_requires_grad();
              Tensor y = op == 0 ? softmax(xd) : op == 1 ? log_softmax(xd) : layer_norm(xd, wd, b.to(Device::CUDA));
              y.backward(upstream);
              out.push_back(y.to_vector());
              out.push_back(xd.grad().to_vector());
              if (op == 2) out.push_back(wd.grad().to_vector());
            }
            return out;
          }) == "");
  }
#endif
}

TEST_CASE(
    "cuda: a training step waits for the device only at log steps, and a non-finite loss read late names its "
    "step",
    "[cuda][train]") {
  HKT_SKIP_UNLESS_CUDA();
  // 20 steps logged every 5: on the GPU each step's loss, accuracy and gradient norm are
  // read back only when its window is logged, so no host wait falls inside the steps
  // (host_waits counts a GPU's waits in the EMULATE build too). The windows' numbers are
  // the CPU run's, up to float32 rounding.
  auto cfg = tiny_config("hkt", 20);
  cfg["train"]["log_every"] = 5;
  cfg["train"]["eval_every"] = 10;
  cfg["train"]["checkpoint_every"] = 10;
  const std::string cpu_dir = fresh_dir("late_cpu"), gpu_dir = fresh_dir("late_gpu");
  std::ostringstream log;
  train_run(cfg, cpu_dir, log);
  train_run(cfg, gpu_dir, log, false, 0, false, Device::CUDA);
  std::vector<config::Json> cpu_lines, gpu_lines;
  for (const auto& [dir, lines] : {std::pair{cpu_dir, &cpu_lines}, {gpu_dir, &gpu_lines}}) {
    std::ifstream in(dir + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const auto j = config::Json::parse(line);
      if (j.contains("loss")) lines->push_back(j);
    }
  }
  REQUIRE(cpu_lines.size() == 4);
  REQUIRE(gpu_lines.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    INFO("log line " << i);
    CHECK_FALSE(cpu_lines[i].contains("host_waits"));
    CHECK(gpu_lines[i]["host_waits"] == 0);
    for (const char* key : {"loss", "grad_norm"}) {
      const double a = cpu_lines[i][key].get<double>(), b = gpu_lines[i][key].get<double>();
      INFO(key << ": cpu " << a << ", gpu " << b);
      CHECK(std::abs(a - b) <= 1e-3 * std::abs(a));
    }
    // One of the window's 40 predictions may flip on an argmax near-tie under the
    // devices' different rounding, not more.
    CHECK(std::abs(cpu_lines[i]["accuracy"].get<double>() - gpu_lines[i]["accuracy"].get<double>()) <=
          1.0 / 40 + 1e-12);
  }

  // lr = 1e30: the first update makes every weight enormous and the second step's loss
  // non-finite. On the CPU the run stops inside step 2; on the GPU the loss is read at
  // the step-4 log line, which stops the run naming step 2, before the checkpoint of
  // step 4 could save the weights that followed.
  auto bad = tiny_config("hkt", 50);
  bad["train"]["lr"] = 1e30;
  bad["train"]["clip_norm"] = 0.0;
  bad["train"]["log_every"] = 4;
  bad["train"]["checkpoint_every"] = 4;
  std::vector<std::string> messages;
  for (Device device : {Device::CPU, Device::CUDA}) {
    const std::string dir = fresh_dir(std::string("late_nan_") + device_name(device));
    try {
      train_run(bad, dir, log, false, 0, false, device);
      FAIL("expected training to stop");
    } catch (const Error& e) {
      messages.push_back(e.what());
    }
    CHECK_FALSE(fs::exists(dir + "/last.safetensors"));
  }
  INFO("cpu: " << messages[0] << "\ngpu: " << messages[1]);
  CHECK(messages[0].rfind("step 2: the loss is ", 0) == 0);
  CHECK(messages[1] == messages[0]);
  CHECK(messages[1].find("no checkpoint was written yet") != std::string::npos);
}
