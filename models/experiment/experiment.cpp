#include "experiment.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>

#include "attention/hkt_attention.h"
#include "attention_maps.h"
#include "error.h"
#include "task.h"
#include "trainer.h"
#include "optim/schedule.h"
#include "run_lock.h"
#include "theory.h"

namespace hkt {

namespace fs = std::filesystem;
using config::Json;
using config::read_json_file;

std::vector<Variant> experiment_variants(const Json& config) {
  const Json& list = config.at("experiment").at("variants");
  check(list.is_array() && !list.empty(),
        "config key 'experiment.variants' must be a non-empty list of {\"name\", \"set\"} objects");
  std::vector<Variant> out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Json& v = list[i];
    const std::string where = "config key 'experiment.variants[" + std::to_string(i) + "]'";
    check(v.is_object(), where + " must be an object {\"name\": ..., \"set\": {...}}");
    for (auto it = v.begin(); it != v.end(); ++it)
      check(it.key() == "name" || it.key() == "set",
            where + ": unknown key '" + it.key() + "' (expected \"name\" and \"set\")");
    check(v.contains("name") && v.at("name").is_string() && !v.at("name").get<std::string>().empty(),
          where + " needs a non-empty \"name\" string");
    Variant var;
    var.name = v.at("name").get<std::string>();
    // No '.': a name cannot collide with the experiment's own files (summary.json, ...).
    for (char c : var.name)
      check(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_',
            where + ": name '" + var.name + "' may hold only letters, digits, '-' and '_' (it names a directory)");
    for (const auto& prev : out) check(prev.name != var.name, where + ": the name '" + var.name + "' is used twice");
    if (v.contains("set")) {
      const Json& set = v.at("set");
      check(set.is_object(),
            where + ": \"set\" must be an object of dotted config keys, e.g. {\"model.attention\": \"mha\"}");
      for (auto it = set.begin(); it != set.end(); ++it) {
        check(it.key().rfind("experiment.", 0) != 0 && it.key() != "experiment",
              where + ": a variant cannot change '" + it.key() + "'");
        check(it.key() != "train.seed", where + ": a variant cannot set 'train.seed' (the experiment's seeds do)");
        var.sets.push_back(it.key() + "=" + it.value().dump());
      }
    }
    out.push_back(std::move(var));
  }
  return out;
}

Json run_config(const Json& config, const Variant& variant, std::int64_t seed) {
  check(seed >= 0, "experiment: seed " + std::to_string(seed) + " must be >= 0");
  Json c = config;
  c["experiment"] = config::defaults().at("experiment");
  try {
    c = config::apply_sets(c, variant.sets);
  } catch (const Error& e) {
    throw Error("experiment variant '" + variant.name + "': " + e.what());
  }
  c["train"]["seed"] = seed;
  return c;
}

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

// The two-sided 95 % critical value of Student's t with `dof` degrees of freedom (table
// values; 1.96 beyond 30, where the normal approximation is within 2 %).
double t_critical_95(std::int64_t dof) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  return dof >= 1 && dof <= 30 ? table[dof - 1] : 1.96;
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

// The first key path where two configs differ, e.g. "/train/lr" -> "train.lr".
std::string first_difference(const Json& a, const Json& b) {
  const Json patch = Json::diff(a, b);
  if (patch.empty()) return "";
  std::string path = patch[0].at("path").get<std::string>();
  if (!path.empty() && path[0] == '/') path.erase(0, 1);
  for (auto& c : path)
    if (c == '/') c = '.';
  return path;
}

// Paired differences (variant - baseline) over the seeds both have, from per-seed maps
// {"0": accuracy, ...}, with a paired t test (two-sided, 95 %): t = mean / (std / sqrt(n)).
Json paired_difference(const Json& row_by_seed, const Json& base_by_seed) {
  std::vector<double> diffs;
  for (auto it = row_by_seed.begin(); it != row_by_seed.end(); ++it)
    if (base_by_seed.contains(it.key()))
      diffs.push_back(it.value().get<double>() - base_by_seed.at(it.key()).get<double>());
  Json d = stats_json(diffs);
  const Stats st = stats(diffs);
  if (st.n >= 2 && st.std > 0) {
    const double t = st.mean / (st.std / std::sqrt(static_cast<double>(st.n)));
    d["t"] = t;
    d["t_critical_95"] = t_critical_95(st.n - 1);
    d["significant_95"] = std::fabs(t) > t_critical_95(st.n - 1);
  }
  return d;
}

}  // namespace

