// summary.cpp: the experiment's table from finished runs (summary.h): means and sample
// standard deviations over seeds, ratios to the baseline, paired differences with a
// t test, and the Markdown rendering.
#include "summary.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "attention/hkt_attention.h"
#include "error.h"

namespace hkt {

using config::Json;

Json paper_row(const std::string& name) {
  // arXiv 2604.08829 (abstract), as listed in docs/experiments.md; percent.
  if (name.empty()) return Json();
  if (name == "listops")
    return {{"task", "synthetic ListOps (simplified)"}, {"T", 512}, {"mha", {50.33, 0.12}}, {"hkt", {55.10, 0.29}}};
  if (name == "cifar10")
    return {{"task", "sequential CIFAR-10 (grayscale)"}, {"T", 1024}, {"mha", {34.01, 0.19}}, {"hkt", {35.45, 0.09}}};
  if (name == "imdb")
    return {{"task", "IMDB, byte level"}, {"T", 1024}, {"mha", {62.72, 0.40}}, {"hkt", {70.19, 0.57}}};
  throw Error("config key 'experiment.paper_row' must be \"\", \"listops\", \"cifar10\" or \"imdb\", got \"" + name +
              "\"");
}

namespace {

struct Stats {
  std::int64_t n = 0;
  double mean = 0, std = 0;
};

// Mean and sample standard deviation (n - 1 in the denominator; 0 for one value).
Stats stats(const std::vector<double>& xs) {
  Stats s;
  s.n = static_cast<std::int64_t>(xs.size());
  if (xs.empty()) return s;
  for (double x : xs) s.mean += x;
  s.mean /= static_cast<double>(xs.size());
  if (xs.size() > 1) {
    double ss = 0;
    for (double x : xs) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / static_cast<double>(xs.size() - 1));
  }
  return s;
}

// The two-sided 95 % critical value of Student's t with `dof` degrees of freedom: the
// table value for 1..30, 40, 60 and 120; between those, the value of the tabulated dof
// just below (larger than the true value: the test errs towards "not distinguishable");
// beyond 120, that of 120 (1.980; the normal limit is 1.960).
double t_critical_95(std::int64_t dof) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (dof >= 1 && dof <= 30) return table[dof - 1];
  return dof < 40 ? 2.042 : dof < 60 ? 2.021 : dof < 120 ? 2.000 : 1.980;
}

Json stats_json(const std::vector<double>& xs) {
  const Stats s = stats(xs);
  return {{"n", s.n}, {"mean", s.mean}, {"std", s.std}, {"values", xs}};
}

// Counted score FLOPs of one example through every layer at T = data.max_len
// (docs/hkt-attention.md section 5): n_layers * sum_l 2 H T_l^2 d_h.
double score_flops(const Json& run) {
  const Json& m = run.at("model");
  const int L = config::attention_levels(run);
  const std::int64_t H = m.at("n_heads").get<std::int64_t>(), d_h = m.at("d_model").get<std::int64_t>() / H;
  const std::int64_t T = run.at("data").at("max_len").get<std::int64_t>();
  return static_cast<double>(m.at("n_layers").get<std::int64_t>()) * hkt_attention_flops(1, H, T, d_h, L).score_flops;
}

// Paired differences (variant - other) over the seeds both have, in the order of `seeds`
// (ascending), from per-seed maps {"0": accuracy, ...}, with a paired t test (two-sided,
// 95 %): t = mean / (std / sqrt(n)), and the 95 % confidence interval of the mean
// difference, mean +- t_crit std / sqrt(n); both only for n >= 2 and std > 0.
Json paired_difference(const Json& seeds, const Json& row_by_seed, const Json& base_by_seed) {
  std::vector<double> diffs;
  for (const auto& seed : seeds) {
    const std::string key = seed.dump();
    if (row_by_seed.contains(key) && base_by_seed.contains(key))
      diffs.push_back(row_by_seed.at(key).get<double>() - base_by_seed.at(key).get<double>());
  }
  Json d = stats_json(diffs);
  const Stats st = stats(diffs);
  if (st.n >= 2 && st.std > 0) {
    const double standard_error = st.std / std::sqrt(static_cast<double>(st.n)), crit = t_critical_95(st.n - 1);
    d["t"] = st.mean / standard_error;
    d["t_critical_95"] = crit;
    d["significant_95"] = std::fabs(st.mean / standard_error) > crit;
    d["ci95"] = {st.mean - crit * standard_error, st.mean + crit * standard_error};
  }
  return d;
}

