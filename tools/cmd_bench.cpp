// cmd_bench.cpp: `hkt bench attention`: forward and backward times of hierarchical
// attention (fused op or composite reference) over T and L, with counted FLOPs, the
// HKT/MHA ratios (against L = 1 at the same T, same implementation) and peak memory.
// Times are medians of --repeats runs after one warm-up run; memory is the peak of
// engine tensor storage during forward + backward, above what existed before.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "attention/hkt_attention.h"
#include "commands.h"
#include "ops.h"

namespace hkt::tools {

namespace {

struct BenchArgs {
  std::vector<std::int64_t> T{256, 512, 1024, 2048, 4096};
  std::vector<int> L{1, 2, 3};
  std::int64_t d_head = 64, heads = 1, batch = 1;
  std::vector<std::string> impl{"fused"};
  int repeats = 3;
  int threads = 0;
  bool causal = false, json = false;
  std::string dtype = "f32";
};

struct Row {
  std::string impl;
  std::int64_t T;
  int L;
  double forward_ms, backward_ms, score_gflop, total_gflop, peak_mib;
  double time_ratio = 0, score_ratio = 0, total_ratio = 0;  // against L = 1
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Row measure(const BenchArgs& a, const std::string& impl, std::int64_t T, int L) {
  const DType dtype = a.dtype == "f64" ? DType::Float64 : DType::Float32;
  Generator gen(0);
  std::vector<Tensor> q, k;
  for (int l = 0; l < L; ++l) {
    const std::int64_t Tl = (T + (std::int64_t{1} << l) - 1) >> l;
    q.push_back(Tensor::normal({a.batch, a.heads, Tl, a.d_head}, gen, 0, 1, dtype).set_requires_grad());
    k.push_back(Tensor::normal({a.batch, a.heads, Tl, a.d_head}, gen, 0, 1, dtype).set_requires_grad());
  }
  Tensor v = Tensor::normal({a.batch, a.heads, T, a.d_head}, gen, 0, 1, dtype).set_requires_grad();
  Tensor alpha = Tensor::full({a.heads, L}, 1.0 / L, dtype).set_requires_grad();
  Tensor grad_out = Tensor::normal({a.batch, a.heads, T, a.d_head}, gen, 0, 1, dtype);
  HktAttentionOptions options;
  options.causal = a.causal;
  std::vector<double> fwd, bwd;
  double peak = 0;
  for (int r = 0; r <= a.repeats; ++r) {  // run 0 is the warm-up
    const std::size_t base = cpu_memory_stats().current_bytes;
    reset_peak_cpu_memory();
    const auto t0 = std::chrono::steady_clock::now();
    Tensor out = impl == "fused" ? hkt_attention_fused(q, k, v, alpha, Tensor(), options)
                                 : hkt_attention_composite(q, k, v, alpha, Tensor(), options);
    const auto t1 = std::chrono::steady_clock::now();
    out.backward(grad_out);
    const auto t2 = std::chrono::steady_clock::now();
    peak = std::max(peak, static_cast<double>(cpu_memory_stats().peak_bytes - base));
    for (auto* t : {&q, &k})
      for (auto& x : *t) x.zero_grad();
    v.zero_grad();
    alpha.zero_grad();
    if (r == 0) continue;
    fwd.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    bwd.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  const auto flops = hkt_attention_flops(a.batch, a.heads, T, a.d_head, L);
  return Row{impl, T, L, median(fwd), median(bwd), flops.score_flops / 1e9, flops.total_flops / 1e9, peak / (1024.0 * 1024.0)};
}

// Parses "1,2,3" into numbers.
template <class N>
std::vector<N> parse_list(const std::string& s, const char* what) {
  std::vector<N> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      std::size_t used = 0;
      const long long v = std::stoll(item, &used);
      check(used == item.size() && v > 0, "");
      out.push_back(static_cast<N>(v));
    } catch (const std::exception&) {
      throw Error(std::string("bench attention: ") + what + " must be a comma-separated list of positive integers, got '" + s + "'");
    }
  }
  check(!out.empty(), std::string("bench attention: ") + what + " is empty");
  return out;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* sub = bench->add_subcommand("attention",
                                    "Forward/backward time, counted FLOPs, HKT/MHA ratios and peak memory of hierarchical attention");
  auto args = std::make_shared<BenchArgs>();
  auto T_str = std::make_shared<std::string>("256,512,1024,2048,4096");
  auto L_str = std::make_shared<std::string>("1,2,3");
  auto impl_str = std::make_shared<std::string>("fused");
  sub->add_option("--T", *T_str, "Sequence lengths, comma-separated")->capture_default_str();
  sub->add_option("--L", *L_str, "Levels, comma-separated (1 = standard attention, the baseline of the ratios)")->capture_default_str();
  sub->add_option("--d-head", args->d_head, "Head width d_h")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--heads", args->heads, "Heads")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--batch", args->batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--impl", *impl_str, "fused, composite, or fused,composite")->capture_default_str();
  sub->add_option("--repeats", args->repeats, "Timed runs per point (the median is reported)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--threads", args->threads, "OpenMP threads (0: the OpenMP default)")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--dtype", args->dtype, "f32 or f64")->capture_default_str()->check(CLI::IsMember({"f32", "f64"}));
  sub->add_flag("--causal", args->causal, "Causal masking");
  sub->add_flag("--json", args->json, "Print a JSON array of rows");
  on_selected(sub, [args, T_str, L_str, impl_str] {
    args->T = parse_list<std::int64_t>(*T_str, "--T");
    args->L = parse_list<int>(*L_str, "--L");
    for (int L : args->L) check(L <= 4, "bench attention: --L values must be in 1..4, got " + std::to_string(L));
    args->impl.clear();
    std::stringstream ss(*impl_str);
    for (std::string item; std::getline(ss, item, ',');) {
      check(item == "fused" || item == "composite", "bench attention: --impl must list fused and/or composite, got '" + item + "'");
      args->impl.push_back(item);
    }
    if (args->threads > 0) omp_set_num_threads(args->threads);
    std::vector<Row> rows;
    for (const auto& impl : args->impl)
      for (auto T : args->T) {
        double base_ms = 0, base_score = 0, base_total = 0;
        for (int L : args->L) {
          Row r = measure(*args, impl, T, L);
          if (L == 1) {
            base_ms = r.forward_ms + r.backward_ms;
            base_score = r.score_gflop;
            base_total = r.total_gflop;
          }
          if (base_ms > 0) {
            r.time_ratio = (r.forward_ms + r.backward_ms) / base_ms;
            r.score_ratio = r.score_gflop / base_score;
            r.total_ratio = r.total_gflop / base_total;
          }
          rows.push_back(r);
          if (!args->json) {
            if (rows.size() == 1)
              std::printf("%-10s %6s %2s %11s %11s %10s %10s %8s %8s %8s %9s\n", "impl", "T", "L", "forward_ms", "backward_ms",
                          "score_GF", "total_GF", "score_x", "total_x", "time_x", "peak_MiB");
            std::printf("%-10s %6lld %2d %11.2f %11.2f %10.3f %10.3f %8.4f %8.4f %8.3f %9.1f\n", r.impl.c_str(),
                        static_cast<long long>(r.T), r.L, r.forward_ms, r.backward_ms, r.score_gflop, r.total_gflop,
                        r.score_ratio, r.total_ratio, r.time_ratio, r.peak_mib);
            std::fflush(stdout);
          }
        }
      }
    if (args->json) {
      auto out = nlohmann::json::array();
      for (const auto& r : rows)
        out.push_back({{"impl", r.impl}, {"T", r.T}, {"L", r.L}, {"forward_ms", r.forward_ms}, {"backward_ms", r.backward_ms},
                       {"score_gflop", r.score_gflop}, {"total_gflop", r.total_gflop}, {"score_flop_ratio", r.score_ratio},
                       {"total_flop_ratio", r.total_ratio}, {"time_ratio", r.time_ratio}, {"peak_mib", r.peak_mib}});
      std::cout << out.dump(2) << "\n";
    }
    return 0;
  });
}

}  // namespace hkt::tools