Json summarize(const Json& config, const std::vector<Variant>& variants, const std::vector<RunRecord>& runs) {
  const std::string baseline = config.at("experiment").at("baseline").get<std::string>();
  Json table = Json::array();
  std::map<std::string, Json> by_variant;
  for (const auto& v : variants) {
    std::vector<double> val, test, ms, peak;
    std::map<std::string, std::vector<double>> extra;
    Json by_seed = {{"test", Json::object()}};  // test set name -> {"seed": accuracy}
    Json row = {{"variant", v.name}, {"seeds", Json::array()}, {"runs", Json::array()}};
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
    if (!peak.empty()) row["peak_tensor_bytes"] = stats_json(peak);
    Json ex = Json::object();
    for (const auto& [name, xs] : extra) ex[name] = stats_json(xs);
    row["extra_tests"] = ex;
    row["accuracy_by_seed"] = by_seed;
    by_variant[v.name] = row;
    table.push_back(row);
  }
  // Ratios and paired differences (test and every extra test) against the baseline.
  if (by_variant.count(baseline)) {
    const Json& base = by_variant.at(baseline);
    for (auto& row : table) {
      row["time_ratio"] =
          row.at("time_per_step_ms").at("mean").get<double>() / base.at("time_per_step_ms").at("mean").get<double>();
      row["score_flop_ratio"] =
          row.at("score_flops_per_example").get<double>() / base.at("score_flops_per_example").get<double>();
      Json diffs = Json::object();
      const Json& mine = row.at("accuracy_by_seed");
      for (auto it = mine.begin(); it != mine.end(); ++it)
        if (base.at("accuracy_by_seed").contains(it.key()))
          diffs[it.key()] = paired_difference(it.value(), base.at("accuracy_by_seed").at(it.key()));
      row["differences_to_baseline"] = diffs;
    }
  }
  const Json& d = config.at("data");
  return {{"name", config.at("experiment").at("name")},
          {"task", d.at("task")},
          {"T", d.at("max_len")},
          {"baseline", by_variant.count(baseline) ? Json(baseline) : Json()},
          {"paper", paper_row(config.at("experiment").at("paper_row").get<std::string>())},
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

}  // namespace

std::string summary_markdown(const Json& summary, const std::string& command) {
  std::ostringstream md;
  const std::string name = summary.at("name").get<std::string>();
  md << "# " << (name.empty() ? "Experiment" : name) << ": " << summary.at("task").get<std::string>()
     << ", T = " << summary.at("T").get<std::int64_t>() << "\n\n";
  md << "Command: `" << command << "`\n\n";
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
  for (const auto& row : summary.at("variants")) {
    md << "| " << row.at("variant").get<std::string>() << " | " << row.at("levels").get<int>() << " | "
       << row.at("parameter_count").get<std::int64_t>() << " | " << row.at("seeds").size() << " | "
       << pct(row.at("val_accuracy")) << " | " << pct(row.at("test_accuracy")) << " |";
    for (const auto& e : extra_names)
      md << " " << (row.at("extra_tests").contains(e) ? pct(row.at("extra_tests").at(e)) : "") << " |";
    md << " " << fixed(100 * row.at("chance_level").get<double>(), 2) << " | "
       << fixed(row.at("time_per_step_ms").at("mean").get<double>(), 0) << " | "
       << (row.contains("time_ratio") ? fixed(row.at("time_ratio").get<double>(), 2) : "") << " | "
       << (row.contains("score_flop_ratio") ? fixed(row.at("score_flop_ratio").get<double>(), 4) : "") << " | "
       << (row.contains("peak_tensor_bytes")
               ? fixed(row.at("peak_tensor_bytes").at("mean").get<double>() / 1048576.0, 1)
               : "")
       << " |\n";
  }
  if (!summary.at("baseline").is_null()) {
    md << "\nPaired differences to " << summary.at("baseline").get<std::string>()
       << " (same seed), in percentage points, with a paired t test (two-sided, 95 %):\n\n";
    for (const auto& row : summary.at("variants")) {
      if (row.at("variant") == summary.at("baseline")) continue;
      const Json& all = row.at("differences_to_baseline");
      std::vector<std::string> sets;  // the test split first, then the extra tests
      if (all.contains("test")) sets.push_back("test");
      for (auto it = all.begin(); it != all.end(); ++it)
        if (it.key() != "test") sets.push_back(it.key());
      for (const auto& set : sets) {
        const Json& d = all.at(set);
        md << "- " << row.at("variant").get<std::string>() << ", " << set << ": ";
        if (d.at("n").get<std::int64_t>() == 0) {
          md << "no common seed\n";
          continue;
        }
        md << (d.at("mean").get<double>() >= 0 ? "+" : "") << fixed(100 * d.at("mean").get<double>(), 2);
        if (d.at("n").get<std::int64_t>() > 1) md << " ± " << fixed(100 * d.at("std").get<double>(), 2);
        md << " (per seed:";
        for (const auto& x : d.at("values"))
          md << " " << (x.get<double>() >= 0 ? "+" : "") << fixed(100 * x.get<double>(), 1);
        md << "; n = " << d.at("n").get<std::int64_t>() << ")";
        if (d.contains("t"))
          md << "; t = " << fixed(d.at("t").get<double>(), 2) << " against "
             << fixed(d.at("t_critical_95").get<double>(), 3) << ": "
             << (d.at("significant_95").get<bool>() ? "a difference beyond the seed spread"
                                                    : "not distinguishable from seed noise with these seeds");
        md << "\n";
      }
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
  md << "\nTime per step: wall time of forward + backward + AdamW step, mean over the run (same machine, runs one "
        "after another). Score-FLOP ratio: counted Q K^T FLOPs at T (docs/hkt-attention.md section 5). Peak tensor "
        "memory: the engine's CPU tensors (not BLAS or OpenMP workspaces).\n";
  return md.str();
}

namespace {

// A result.json as the summary reads it: every key with its type, else an error naming
// the file (a hand-edited or foreign file must not end in an internal error).
void check_result(const Json& result, const std::string& path) {
  check(result.is_object(), path + ": not a result.json object (delete the run directory to run it again)");
  for (const char* key : {"best_val_accuracy", "test_accuracy", "time_per_step_ms", "chance_level"})
    check(result.contains(key) && result.at(key).is_number(), path + ": '" + key + "' is missing or not a number");
  for (const char* key : {"parameter_count", "steps"})
    check(result.contains(key) && result.at(key).is_number_integer(),
          path + ": '" + key + "' is missing or not an integer");
  check(result.contains("extra_tests") && result.at("extra_tests").is_object(),
        path + ": 'extra_tests' is missing or not an object");
  for (auto it = result.at("extra_tests").begin(); it != result.at("extra_tests").end(); ++it)
    check(it.value().is_object() && it.value().contains("accuracy") && it.value().at("accuracy").is_number(),
          path + ": extra test '" + it.key() + "' has no numeric 'accuracy'");
  if (result.contains("peak_tensor_bytes"))
    check(result.at("peak_tensor_bytes").is_number(), path + ": 'peak_tensor_bytes' is not a number");
}

// The data of a run config, loaded once per distinct data section (IMDB's validation
// split also depends on train.seed, so the seed is part of the key).
class TaskCache {
 public:
  const TaskData& get(const Json& run) {
    const std::string key = run.at("data").dump() + "|" + run.at("train").at("seed").dump();
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(key, load_task(run)).first;
    return it->second;
  }

 private:
  std::map<std::string, TaskData> cache_;
};

}  // namespace

Json run_experiment(const Json& config, const std::string& out_dir, const std::string& command, std::ostream& progress,
                    bool progress_is_terminal) {
  const auto variants = experiment_variants(config);
  const Json& seeds_json = config.at("experiment").at("seeds");
  check(seeds_json.is_array() && !seeds_json.empty(),
        "config key 'experiment.seeds' must be a non-empty list of integers");
  std::vector<std::int64_t> seeds;
  for (const auto& s : seeds_json) {
    check(s.is_number_integer() && s.get<std::int64_t>() >= 0,
          "config key 'experiment.seeds' must hold integers >= 0, got " + s.dump());
    check(std::find(seeds.begin(), seeds.end(), s.get<std::int64_t>()) == seeds.end(),
          "config key 'experiment.seeds' repeats " + s.dump());
    seeds.push_back(s.get<std::int64_t>());
  }
  paper_row(config.at("experiment").at("paper_row").get<std::string>());  // refuse a bad name before any training

  // Everything that can be refused is checked before anything is trained or written:
  // every run config, every variant's model and schedule (built once on its data), and
  // every existing run directory's config.
  TaskCache tasks;
  std::vector<std::tuple<std::int64_t, const Variant*, Json>> plan;
  for (auto s : seeds)
    for (const auto& v : variants) {
      Json rc = run_config(config, v, s);
      if (s == seeds.front()) {
        try {
          config::model_config(rc, 1, 0, 2, 1);  // the enum keys, before any data is read
          build_model(rc, tasks.get(rc).train);
          schedule_config(rc);
        } catch (const Error& e) {
          throw Error("experiment variant '" + v.name + "': " + e.what());
        }
      }
      plan.emplace_back(s, &v, std::move(rc));
    }
  for (const auto& [seed, variant, rc] : plan) {
    const std::string dir = out_dir + "/" + variant->name + "/seed-" + std::to_string(seed);
    if (!fs::exists(dir + "/config.json")) continue;
    // Merged onto the defaults, so that a run written before a config key was added
    // (with a default that keeps the old behaviour) still counts as the same run.
    const Json saved = config::merge(read_json_file(dir + "/config.json"), dir + "/config.json");
    const std::string diff = first_difference(saved, rc);
    check(diff.empty(), dir + " holds a run with a different config (first difference: '" + diff +
                            "'); use another --out, or delete that directory to run it again");
  }

  fs::create_directories(out_dir);
  const RunLock lock(out_dir, "hkt experiment");
  write_file_atomic(out_dir + "/experiment.json", config.dump(2) + "\n");
  std::vector<RunRecord> runs;
  std::size_t index = 0;
  for (const auto& [seed, variant, rc] : plan) {
    ++index;
    const std::string rel = variant->name + "/seed-" + std::to_string(seed), dir = out_dir + "/" + rel;
    // Built with += : GCC 12 reports a false -Wrestrict for "[" + std::string (its bug 105329).
    std::string tag = "[";
    tag += std::to_string(index) + "/" + std::to_string(plan.size()) + "] " + rel;
    Json result;
    const bool has_config = fs::exists(dir + "/config.json");
    if (has_config && fs::exists(dir + "/result.json")) {
      result = read_json_file(dir + "/result.json");
      check_result(result, dir + "/result.json");
      progress << tag << ": finished before, reused (test accuracy " << result.at("test_accuracy").get<double>()
               << ")\n";
    } else {
      const bool resume = has_config && fs::exists(dir + "/last.safetensors");
      progress << tag << (resume ? ": resuming" : ": training") << "\n" << std::flush;
      TrainOptions options;
      options.out_dir = dir;
      options.resume = resume;
      options.overwrite = !resume;
      options.progress = &progress;
      options.progress_is_terminal = progress_is_terminal;
      options.eval_metrics = theory::eval_metrics;
      result = train(rc, options);
    }
    runs.push_back({variant->name, seed, rel, rc, result});
  }

  const Json summary_json = summarize(config, variants, runs);
  Json summary = summary_json;
  summary["command"] = command;
  summary["all_runs"] = Json::array();
  for (const auto& r : runs)
    summary["all_runs"].push_back({{"variant", r.variant}, {"seed", r.seed}, {"dir", r.dir}, {"result", r.result}});
  write_file_atomic(out_dir + "/summary.json", summary.dump(2) + "\n");
  write_file_atomic(out_dir + "/summary.md", summary_markdown(summary, command));

  // Attention maps of the first seed's best model of each variant, on a validation
  // example of that variant's own data.
  Json maps = Json::object();
  for (const auto& r : runs) {
    if (r.seed != seeds.front()) continue;
    const std::string best = out_dir + "/" + r.dir + "/best.safetensors";
    check(fs::exists(best), best + " is missing (needed for the attention maps); delete " + out_dir + "/" + r.dir +
                                " to train that run again");
    const auto model = load_model(r.config, best);
    maps[r.variant] = attention_maps(*model, tasks.get(r.config).val);
  }
  write_file_atomic(out_dir + "/attention_maps.json", maps.dump() + "\n");
  return summary;
}

}  // namespace hkt