// The paired differences of every accuracy (test and each extra test) of `row` to those
// of `other`, on the seeds both have: {set name: paired_difference}.
Json differences(const Json& row, const Json& other) {
  Json diffs = Json::object();
  const Json& mine = row.at("accuracy_by_seed");
  for (auto it = mine.begin(); it != mine.end(); ++it)
    if (other.at("accuracy_by_seed").contains(it.key()))
      diffs[it.key()] = paired_difference(row.at("seeds"), it.value(), other.at("accuracy_by_seed").at(it.key()));
  return diffs;
}

// The element-wise mean of equally shaped nested arrays of numbers (level weights
// [layer][head][level]); null when `xs` is empty or the shapes differ.
Json mean_nested(const std::vector<Json>& xs) {
  if (xs.empty()) return Json();
  if (xs[0].is_number()) {
    double sum = 0;
    for (const auto& x : xs) {
      if (!x.is_number()) return Json();
      sum += x.get<double>();
    }
    return sum / static_cast<double>(xs.size());
  }
  Json out = Json::array();
  for (std::size_t i = 0; i < xs[0].size(); ++i) {
    std::vector<Json> parts;
    for (const auto& x : xs) {
      if (!x.is_array() || x.size() != xs[0].size()) return Json();
      parts.push_back(x[i]);
    }
    out.push_back(mean_nested(parts));
    if (out.back().is_null()) return Json();
  }
  return out;
}

// A run timed beside other work: the highest 1-minute load average seen during its
// training (result.json "machine", trainer.h) above its own threads + 0.75.
bool timed_beside_other_work(const Json& result) {
  if (!result.contains("machine")) return false;
  const Json& m = result.at("machine");
  return m.contains("load_average_max") && m.contains("threads") &&
         m.at("load_average_max").get<double>() > m.at("threads").get<double>() + 0.75;
}

}  // namespace

