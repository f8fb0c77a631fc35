// cmd_gradcheck.cpp: `hkt gradcheck [--op NAME | --all] [--dtype f64|f32] [--json] [--list]`.
// Runs the registered finite-difference checks (engine/gradcheck/) and prints one row
// per (op, shape); exit status 1 if any row fails.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "cuda_backend.h"
#include "gradcheck/consistency.h"
#include "gradcheck/gradcheck.h"

namespace hkt::tools {

namespace {

// `hkt gradcheck --device cuda`: one row per (op, shape); exit status 1 if any fails.
int run_cuda_consistency(const std::string& op, const std::string& dtype_name_arg, bool json) {
  const DType dtype = dtype_name_arg == "f32" ? DType::Float32 : DType::Float64;
  const auto results = gradcheck::run_consistency(op, dtype);
  int failed = 0, skipped = 0;
  for (const auto& r : results) {
    failed += !r.passed && !r.skipped;
    skipped += r.skipped;
  }
  if (json) {
    auto rows = nlohmann::json::array();
    for (const auto& r : results)
      rows.push_back({{"op", r.op},
                      {"shape", r.shape},
                      {"dtype", dtype_name(r.dtype)},
                      {"forward_err", r.forward_err},
                      {"backward_err", r.backward_err},
                      {"bound", r.bound},
                      {"passed", r.passed},
                      {"skipped", r.skipped},
                      {"note", r.note}});
    std::cout << rows.dump(2) << "\n";
  } else {
    std::printf("%-24s %-40s %12s %12s %9s  %s\n", "op", "shape", "forward_err", "backward_err", "bound", "result");
    for (const auto& r : results)
      std::printf("%-24s %-40s %12.3e %12.3e %9.1e  %s\n", r.op.c_str(), r.shape.c_str(), r.forward_err, r.backward_err,
                  r.bound,
                  r.skipped  ? ("skipped: " + r.note).c_str()
                  : r.passed ? "ok"
                             : ("FAILED: " + r.note).c_str());
    std::printf("cuda consistency (%s, %s): %zu passed, %d failed, %d skipped\n", dtype_name_arg.c_str(),
                cuda::is_emulated() ? "emulated backend" : cuda::device_info(0).name.c_str(),
                results.size() - static_cast<std::size_t>(failed + skipped), failed, skipped);
  }
  return failed ? 1 : 0;
}

}  // namespace

void add_gradcheck_command(CLI::App& app) {
  struct Args {
    std::string op;
    bool all = false, json = false, list = false;
    std::string dtype = "f64";
    std::string device = "cpu";
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand("gradcheck",
                                 "Check every differentiable op's gradient against central finite differences "
                                 "(float64, eps 1e-6, atol 1e-5, rtol 1e-3, as PyTorch's gradcheck)");
  auto* op_opt = sub->add_option("--op", args->op, "Check only this op (see --list)");
  auto* all_opt = sub->add_flag("--all", args->all, "Check every op (the default when --op is not given)");
  op_opt->excludes(all_opt);
  op_opt->check([](const std::string& v) {
    return v.empty() ? std::string("--op needs an op name (see --list)") : std::string();
  });
  sub->add_option("--dtype", args->dtype,
                  "f64: analytic gradients in float64; f32: float32 kernels against float64 differences "
                  "(tolerances atol 1e-3, rtol 1e-2)")
      ->check(CLI::IsMember({"f64", "f32"}));
  sub->add_option("--device", args->device,
                  "cpu: finite-difference checks; cuda: the consistency harness, every op forward and backward on the "
                  "CUDA backend against the CPU (engine/gradcheck/consistency.h)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  auto* json_opt = sub->add_flag("--json", args->json,
                                 R"(Print a JSON array of {"op","shape","mode","max_abs_err","max_rel_err","passed"})");
  auto* list_opt =
      sub->add_flag("--list", args->list, "List the ops that have checks, with their number of cases, and exit");
  list_opt->excludes(op_opt)->excludes(all_opt)->excludes(json_opt);

  on_selected(sub, [args] {
    if (args->list) {
      for (const auto& name : gradcheck::op_names()) {
        int n = 0, large = 0;
        for (const auto& c : gradcheck::all_cases()) (c.large ? large : n) += c.op == name;
        std::cout << name << " (" << n << (n == 1 ? " case)" : " cases)");
        if (large > 0) std::cout << " + " << large << " large (CUDA consistency only)";
        std::cout << "\n";
      }
      return 0;
    }
    if (args->device == "cuda") return run_cuda_consistency(args->op, args->dtype, args->json);
    gradcheck::Options options;
    if (args->dtype == "f32") {
      // float32 analytic gradients carry ~1e-7 relative rounding per op; against float64
      // differences the PyTorch float64 tolerances are too tight (tests/tolerances.h).
      options.dtype = DType::Float32;
      options.atol = 1e-3;
      options.rtol = 1e-2;
    }
    const auto results = gradcheck::run(args->op, options);
    int failed = 0;
    for (const auto& r : results) failed += !r.passed;
    if (args->json) {
      auto rows = nlohmann::json::array();
      for (const auto& r : results)
        rows.push_back({{"op", r.op},
                        {"shape", r.shape},
                        {"mode", r.mode},
                        {"max_abs_err", r.max_abs_err},
                        {"max_rel_err", r.max_rel_err},
                        {"passed", r.passed}});
      std::cout << rows.dump(2) << "\n";
    } else {
      std::printf("%-20s %-34s %-10s %12s %12s  %s\n", "op", "shape", "mode", "max_abs_err", "max_rel_err", "result");
      for (const auto& r : results)
        std::printf("%-20s %-34s %-10s %12.3e %12.3e  %s\n", r.op.c_str(), r.shape.c_str(), r.mode.c_str(),
                    r.max_abs_err, r.max_rel_err, r.passed ? "ok" : ("FAILED: " + r.failure).c_str());
      std::printf("gradcheck (%s): %zu passed, %d failed\n", args->dtype.c_str(), results.size() - failed, failed);
    }
    return failed ? 1 : 0;
  });
}

}  // namespace hkt::tools
