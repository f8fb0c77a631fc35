// cmd_bench.cpp: `hkt bench attention`: forward and backward times of hierarchical
// attention (fused op or composite reference) over T and L, with counted FLOPs, the
// HKT/MHA ratios (against L = 1 at the same T, same implementation) and peak memory.
// Times are medians of --repeats runs after one warm-up run, the L values alternating
// within each repeat; memory is the peak of engine tensor storage during forward +
// backward, above what existed before (packing buffers and BLAS workspaces excluded).
#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "attention/hkt_attention.h"
#include "commands.h"
#include "config.h"
#include "trainer.h"
#include "cuda_backend.h"
#include "ops.h"

namespace hkt::tools {

namespace {

struct BenchArgs {
  std::vector<std::int64_t> T{256, 512, 1024, 2048, 4096};
  std::vector<int> L{1, 2, 3};
  std::int64_t d_head = 64, heads = 1, batch = 1;
  std::int64_t block_q = HktAttentionOptions{}.block_q, block_k = HktAttentionOptions{}.block_k;
  std::vector<std::string> impl{"fused"};
  int repeats = 3;
  int threads = 0;
  bool causal = false, json = false, forward_only = false;
  std::string dtype = "f32";
  Device device = Device::CPU;
};

struct Row {
  std::string impl;
  std::int64_t T;
  int L;
  double forward_ms, backward_ms, score_flops, total_flops, backward_flops, peak_mib;
  // Against L = 1; 0 when there is no L = 1 row. train_ratio: forward + backward counted
  // FLOPs, the ratio time_ratio would have if time were proportional to them; 0 where
  // backward_flops is (counted_flops).
  double time_ratio = 0, score_ratio = 0, total_ratio = 0, train_ratio = 0;
  std::string note;  // "out of memory" when the point did not fit
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The inputs of one attention call at (T, L), with gradients enabled.
struct Problem {
  std::vector<Tensor> q, k;
  Tensor v, alpha, grad_out;
};

Problem make_problem(const BenchArgs& a, std::int64_t T, int L) {
  const DType dtype = a.dtype == "f64" ? DType::Float64 : DType::Float32;
  Generator gen(0);
  Problem p;
  // Random values (never zeros: they can run faster than real data), made on the host
  // and moved to the device as leaves.
  const auto leaf = [&](Tensor t) { return t.to(a.device).detach().set_requires_grad(); };
  for (int l = 0; l < L; ++l) {
    const std::int64_t Tl = (T + (std::int64_t{1} << l) - 1) >> l;
    p.q.push_back(leaf(Tensor::normal({a.batch, a.heads, Tl, a.d_head}, gen, 0, 1, dtype)));
    p.k.push_back(leaf(Tensor::normal({a.batch, a.heads, Tl, a.d_head}, gen, 0, 1, dtype)));
  }
  p.v = leaf(Tensor::normal({a.batch, a.heads, T, a.d_head}, gen, 0, 1, dtype));
  p.alpha = leaf(Tensor::full({a.heads, L}, 1.0 / L, dtype));
  p.grad_out = Tensor::normal({a.batch, a.heads, T, a.d_head}, gen, 0, 1, dtype).to(a.device);
  return p;
}

// One forward + backward; returns (forward ms, backward ms, peak bytes above the start).
std::array<double, 3> run_once(const BenchArgs& a, const std::string& impl, Problem& p) {
  HktAttentionOptions options;
  options.causal = a.causal;
  options.block_q = a.block_q;
  options.block_k = a.block_k;
  const bool gpu = a.device == Device::CUDA;
  // On the GPU, work is asynchronous: synchronize before each clock reading.
  const auto now = [gpu] {
    if (gpu) cuda::synchronize();
    return std::chrono::steady_clock::now();
  };
  const std::size_t base = gpu ? cuda::memory_stats().allocated_bytes : cpu_memory_stats().current_bytes;
  if (gpu)
    cuda::reset_peak_memory();
  else
    reset_peak_cpu_memory();
  // fused-v0 / fused-v2: the CUDA backend's per-row v0 kernels (the reference the GPU
  // benchmark compares v1 against) or v2's bf16 tensor-core kernels instead of the tiled
  // v1; restored on every path out.
  struct KernelVersion {
    int saved = cuda::attention_kernel();
    explicit KernelVersion(int version) {
      if (version >= 0) cuda::set_attention_kernel(version);
    }
    ~KernelVersion() { cuda::set_attention_kernel(saved); }
  } version(impl == "fused-v0" ? 0 : impl == "fused-v2" ? 2 : -1);
  const auto t0 = now();
  Tensor out = impl == "composite" ? hkt_attention_composite(p.q, p.k, p.v, p.alpha, Tensor(), options)
                                   : hkt_attention_fused(p.q, p.k, p.v, p.alpha, Tensor(), options);
  const auto t1 = now();
  if (!a.forward_only) out.backward(p.grad_out);
  const auto t2 = now();
  const double peak =
      static_cast<double>((gpu ? cuda::memory_stats().peak_allocated_bytes : cpu_memory_stats().peak_bytes) - base);
  for (auto* t : {&p.q, &p.k})
    for (auto& x : *t) x.zero_grad();
  p.v.zero_grad();
  p.alpha.zero_grad();
  return {std::chrono::duration<double, std::milli>(t1 - t0).count(),
          std::chrono::duration<double, std::milli>(t2 - t1).count(), peak};
}

// Every L at one T, the L values alternating within each repeat, so that a slow spell of
// the machine hits all of them alike and the ratios stay meaningful.
std::vector<Row> measure_or_note(const BenchArgs& a, const std::string& impl, std::int64_t T);

// hkt_attention_flops of one point, with backward_flops 0 where that count (the fused
// backward's) is not what runs: the composite's autograd backward keeps the scores
// instead of recomputing them, and --forward-only runs no backward.
AttentionFlops counted_flops(const BenchArgs& a, const std::string& impl, std::int64_t T, int L) {
  AttentionFlops f = hkt_attention_flops(a.batch, a.heads, T, a.d_head, L);
  if (impl == "composite" || a.forward_only) f.backward_flops = 0;
  return f;
}

std::vector<Row> measure(const BenchArgs& a, const std::string& impl, std::int64_t T) {
  std::vector<Problem> problems;
  for (int L : a.L) problems.push_back(make_problem(a, T, L));
  std::vector<std::vector<double>> fwd(a.L.size()), bwd(a.L.size());
  std::vector<double> peak(a.L.size(), 0.0);
  for (int r = 0; r <= a.repeats; ++r) {  // r = 0 is the warm-up
    for (std::size_t i = 0; i < a.L.size(); ++i) {
      const auto [f, b, m] = run_once(a, impl, problems[i]);
      peak[i] = std::max(peak[i], m);
      if (r == 0) continue;
      fwd[i].push_back(f);
      bwd[i].push_back(b);
    }
  }
  std::vector<Row> rows;
  for (std::size_t i = 0; i < a.L.size(); ++i) {
    const auto flops = counted_flops(a, impl, T, a.L[i]);
    rows.push_back(Row{impl, T, a.L[i], median(fwd[i]), median(bwd[i]), flops.score_flops, flops.total_flops,
                       flops.backward_flops, peak[i] / (1024.0 * 1024.0), 0, 0, 0, 0, ""});
  }
  return rows;
}

// measure(), but a point that runs out of device memory becomes rows noting it (the
// composite op materialises [B, H, T, T] per level: at T = 16384 that exceeds a GPU).
std::vector<Row> measure_or_note(const BenchArgs& a, const std::string& impl, std::int64_t T) {
  try {
    return measure(a, impl, T);
  } catch (const Error& e) {
    if (std::string(e.what()).find("out of memory") == std::string::npos) throw;
    if (a.device == Device::CUDA) cuda::empty_cache();
    std::vector<Row> rows;
    for (int L : a.L) {
      const auto flops = counted_flops(a, impl, T, L);
      Row r{impl, T, L, 0, 0, flops.score_flops, flops.total_flops, flops.backward_flops,
            0,    0, 0, 0, 0, "out of memory"};
      rows.push_back(r);
    }
    return rows;
  }
}

// Parses "1,2,3" into numbers: distinct positive integers written in decimal digits only,
// each at most the largest N, no empty item.
template <class N>
std::vector<N> parse_list(const std::string& s, const char* what) {
  const auto refuse = [&] {
    return Error(std::string("bench attention: ") + what +
                 " must be a comma-separated list of positive integers, got '" + s + "'");
  };
  std::vector<N> out;
  std::size_t begin = 0;
  while (true) {  // items between commas; "1," and ",1" have an empty one
    const std::size_t end = std::min(s.find(',', begin), s.size());
    const std::string item = s.substr(begin, end - begin);
    if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos) throw refuse();
    const std::size_t digits = item.size() - std::min(item.find_first_not_of('0'), item.size());  // leading zeros off
    const long long v = digits <= 18 ? std::stoll(item) : -1;  // at most 18 digits: no overflow
    if (v == 0) throw refuse();
    check(v > 0 && v <= static_cast<long long>(std::numeric_limits<N>::max()),
          std::string("bench attention: ") + what + " value " + item + " is too large");
    // A repeated value would measure and print the same point twice.
    check(std::find(out.begin(), out.end(), static_cast<N>(v)) == out.end(),
          std::string("bench attention: ") + what + " lists " + std::to_string(v) + " twice in '" + s + "'");
    out.push_back(static_cast<N>(v));
    if (end == s.size()) break;
    begin = end + 1;
  }
  return out;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  add_bench_step_command(bench);
  auto* sub = bench->add_subcommand(
      "attention", "Forward/backward time, counted FLOPs, HKT/MHA ratios and peak memory of hierarchical attention");
  auto args = std::make_shared<BenchArgs>();
  auto T_str = std::make_shared<std::string>("256,512,1024,2048,4096");
  auto L_str = std::make_shared<std::string>("1,2,3");
  auto impl_str = std::make_shared<std::string>("fused");
  sub->add_option("--T", *T_str, "Sequence lengths, comma-separated")->capture_default_str();
  sub->add_option("--L", *L_str, "Levels, comma-separated (1 = standard attention, the baseline of the ratios)")
      ->capture_default_str();
  sub->add_option("--d-head", args->d_head, "Head width d_h")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--heads", args->heads, "Heads")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--batch", args->batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--block-q", args->block_q,
                  "Query tile rows of the fused CPU op (rounded up to a multiple of 2^(L-1))")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{4096}));
  sub->add_option("--block-k", args->block_k,
                  "Key tile columns of the fused CPU op (rounded up to a multiple of 2^(L-1))")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{4096}));
  sub->add_option("--impl", *impl_str,
                  "Comma-separated: fused, composite, fused-v0 (CUDA: the per-row v0 kernels), fused-v2 (CUDA, f32: "
                  "the bf16 tensor-core kernels)")
      ->capture_default_str();
  sub->add_option("--repeats", args->repeats, "Timed runs per point (the median is reported)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--threads", args->threads, "OpenMP threads (0: the OpenMP default)")
      ->capture_default_str()
      ->check(CLI::Range(0, config::kMaxThreads));
  sub->add_option("--dtype", args->dtype, "f32 or f64")->capture_default_str()->check(CLI::IsMember({"f32", "f64"}));
  sub->add_flag("--causal", args->causal, "Causal masking");
  auto device_str = std::make_shared<std::string>("cpu");
  sub->add_option("--device", *device_str,
                  "cpu, or cuda (times after a device synchronisation; peak = device tensor memory)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_flag("--forward-only", args->forward_only, "Time the forward pass only (backward_ms is 0)");
  sub->add_flag("--json", args->json, "Print a JSON array of rows");
  on_selected(sub, [args, T_str, L_str, impl_str, device_str] {
    args->device = parse_device(*device_str);
    if (args->device == Device::CUDA) cuda::require_device("bench attention --device cuda");
    args->T = parse_list<std::int64_t>(*T_str, "--T");
    args->L = parse_list<int>(*L_str, "--L");
    for (int L : args->L) check(L <= 4, "bench attention: --L values must be in 1..4, got " + std::to_string(L));
    args->impl.clear();
    std::stringstream ss(*impl_str);
    for (std::string item; std::getline(ss, item, ',');) {
      check(item == "fused" || item == "composite" || item == "fused-v0" || item == "fused-v2",
            "bench attention: --impl must list fused, composite, fused-v0 and/or fused-v2, got '" + item + "' in '" +
                *impl_str + "'");
      check(std::find(args->impl.begin(), args->impl.end(), item) == args->impl.end(),
            "bench attention: --impl names '" + item + "' twice");
      check(item != "fused-v0" || args->device == Device::CUDA,
            "bench attention: --impl fused-v0 (the per-row CUDA kernels) needs --device cuda");
      check(item != "fused-v2" || (args->device == Device::CUDA && args->dtype == "f32"),
            "bench attention: --impl fused-v2 (the bf16 tensor-core kernels) needs --device cuda and --dtype f32");
      args->impl.push_back(item);
    }
    check(!args->impl.empty() && impl_str->back() != ',',
          "bench attention: --impl must be a comma-separated list without empty items, got '" + *impl_str + "'");
    config::use_threads(args->threads);
    // The inputs and their gradients (q_l, k_l of every level, v, the output) live on the
    // host first; the composite op adds its T x T scores per level. Refuse a point that
    // cannot fit this machine's memory before allocating anything.
    const double elem = args->dtype == "f64" ? 8.0 : 4.0, bh = static_cast<double>(args->batch * args->heads);
    for (auto T : args->T)
      for (int L : args->L) {
        double rows = 2.0 * static_cast<double>(T);  // v and the output
        for (int l = 0; l < L; ++l) rows += 2.0 * static_cast<double>((T + (std::int64_t{1} << l) - 1) >> l);
        const double inputs = 2.0 * elem * bh * rows * static_cast<double>(args->d_head);  // values and gradients
        const bool composite_here = args->device == Device::CPU &&
                                    std::find(args->impl.begin(), args->impl.end(), "composite") != args->impl.end();
        const double scores =
            composite_here ? elem * bh * static_cast<double>(T) * static_cast<double>(T) * (L + 2.0) : 0.0;
        const double machine = static_cast<double>(physical_memory_bytes());
        const auto gib = [](double bytes) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / double(1ULL << 30));
          return std::string(buf);
        };
        check(machine <= 0 || inputs + scores <= machine,
              "bench attention: T = " + std::to_string(T) + ", L = " + std::to_string(L) + " needs about " +
                  gib(inputs + scores) + " (inputs and gradients " + gib(inputs) +
                  (composite_here ? ", composite scores " + gib(scores) : std::string()) +
                  "), more than this machine's " + gib(machine) + "; lower --T, --batch or --heads" +
                  (composite_here ? ", or leave out --impl composite" : ""));
      }
    std::vector<Row> rows;
    for (const auto& impl : args->impl)
      for (auto T : args->T) {
        std::vector<Row> at_T = measure_or_note(*args, impl, T);
        // Ratios against the L = 1 row of the same T and implementation, when measured.
        const Row* base = nullptr;
        for (const auto& r : at_T)
          if (r.L == 1) base = &r;
        for (auto& r : at_T) {
          if (base && base->note.empty() && r.note.empty()) {
            r.time_ratio = (r.forward_ms + r.backward_ms) / (base->forward_ms + base->backward_ms);
            r.score_ratio = r.score_flops / base->score_flops;
            r.total_ratio = r.total_flops / base->total_flops;
            if (r.backward_flops > 0)
              r.train_ratio = (r.total_flops + r.backward_flops) / (base->total_flops + base->backward_flops);
          }
          rows.push_back(r);
          if (!args->json) {
            if (rows.size() == 1)
              std::printf("%-10s %6s %2s %11s %11s %10s %10s %8s %8s %8s %8s %9s %9s\n", "impl", "T", "L", "forward_ms",
                          "backward_ms", "score_GF", "total_GF", "score_x", "total_x", "train_x", "time_x", "peak_MiB",
                          "fwd_TF/s");
            if (!r.note.empty())
              std::printf("%-10s %6lld %2d %s\n", r.impl.c_str(), static_cast<long long>(r.T), r.L, r.note.c_str());
            else {
              // The ratios need this T's L = 1 row: "-" without one.
              const auto ratio = [](double x, int digits) {
                char buf[32];
                if (x > 0)
                  std::snprintf(buf, sizeof buf, "%8.*f", digits, x);
                else
                  std::snprintf(buf, sizeof buf, "%8s", "-");
                return std::string(buf);
              };
              std::printf("%-10s %6lld %2d %11.2f %11.2f %10.3f %10.3f %s %s %s %s %9.1f %9.3f\n", r.impl.c_str(),
                          static_cast<long long>(r.T), r.L, r.forward_ms, r.backward_ms, r.score_flops / 1e9,
                          r.total_flops / 1e9, ratio(r.score_ratio, 4).c_str(), ratio(r.total_ratio, 4).c_str(),
                          ratio(r.train_ratio, 4).c_str(), ratio(r.time_ratio, 3).c_str(), r.peak_mib,
                          r.total_flops / (r.forward_ms * 1e9));
            }
            std::fflush(stdout);
          }
        }
      }
    if (args->json) {
      // A ratio needs the L = 1 row of the same T and implementation: null without one.
      const auto ratio_or_null = [](double x) { return x > 0 ? nlohmann::json(x) : nlohmann::json(nullptr); };
      auto out = nlohmann::json::array();
      for (const auto& r : rows)
        out.push_back({{"impl", r.impl},
                       {"T", r.T},
                       {"L", r.L},
                       {"forward_ms", r.forward_ms},
                       {"backward_ms", r.backward_ms},
                       {"score_gflop", r.score_flops / 1e9},
                       {"total_gflop", r.total_flops / 1e9},
                       {"score_flop_ratio", ratio_or_null(r.score_ratio)},
                       {"total_flop_ratio", ratio_or_null(r.total_ratio)},
                       {"backward_gflop",
                        r.backward_flops > 0 ? nlohmann::json(r.backward_flops / 1e9) : nlohmann::json(nullptr)},
                       {"train_flop_ratio", ratio_or_null(r.train_ratio)},
                       {"time_ratio", ratio_or_null(r.time_ratio)},
                       {"peak_mib", r.peak_mib},
                       {"forward_tflops", r.forward_ms > 0 ? r.total_flops / (r.forward_ms * 1e9) : 0.0},
                       {"device", device_name(args->device)},
                       {"note", r.note}});
      std::cout << out.dump(2) << "\n";
    }
    return 0;
  });
}

}  // namespace hkt::tools