Json summarize(const Json& config, const std::vector<Variant>& variants, const std::vector<RunRecord>& runs) {
  const Json& ex = config.at("experiment");
  const std::string baseline = ex.at("baseline").get<std::string>();
  const Json& compare_to = ex.at("compare_to");
  check(compare_to.is_array(), "config key 'experiment.compare_to' must be a list of variant names");
  for (const auto& name : compare_to) {
    const bool known = name.is_string() && std::any_of(variants.begin(), variants.end(), [&](const Variant& v) {
                         return v.name == name.get<std::string>();
                       });
    check(known, "config key 'experiment.compare_to' names " + name.dump() + ", which is not a variant");
  }
  Json table = Json::array();
  std::map<std::string, Json> by_variant;
  for (const auto& v : variants) {
    std::vector<double> val, test, ms, peak;
    std::map<std::string, std::vector<double>> extra;
    std::vector<Json> weights;
    std::set<std::string> cpus;
    std::int64_t loaded = 0, without_machine = 0;
    Json by_seed = {{"test", Json::object()}};  // test set name -> {"seed": accuracy}
    Json row = {{"variant", v.name}, {"set", v.sets}, {"seeds", Json::array()}, {"runs", Json::array()}};
    for (const auto& r : runs) {
      if (r.variant != v.name) continue;
      const std::string seed = std::to_string(r.seed);
      val.push_back(r.result.at("best_val_accuracy").get<double>());
      test.push_back(r.result.at("test_accuracy").get<double>());
      by_seed["test"][seed] = test.back();
      ms.push_back(r.result.at("time_per_step_ms").get<double>());
      if (r.result.contains("peak_tensor_bytes")) peak.push_back(r.result.at("peak_tensor_bytes").get<double>());
      for (auto it = r.result.at("extra_tests").begin(); it != r.result.at("extra_tests").end(); ++it) {
        extra[it.key()].push_back(it.value().at("accuracy").get<double>());
        by_seed[it.key()][seed] = extra[it.key()].back();
      }
      if (!r.final_level_weights.is_null()) weights.push_back(r.final_level_weights);
      if (r.result.contains("machine"))
        cpus.insert(r.result.at("machine").at("cpu").get<std::string>());
      else
        ++without_machine;  // a record from before result.json named its machine
      loaded += timed_beside_other_work(r.result) ? 1 : 0;
      row["seeds"].push_back(r.seed);
      row["runs"].push_back(r.dir);
      row["attention"] = r.config.at("model").at("attention");
      row["levels"] = config::attention_levels(r.config);
      row["parameter_count"] = r.result.at("parameter_count");
      row["chance_level"] = r.result.at("chance_level");
      row["score_flops_per_example"] = score_flops(r.config);
      row["steps"] = r.result.at("steps");
    }
    if (val.empty()) continue;
    row["val_accuracy"] = stats_json(val);
    row["test_accuracy"] = stats_json(test);
    row["time_per_step_ms"] = stats_json(ms);
    row["timing"] = {{"cpus", cpus}, {"runs_beside_other_work", loaded}, {"runs_without_machine", without_machine}};
    if (!peak.empty()) row["peak_tensor_bytes"] = stats_json(peak);
    Json extra_stats = Json::object();
    for (const auto& [name, xs] : extra) extra_stats[name] = stats_json(xs);
    row["extra_tests"] = extra_stats;
    row["accuracy_by_seed"] = by_seed;
    row["final_level_weights"] = weights.size() == val.size() ? mean_nested(weights) : Json();
    by_variant[v.name] = row;
    table.push_back(row);
  }
  // Ratios and paired differences (test and every extra test) against the baseline, and
  // paired differences against each variant of compare_to.
  for (auto& row : table) {
    if (by_variant.count(baseline)) {
      const Json& base = by_variant.at(baseline);
      row["time_ratio"] =
          row.at("time_per_step_ms").at("mean").get<double>() / base.at("time_per_step_ms").at("mean").get<double>();
      row["score_flop_ratio"] =
          row.at("score_flops_per_example").get<double>() / base.at("score_flops_per_example").get<double>();
      row["differences_to_baseline"] = differences(row, base);
    }
    Json to = Json::object();
    for (const auto& name : compare_to)
      if (by_variant.count(name.get<std::string>()) && name != row.at("variant"))
        to[name.get<std::string>()] = differences(row, by_variant.at(name.get<std::string>()));
    row["differences_to"] = to;
  }
  const Json& d = config.at("data");
  return {{"name", ex.at("name")},    {"task", d.at("task")},
          {"T", d.at("max_len")},     {"baseline", by_variant.count(baseline) ? Json(baseline) : Json()},
          {"compare_to", compare_to}, {"paper", paper_row(ex.at("paper_row").get<std::string>())},
          {"variants", table}};
}

