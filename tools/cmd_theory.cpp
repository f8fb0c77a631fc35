// cmd_theory.cpp: `hkt theory {psd,decompose,subsume,kurtosis,truncate,all}`: the paper's
// theory results checked on a model's real weights and inputs (models/theory/theory.h does the
// work; docs/theory.md explains every number). Prints tables, or the JSON with --json;
// --plots DIR writes DIR/theory.json and draws PNGs with tools/plot_theory.py.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "config.h"
#include "ops.h"
#include "task.h"
#include "theory.h"
#include "trainer.h"

namespace hkt::tools {

namespace {

using Json = config::Json;

// printf into a std::string.
template <class... A>
std::string fmt(const char* f, A... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

// A JSON number, or "-" for null (a statistic that could not be computed).
std::string num(const Json& v, const char* f = "%10.3e") {
  return v.is_number() ? fmt(f, v.get<double>()) : fmt("%10s", "-");
}

void print_header(const Json& r, const std::string& source) {
  const Json& m = r["model"];
  const Json& in = r["inputs"];
  std::int64_t shortest = 0, longest = 0;
  for (const auto& v : in["lengths"]) {
    const auto t = v.get<std::int64_t>();
    shortest = shortest ? std::min(shortest, t) : t;
    longest = std::max(longest, t);
  }
  std::cout << "hkt theory: " << source << " (" << m["dtype"].get<std::string>()
            << " weights; every check in float64)\n"
            << "model: " << m["layers"] << " layers, " << m["heads"] << " heads (d = " << m["d_model"]
            << ", d_h = " << m["d_head"] << "), L = " << m["levels"] << " levels, fusion "
            << m["fusion"].get<std::string>() << ", level weights " << m["level_weights"].get<std::string>()
            << (m["causal"].get<bool>() ? ", causal" : "") << "\n"
            << "inputs: the first " << in["examples"] << " examples of the " << in["split"].get<std::string>()
            << " split, one at a time (T = " << shortest << ".." << longest << ")\n";
  std::cout << "level weights alpha[layer][head] = ";
  for (const auto& layer : r["alpha"]) {
    std::cout << "[";
    for (std::size_t h = 0; h < layer.size(); ++h) {
      std::cout << (h ? " (" : "(");
      for (std::size_t l = 0; l < layer[h].size(); ++l)
        std::cout << (l ? ", " : "") << fmt("%.3f", layer[h][l].get<double>());
      std::cout << ")";
    }
    std::cout << "] ";
  }
  std::cout << "\n";
}

// The fused-score rows, grouped by (layer, head) (rows come as (layer, head, example) in
// that order): the example with the most negative lambda_min of S^sym (centred = false)
// or of S_c^sym (centred = true), how many examples are PSD, and for the centred table
// the range of the row-mean share over the examples.
void print_fused_rows(const Json& f, bool centred) {
  for (std::size_t i = 0; i < f.size();) {
    std::size_t j = i, worst = i;
    int psd = 0;
    double share_min = 1, share_max = 0;
    auto spec = [&](std::size_t k) -> const Json& { return centred ? f[k]["centred"] : f[k]; };
    for (; j < f.size() && f[j]["layer"] == f[i]["layer"] && f[j]["head"] == f[i]["head"]; ++j) {
      psd += spec(j)["psd"].get<bool>();
      if (spec(j)["lambda_min"].get<double>() < spec(worst)["lambda_min"].get<double>()) worst = j;
      if (centred) {
        share_min = std::min(share_min, f[j]["row_mean_share"].get<double>());
        share_max = std::max(share_max, f[j]["row_mean_share"].get<double>());
      }
    }
    const Json& w = spec(worst);
    const std::string count = std::to_string(psd) + " of " + std::to_string(j - i);
    std::cout << fmt(
        centred ? "%5d %4d  %7d  %19.4e  %19.4e  %22.4f  %-15s" : "%5d %4d  %7d  %17.4e  %17.4e  %22.4f  %s",
        f[i]["layer"].get<int>(), f[i]["head"].get<int>(), f[worst]["example"].get<int>(),
        w["lambda_min"].get<double>(), w["lambda_max"].get<double>(), w["relative_min"].get<double>(), count.c_str());
    if (centred) std::cout << fmt("  %.3f..%.3f", share_min, share_max);
    std::cout << "\n";
    i = j;
  }
}

void print_psd(const Json& p, const Json& lengths, std::int64_t max_positions) {
  std::cout << "\n== psd (Prop. 3.1): M_l = W_Q,h^(l)T W_K,h^(l) per layer, head, level; PSD means lambda_min >= -"
            << fmt("%.0e", p["tolerance"].get<double>()) << " max|lambda| ==\n";
  std::cout << "layer head level  lambda_min(M^sym)  lambda_max(M^sym)  lambda_min/max|lambda|  PSD\n";
  int negative = 0, total = 0;
  for (const auto& row : p["bilinear_forms"]) {
    ++total;
    negative += !row["psd"].get<bool>();
    std::cout << fmt("%5d %4d %5d  %17.4e  %17.4e  %22.4f  %s\n", row["layer"].get<int>(), row["head"].get<int>(),
                     row["level"].get<int>(), row["lambda_min"].get<double>(), row["lambda_max"].get<double>(),
                     row["relative_min"].get<double>(), row["psd"].get<bool>() ? "yes" : "no");
  }
  std::cout << "alpha >= 0: " << (p["alpha_nonnegative"].get<bool>() ? "yes" : "no")
            << "; sufficient condition (every M^sym PSD and alpha >= 0): "
            << (p["condition_holds"].get<bool>() ? "holds"
                                                 : "does not hold (" + std::to_string(negative) + " of " +
                                                       std::to_string(total) + " M^sym have a negative eigenvalue)")
            << "\n";
  int cut = 0;
  for (const auto& t : lengths) cut += t.get<std::int64_t>() > max_positions;
  std::cout << "fused S_h = sum_l alpha_hl Lift_l(S^(l)_h) on real inputs, S^sym over the first <= " << max_positions
            << " positions (" << cut << " of " << lengths.size()
            << " examples are longer: their leading principal submatrix, PSD if the whole is);\n"
            << "per layer and head, the example with the most negative lambda_min(S^sym):\n";
  std::cout << "layer head  example  lambda_min(S^sym)  lambda_max(S^sym)  lambda_min/max|lambda|  PSD in examples\n";
  print_fused_rows(p["fused_scores"], false);
  std::cout << "the same with each row's mean over the keys its softmax sees removed, S_c = S - m 1^T (softmax(S_c) = "
               "softmax(S) row by row),\n"
            << "and the share of ||S||_F the row means carry, ||m 1^T||_F / ||S||_F (min..max over the examples):\n";
  std::cout << "layer head  example  lambda_min(S_c^sym)  lambda_max(S_c^sym)  lambda_min/max|lambda|  PSD in examples"
               "  row-mean share\n";
  print_fused_rows(p["fused_scores"], true);
  const Json& c = p["constructed"];
  std::cout
      << "constructed cases (d = 16, H = 2, L = 3, T = 37, alpha = (0.5, 0.3, 0.2)), worst lambda_min/max|lambda|:\n"
      << fmt("  W_K = +W_Q (condition holds): M^sym %11.3e  S^sym %11.3e  -> S^sym %s\n",
             c["holds"]["m"]["relative_min"].get<double>(), c["holds"]["s"]["relative_min"].get<double>(),
             c["holds"]["s"]["psd"].get<bool>() ? "PSD to rounding" : "NOT PSD")
      << fmt("  W_K = -W_Q (condition fails): M^sym %11.3e  S^sym %11.3e  -> S^sym %s\n",
             c["fails"]["m"]["relative_min"].get<double>(), c["fails"]["s"]["relative_min"].get<double>(),
             c["fails"]["s"]["psd"].get<bool>() ? "PSD" : "clearly not PSD");
}

void print_decompose(const Json& d, std::int64_t examples) {
  std::cout
      << "\n== decompose (Props. 3.5-3.6): ||sym||_F/||.||_F and ||anti||_F/||.||_F of M_l and of S^(l) (mean over "
      << examples << " examples) ==\n";
  std::cout << "layer head level   M sym    M anti   S sym    S anti\n";
  for (const auto& r : d["levels"])
    std::cout << fmt("%5d %4d %5d  %7.4f  %7.4f  %7.4f  %7.4f\n", r["layer"].get<int>(), r["head"].get<int>(),
                     r["level"].get<int>(), r["m_sym_share"].get<double>(), r["m_anti_share"].get<double>(),
                     r["s_sym_share"].get<double>(), r["s_anti_share"].get<double>());
  const double asym = d["max_sym_asymmetry"].get<double>(), anti = d["max_anti_symmetry_error"].get<double>();
  std::cout << fmt("identities over every M_l and S^(l), relative to max|entry|: max|sym + anti - S| = %.1e (one "
                   "rounding), max|sym - sym^T| = %.1e, max|anti + anti^T| = %.1e\n",
                   d["max_reconstruction_error"].get<double>(), asym, anti)
            << (asym == 0 && anti == 0 ? "  (the last two are 0 by construction, not a finding: IEEE addition "
                                         "commutes and b - a == -(a - b))\n"
                                       : "  (the last two should be 0 by construction: IEEE addition commutes and "
                                         "b - a == -(a - b); a nonzero value is a defect)\n");
}

void print_subsume(const Json& s) {
  const Json& a = s["standard"];
  std::cout << "\n== subsume (Prop. 3.4, docs/hkt-attention.md section 4) ==\n"
            << "(a) L = " << a["levels"]
            << ", fixed alpha = (1, 0, ...), against standard attention (L = 1) with the same W_Q^(0), W_K^(0), "
            << "W_V, W_O (layer 0's), on example 0's layer-0 input (T = " << a["T"] << "), float64:\n"
            << fmt("    max|Y_hkt - Y_mha| = %.3g, ||Y_hkt - Y_mha||_F / ||Y_mha||_F = %.3g\n",
                   a["max_abs_error"].get<double>(), a["relative_error"].get<double>())
            << (a["max_abs_error"].get<double>() == 0
                    ? "    0 by construction, not a finding: alpha = e_0 multiplies the coarse levels by 0, and 0 * "
                      "finite = 0, s + 0 = s in IEEE arithmetic (a check of the code)\n"
                    : "    should be 0 by construction (alpha = e_0: 0 * finite = 0, s + 0 = s); a nonzero value is a "
                      "defect\n");
  const Json& c = s["convolution"];
  std::cout << "(b) \"outputs\" fusion, alpha = e_l, one head, W_Q = W_K = I, layer 0's downsampler, W_V, W_O, input "
               "X[p] = A e_p (T = "
            << c["T"]
            << "):\n    ||Y - LiftRows_l(X^(l)) W_V^T W_O^T||_F / ||.||_F by score scale:\n    level         A";
  for (const auto& lv : c["levels"])
    if (!lv["errors"].empty()) {
      for (const auto& e : lv["errors"]) std::cout << fmt("  scale %-8g", e["scale"].get<double>());
      break;
    }
  std::cout << "\n";
  for (const auto& lv : c["levels"]) {
    if (lv.contains("note")) {
      std::cout << fmt("    %5d  not computed: ", lv["level"].get<int>()) << lv["note"].get<std::string>() << "\n";
      continue;
    }
    std::cout << fmt("    %5d  %8g", lv["level"].get<int>(), lv["amplitude"].get<double>());
    for (const auto& e : lv["errors"]) std::cout << fmt("  %14.3e", e["relative_error"].get<double>());
    std::cout << "\n";
  }
}

void print_kurtosis(const Json& k) {
  std::cout << "\n== kurtosis (Thm. 4.3): Mardia's b_{2,p} of the rows of Q^(l)_h and K^(l)_h; Gaussian value p(p+2), "
               "z = (b2 - p(p+2)) / SE ==\n"
            << "(SE = sqrt(8 p (p+2) / n); E_n = p(p+2)(n-1)/(n+1) is the Gaussian mean at this n, below p(p+2) for "
               "small n)\n";
  std::cout << "layer level head      n    p  p(p+2)      E_n       SE     b2(Q)    z(Q)     b2(K)    z(K)\n";
  for (const auto& r : k)
    std::cout << fmt("%5d %5d %4d %6lld %4lld %7.0f %8.1f %8.3f", r["layer"].get<int>(), r["level"].get<int>(),
                     r["head"].get<int>(), static_cast<long long>(r["n"].get<std::int64_t>()),
                     static_cast<long long>(r["p"].get<std::int64_t>()), r["gaussian"].get<double>(),
                     r["gaussian_mean_n"].get<double>(), r["standard_error"].get<double>())
              << num(r["q_b2"], "%10.2f") << num(r["q_z"], "%8.1f") << num(r["k_b2"], "%10.2f")
              << num(r["k_z"], "%8.1f") << "\n";
}

void print_truncate(const Json& t) {
  std::cout << "\n== truncate (Thm. 4.3, Prop. 4.4): ||Y_L' - Y_L||_F / ||Y_L||_F keeping levels 0..L'-1 (alpha "
               "renormalised), over the examples ==\n";
  const std::size_t L = t[0]["errors"].size();
  std::cout << "layer";
  for (std::size_t i = 0; i < L; ++i) std::cout << fmt(i + 1 < L ? "     L' = %zu" : " L' = L = %zu", i + 1);
  std::cout << "   fitted rate r (error ~ C r^L', over L' < L)\n";
  bool full_zero = true;
  for (const auto& r : t) {
    std::cout << fmt("%5d", r["layer"].get<int>());
    for (std::size_t i = 0; i < r["errors"].size(); ++i) {
      const double e = r["errors"][i].get<double>();
      if (i + 1 == L && e == 0)
        std::cout << fmt("  %9s", "0 [c]");
      else
        std::cout << fmt("  %9.3e", e);
      full_zero &= i + 1 < L || e == 0;
    }
    std::cout << "   "
              << (r["rate"].is_number() ? fmt("%.3f", r["rate"].get<double>())
                                        : std::string("- (fewer than 2 nonzero errors below L' = L)"))
              << "\n";
  }
  std::cout << (full_zero ? "[c] 0 by construction, not a finding: keeping every level is the full output Y_L itself\n"
                          : "L' = L should be 0 by construction (the full output Y_L itself); a nonzero value is a "
                            "defect\n");
}

}  // namespace

void add_theory_command(CLI::App& app) {
  struct Args {
    std::string what, checkpoint, config, random_init, data = "val", plots;
    std::int64_t examples = 8, max_positions = 256;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "theory",
      "The paper's theory results (Props. 3.1, 3.4-3.6, Thm. 4.3) checked on a model's real weights (docs/theory.md)");
  cmd->add_option("what", args->what, "psd, decompose, subsume, kurtosis, truncate or all")->required();
  cmd->add_option("--checkpoint", args->checkpoint, "Weights to check (best.safetensors of a run); needs --config");
  cmd->add_option("--config", args->config, "The run's config.json (with --checkpoint)");
  cmd->add_option("--random-init", args->random_init, "Check a freshly initialised model of this config instead");
  cmd->add_option("--data", args->data, "Split whose first examples are the inputs: train, val or test")
      ->capture_default_str();
  cmd->add_option("--examples", args->examples, "How many examples (one at a time)")->capture_default_str();
  cmd->add_option("--max-positions", args->max_positions, "S^sym spectra use at most this many positions")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "Print the results as JSON instead of tables");
  cmd->add_option("--plots", args->plots,
                  "Write DIR/theory.json and PNG plots there (tools/plot_theory.py, needs matplotlib)");
  on_selected(cmd, [args] {
    const std::string& w = args->what;
    check(w == "psd" || w == "decompose" || w == "subsume" || w == "kurtosis" || w == "truncate" || w == "all",
          "theory: unknown check '" + w + "' (choose psd, decompose, subsume, kurtosis, truncate or all)");
    check(args->data == "train" || args->data == "val" || args->data == "test",
          "theory: unknown split '" + args->data + "' for --data (choose train, val or test)");
    check(args->examples >= 1, "theory: --examples must be >= 1, got " + std::to_string(args->examples));
    check(args->max_positions >= 1, "theory: --max-positions must be >= 1, got " + std::to_string(args->max_positions));
    const bool from_checkpoint = !args->checkpoint.empty();
    check(
        from_checkpoint != !args->random_init.empty(),
        "theory: give either --checkpoint FILE --config FILE (a trained model) or --random-init CONFIG (a fresh one)");
    check(!from_checkpoint || !args->config.empty(), "theory: --checkpoint needs --config (the run's config.json)");
    check(from_checkpoint || args->config.empty(),
          "theory: --config goes with --checkpoint; --random-init takes the config itself");
    const std::string config_path = from_checkpoint ? args->config : args->random_init;
    check(std::filesystem::is_regular_file(config_path), "theory: config file '" + config_path + "' not found");
    if (from_checkpoint)
      check(std::filesystem::is_regular_file(args->checkpoint),
            "theory: checkpoint '" + args->checkpoint + "' is not a file (missing, or a directory)");

    if (!args->plots.empty()) {  // refuse an unwritable --plots before the analysis, not after
      std::filesystem::create_directories(args->plots);
      const std::string probe = args->plots + "/theory.json";
      std::ofstream f(probe, std::ios::app);
      check(f.good(), "theory: cannot write " + probe + " (--plots)");
    }
    const config::Json cfg = config::load_file(config_path);
    const TaskData task = load_task(cfg);
    std::unique_ptr<Classifier> model;
    std::string source;
    if (from_checkpoint) {
      try {
        model = load_model(cfg, args->checkpoint);
      } catch (const Error& e) {
        throw Error("theory: checkpoint '" + args->checkpoint + "' does not fit config '" + config_path +
                    "': " + e.what());
      }
      source = "checkpoint " + args->checkpoint;
    } else {
      model = build_model(cfg, task.train);
      source = "random-init model of " + config_path;
    }
    const data::Dataset& split = args->data == "train" ? task.train : args->data == "val" ? task.val : task.test;

    theory::Options options;
    options.psd = w == "psd" || w == "all";
    options.decompose = w == "decompose" || w == "all";
    options.subsume = w == "subsume" || w == "all";
    options.kurtosis = w == "kurtosis" || w == "all";
    options.truncate = w == "truncate" || w == "all";
    options.examples = args->examples;
    options.max_positions = args->max_positions;
    Json result = theory::analyse(*model, split, options);
    result["source"] = {{"what", from_checkpoint ? "checkpoint" : "random-init"},
                        {"config", config_path},
                        {"checkpoint", args->checkpoint}};

    std::ostream& notes = args->json ? std::cerr : std::cout;  // keep stdout pure JSON with --json
    if (args->json) {
      std::cout << result.dump(2) << "\n";
    } else {
      print_header(result, source);
      if (result.contains("psd")) print_psd(result["psd"], result["inputs"]["lengths"], args->max_positions);
      if (result.contains("decompose"))
        print_decompose(result["decompose"], result["inputs"]["examples"].get<std::int64_t>());
      if (result.contains("subsume")) print_subsume(result["subsume"]);
      if (result.contains("kurtosis")) print_kurtosis(result["kurtosis"]);
      if (result.contains("truncate")) print_truncate(result["truncate"]);
    }
    if (!args->plots.empty()) {
      std::filesystem::create_directories(args->plots);
      const std::string path = args->plots + "/theory.json";
      {
        std::ofstream f(path);
        check(f.good(), "theory: cannot write " + path);
        f << result.dump(1) << "\n";
        check(f.good(), "theory: write failed: " + path);
      }
      notes << "\nwrote " << path << "\n";
      // The script's own messages go where the notes go (stderr with --json).
      const std::string why = run_plot_script("plot_theory.py", args->plots, args->json);
      if (!why.empty()) notes << why << "; theory.json is written\n";
    }
    return 0;
  });
}

}  // namespace hkt::tools