namespace {

std::string pct(const Json& s) {  // "48.20 +- 1.10" from a stats object of fractions
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << 100 * s.at("mean").get<double>();
  if (s.at("n").get<std::int64_t>() > 1) os << " ± " << 100 * s.at("std").get<double>();
  return os.str();
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

// One bullet per accuracy set of a variant's paired differences to another variant:
// "- hkt, test: +1.30 ± 0.61 (per seed: ...; n = 3); 95 % CI [..]; t = 3.70 against 4.303: ...".
void difference_lines(std::ostringstream& md, const std::string& variant, const Json& all) {
  std::vector<std::string> sets;  // the test split first, then the extra tests
  if (all.contains("test")) sets.push_back("test");
  for (auto it = all.begin(); it != all.end(); ++it)
    if (it.key() != "test") sets.push_back(it.key());
  auto signed_pp = [](double x, int digits) {  // std::string first: GCC 12's false -Wrestrict (bug 105329)
    return std::string(x >= 0 ? "+" : "").append(fixed(100 * x, digits));
  };
  for (const auto& set : sets) {
    const Json& d = all.at(set);
    md << "- " << variant << ", " << set << ": ";
    if (d.at("n").get<std::int64_t>() == 0) {
      md << "no common seed\n";
      continue;
    }
    md << signed_pp(d.at("mean").get<double>(), 2);
    if (d.at("n").get<std::int64_t>() > 1) md << " ± " << fixed(100 * d.at("std").get<double>(), 2);
    md << " (per seed:";
    for (const auto& x : d.at("values")) md << " " << signed_pp(x.get<double>(), 1);
    md << "; n = " << d.at("n").get<std::int64_t>() << ")";
    if (d.contains("t"))
      md << "; 95 % CI [" << signed_pp(d.at("ci95")[0].get<double>(), 2) << ", "
         << signed_pp(d.at("ci95")[1].get<double>(), 2) << "]; t = " << fixed(d.at("t").get<double>(), 2) << " against "
         << fixed(d.at("t_critical_95").get<double>(), 3) << ": "
         << (d.at("significant_95").get<bool>() ? "a difference beyond the seed spread"
                                                : "not distinguishable from seed noise with these seeds");
    md << "\n";
  }
}

// The ms/step cell: the mean, marked when the runs were timed on several CPUs (†) or
// some of them beside other work (*).
std::string time_cell(const Json& row) {
  std::string cell = fixed(row.at("time_per_step_ms").at("mean").get<double>(), 0);
  if (!row.contains("timing")) return cell;
  if (row.at("timing").at("cpus").size() > 1) cell += " †";
  if (row.at("timing").at("runs_beside_other_work").get<std::int64_t>() > 0) cell += " *";
  return cell;
}

}  // namespace

std::string summary_markdown(const Json& summary, const std::string& command, const std::string& rerun_command) {
  std::ostringstream md;
  const std::string name = summary.at("name").get<std::string>();
  md << "# " << (name.empty() ? "Experiment" : name) << ": " << summary.at("task").get<std::string>()
     << ", T = " << summary.at("T").get<std::int64_t>() << "\n\n";
  md << "Command: `" << command << "`\n\n";
  if (!rerun_command.empty() && rerun_command != command)
    md << "Every run of this table trained again from nothing: `" << rerun_command << "`\n\n";
  std::vector<std::string> extra_names;
  for (const auto& row : summary.at("variants"))
    for (auto it = row.at("extra_tests").begin(); it != row.at("extra_tests").end(); ++it)
      if (std::find(extra_names.begin(), extra_names.end(), it.key()) == extra_names.end())
        extra_names.push_back(it.key());
  md << "Accuracy in percent, mean ± sample standard deviation over seeds (validation: the best "
        "evaluation; test: once, from that checkpoint).\n\n";
  md << "| variant | L | params | seeds | val acc | test acc |";
  for (const auto& e : extra_names) md << " " << e << " acc |";
  md << " chance | ms/step | time ratio | score-FLOP ratio | peak tensor MiB |\n|---|---|---|---|---|---|";
  for (std::size_t i = 0; i < extra_names.size(); ++i) md << "---|";
  md << "---|---|---|---|---|\n";
  bool several_cpus = false, loaded = false;
  for (const auto& row : summary.at("variants")) {
    md << "| " << row.at("variant").get<std::string>() << " | " << row.at("levels").get<int>() << " | "
       << row.at("parameter_count").get<std::int64_t>() << " | " << row.at("seeds").size() << " | "
       << pct(row.at("val_accuracy")) << " | " << pct(row.at("test_accuracy")) << " |";
    for (const auto& e : extra_names)
      md << " " << (row.at("extra_tests").contains(e) ? pct(row.at("extra_tests").at(e)) : "") << " |";
    md << " " << fixed(100 * row.at("chance_level").get<double>(), 2) << " | " << time_cell(row) << " | "
       << (row.contains("time_ratio") ? fixed(row.at("time_ratio").get<double>(), 2) : "") << " | "
       << (row.contains("score_flop_ratio") ? fixed(row.at("score_flop_ratio").get<double>(), 4) : "") << " | "
       << (row.contains("peak_tensor_bytes")
               ? fixed(row.at("peak_tensor_bytes").at("mean").get<double>() / 1048576.0, 1)
               : "")
       << " |\n";
    if (row.contains("timing")) {
      several_cpus = several_cpus || row.at("timing").at("cpus").size() > 1;
      loaded = loaded || row.at("timing").at("runs_beside_other_work").get<std::int64_t>() > 0;
    }
  }
  std::vector<std::string> holes;
  const Json missing = summary.value("missing_runs", Json::object());  // named: items() must not outlive it
  for (const auto& [variant, seeds] : missing.items()) {
    std::string cell = variant + " seed" + (seeds.size() > 1 ? "s" : "");
    for (std::size_t i = 0; i < seeds.size(); ++i) cell += (i ? ", " : " ") + seeds[i].dump();
    holes.push_back(cell);
  }
  if (!holes.empty()) {
    md << "\nNot in this table (no finished run yet):";
    for (std::size_t i = 0; i < holes.size(); ++i) md << (i ? "; " : " ") << holes[i];
    md << ".\n";
  }
  if (several_cpus) md << "\n† runs of this variant were timed on different CPUs (summary.json, \"timing\").\n";
  if (loaded)
    md << "\n* some runs of this variant were timed beside other work (1-minute load average above the run's "
          "threads + 0.75; summary.json, \"timing\"): their time per step is an upper bound.\n";
  if (!summary.at("baseline").is_null()) {
    md << "\nPaired differences to " << summary.at("baseline").get<std::string>()
       << " (same seed), in percentage points, with the 95 % confidence interval of the mean and a paired t test "
          "(two-sided, 95 %):\n\n";
    for (const auto& row : summary.at("variants"))
      if (row.at("variant") != summary.at("baseline"))
        difference_lines(md, row.at("variant").get<std::string>(), row.at("differences_to_baseline"));
  }
  for (const auto& other : summary.value("compare_to", Json::array())) {
    if (other == summary.at("baseline")) continue;  // shown above
    bool heading = false;
    for (const auto& row : summary.at("variants")) {
      if (!row.contains("differences_to") || !row.at("differences_to").contains(other.get<std::string>())) continue;
      if (!heading) md << "\nPaired differences to " << other.get<std::string>() << " (same seed), as above:\n\n";
      heading = true;
      difference_lines(md, row.at("variant").get<std::string>(), row.at("differences_to").at(other.get<std::string>()));
    }
  }
  bool any_weights = false;
  for (const auto& row : summary.at("variants"))
    any_weights = any_weights || (row.value("levels", 1) > 1 && !row.value("final_level_weights", Json()).is_null());
  if (any_weights) {
    md << "\nLevel weights alpha at the end of training, mean over seeds (per layer, per head: level 0, 1, ...):\n\n";
    for (const auto& row : summary.at("variants")) {
      if (row.value("levels", 1) <= 1 || row.value("final_level_weights", Json()).is_null()) continue;
      md << "- " << row.at("variant").get<std::string>() << ":";
      const Json& w = row.at("final_level_weights");
      for (std::size_t layer = 0; layer < w.size(); ++layer) {
        md << (layer ? ";" : "") << " layer " << layer;
        for (std::size_t h = 0; h < w[layer].size(); ++h) {
          md << (h ? "," : "") << " h" << h << " [";
          for (std::size_t l = 0; l < w[layer][h].size(); ++l)
            md << (l ? " " : "") << fixed(w[layer][h][l].get<double>(), 2);
          md << "]";
        }
      }
      md << "\n";
    }
  }
  if (!summary.at("paper").is_null()) {
    const Json& p = summary.at("paper");
    auto ms = [&](const char* k) {
      return fixed(p.at(k)[0].get<double>(), 2) + " ± " + fixed(p.at(k)[1].get<double>(), 2);
    };
    md << "\nThe paper (arXiv 2604.08829), " << p.at("task").get<std::string>()
       << ", T = " << p.at("T").get<std::int64_t>() << ", 3 seeds, test accuracy: standard MHA " << ms("mha")
       << ", HKT (L = 3) " << ms("hkt") << " ("
       << (p.at("hkt")[0].get<double>() - p.at("mha")[0].get<double>() >= 0 ? "+" : "")
       << fixed(p.at("hkt")[0].get<double>() - p.at("mha")[0].get<double>(), 2)
       << " pp). Model sizes, optimiser and epochs are not published, so our numbers come from our own recipe "
          "(docs/experiments.md), not from the paper's.\n";
  }
  md << "\nTime per step: wall time of forward + backward + AdamW step, mean over the run (runs one after another, "
        "each timed on the CPU its result.json names). Score-FLOP ratio: counted Q K^T FLOPs at T "
        "(docs/hkt-attention.md section 5). Peak tensor "
        "memory: the engine's CPU tensors (not BLAS or OpenMP workspaces).\n";
  return md.str();
}

}  // namespace hkt
