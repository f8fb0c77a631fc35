// experiment.cpp: the variants and seeds of an experiment, its run directories (trained,
// reused, resumed, sharded, merged) and the summary rebuilt from every record.
#include "experiment.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

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

namespace {

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

// A result.json as the summary reads it: every key with its type, else an error naming
// the file (a hand-edited or foreign file must not end in an internal error).
void check_result(const Json& result, const std::string& path) {
  check(result.is_object(), path + ": not a result.json object (delete the run directory to run it again)");
  for (const char* key : {"best_val_accuracy", "test_accuracy", "time_per_step_ms", "chance_level"})
    check(result.contains(key) && result.at(key).is_number(), path + ": '" + key + "' is missing or not a number");
  for (const char* key : {"best_val_accuracy", "test_accuracy", "chance_level"})
    check(result.at(key).get<double>() >= 0 && result.at(key).get<double>() <= 1,
          path + ": '" + key + "' must be a fraction in [0, 1], got " + result.at(key).dump());
  check(result.at("time_per_step_ms").get<double>() >= 0,
        path + ": 'time_per_step_ms' must be >= 0, got " + result.at("time_per_step_ms").dump());
  for (const char* key : {"parameter_count", "steps"})
    check(result.contains(key) && result.at(key).is_number_integer() && result.at(key).get<std::int64_t>() >= 1,
          path + ": '" + key + "' is missing or not an integer >= 1");
  check(result.contains("extra_tests") && result.at("extra_tests").is_object(),
        path + ": 'extra_tests' is missing or not an object");
  for (auto it = result.at("extra_tests").begin(); it != result.at("extra_tests").end(); ++it)
    check(it.value().is_object() && it.value().contains("accuracy") && it.value().at("accuracy").is_number() &&
              it.value().at("accuracy").get<double>() >= 0 && it.value().at("accuracy").get<double>() <= 1,
          path + ": extra test '" + it.key() + "' has no 'accuracy' in [0, 1]");
  if (result.contains("peak_tensor_bytes"))
    check(result.at("peak_tensor_bytes").is_number(), path + ": 'peak_tensor_bytes' is not a number");
  if (result.contains("machine")) {
    const Json& m = result.at("machine");
    check(m.is_object() && m.contains("cpu") && m.at("cpu").is_string() && m.contains("threads") &&
              m.at("threads").is_number() && m.contains("load_average_max") && m.at("load_average_max").is_number(),
          path + ": 'machine' must be {\"cpu\": string, \"threads\": number, \"load_average_max\": number}");
  }
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

// A run directory <variant>/seed-<s>/ of an experiment directory.
struct FoundRun {
  std::string variant;
  std::int64_t seed = 0;
  std::string rel, dir;   // "<variant>/seed-<s>"; the same under the experiment directory
  bool finished = false;  // result.json is there (the trainer writes it last)
};

// True when dir holds a file other than hkt's own `.lock` (which a run or a merge
// creates before it writes the run's config.json, and leaves).
bool holds_files_besides_lock(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename() != ".lock") return true;
  return false;
}

// Every <name>/seed-<s>/ holding a config.json under `root` (none when root does not
// exist), sorted by name, then seed; <s> is a seed as hkt writes it (decimal, no leading
// zero). Other entries are not runs and are skipped; `notes` (when not null) is told of
// a seed-... directory with a config.json whose name hkt would not write (seed-00). A
// seed-<s> directory with files but no config.json (a record that lost it) is an error:
// trained over, its record would be replaced.
std::vector<FoundRun> find_runs(const std::string& root, std::ostream* notes) {
  std::vector<FoundRun> out;
  if (!fs::is_directory(root)) return out;
  for (const auto& variant : fs::directory_iterator(root)) {
    if (!variant.is_directory()) continue;
    for (const auto& run : fs::directory_iterator(variant.path())) {
      const std::string name = run.path().filename().string();
      if (name.rfind("seed-", 0) != 0 || !run.is_directory()) continue;
      const bool has_config = fs::exists(run.path() / "config.json");
      const std::string digits = name.substr(5);
      const bool canonical = !digits.empty() && digits.size() <= 18 &&
                             digits.find_first_not_of("0123456789") == std::string::npos &&
                             (digits == "0" || digits[0] != '0');
      if (!canonical) {
        if (notes != nullptr && has_config)
          *notes << "note: " << run.path().string() << " is not a run directory name hkt writes (seed-<s>, no "
                 << "leading zero): skipped\n";
        continue;
      }
      if (!has_config) {
        check(!holds_files_besides_lock(run.path()),
              run.path().string() +
                  " holds files but no config.json: restore its config.json, or delete the directory to run it again");
        continue;
      }
      FoundRun f;
      f.variant = variant.path().filename().string();
      f.seed = std::stoll(digits);
      f.rel = f.variant + "/" + name;
      f.dir = root + "/" + f.rel;
      f.finished = fs::exists(run.path() / "result.json");
      out.push_back(std::move(f));
    }
  }
  std::sort(out.begin(), out.end(), [](const FoundRun& a, const FoundRun& b) {
    return a.variant != b.variant ? a.variant < b.variant : a.seed < b.seed;
  });
  return out;
}

const Variant* find_variant(const std::vector<Variant>& variants, const std::string& name) {
  for (const auto& v : variants)
    if (v.name == name) return &v;
  return nullptr;
}

// Refuses a run directory whose config.json is not the run config of its (variant, seed).
// The saved config is merged onto the defaults, so that a run written before a config key
// was added (with a default that keeps the old behaviour) still counts as the same run.
// `what_to_do` ends the message.
void check_run_config(const FoundRun& f, const Json& config, const Variant& variant,
                      const std::string& what_to_do = "use another --out, or delete that directory to run it again") {
  const std::string path = f.dir + "/config.json";
  const std::string diff =
      first_difference(config::merge(read_json_file(path), path), run_config(config, variant, f.seed));
  check(diff.empty(), f.dir + " holds a run with a different config (first difference: '" + diff + "'); " + what_to_do);
}

// The level weights [layer][head][level] of the last line of a metrics.jsonl that has
// them, or null. A line that is not JSON is an error naming the file and line, and so is
// a file whose last step is not `steps` (the trainer always logs the final step: a
// shorter file was cut, and its curves and level weights would end early).
Json final_level_weights(const std::string& path, std::int64_t steps) {
  std::ifstream in(path);
  check(in.good(), path + ": cannot be read (a finished run's record needs its metrics.jsonl)");
  Json last;
  std::int64_t last_step = -1;
  std::string line;
  for (std::int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    Json j;
    try {
      j = Json::parse(line);
    } catch (const Json::exception& e) {
      throw Error(path + " line " + std::to_string(number) + ": not JSON (" + e.what() +
                  "; delete the run directory to run it again)");
    }
    if (!j.is_object()) continue;
    if (j.contains("level_weights")) last = j.at("level_weights");
    if (j.contains("step") && j.at("step").is_number_integer()) last_step = j.at("step").get<std::int64_t>();
  }
  check(last_step == steps, path + ": ends at step " +
                                (last_step < 0 ? std::string("(none)") : std::to_string(last_step)) +
                                ", but result.json says the run trained " + std::to_string(steps) +
                                " steps (a cut file; restore it, or delete the run directory to run it again)");
  return last;
}

// The record of a finished run, checked (result.json's keys, metrics.jsonl readable).
RunRecord load_record(const FoundRun& f, const Json& run_cfg) {
  const std::string path = f.dir + "/result.json";
  Json result = read_json_file(path);
  check_result(result, path);
  const std::int64_t steps = result.at("steps").get<std::int64_t>();
  return {f.variant, f.seed, f.rel, run_cfg, std::move(result), final_level_weights(f.dir + "/metrics.jsonl", steps)};
}

// The experiment section's own checks that can fail before any training: seeds (a
// non-empty list of distinct integers >= 0, returned), paper_row and compare_to.
std::vector<std::int64_t> check_experiment_section(const Json& config, const std::vector<Variant>& variants) {
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
  summarize(config, variants, {});  // paper_row and compare_to, on no runs
  return seeds;
}

// Writes experiment.json, summary.json, summary.md and attention_maps.json of out_dir
// from every finished run there whose variant is in the config; returns the summary.
Json write_summary(const Json& config, const std::vector<Variant>& variants, const std::string& out_dir,
                   const std::string& command, std::ostream& progress, TaskCache& tasks) {
  std::vector<std::int64_t> seeds = config.at("experiment").at("seeds").get<std::vector<std::int64_t>>();
  const std::string baseline = config.at("experiment").at("baseline").get<std::string>();
  if (!find_variant(variants, baseline))
    progress << "note: experiment.baseline '" << baseline
             << "' names no variant: the summary has no ratios or paired differences to a baseline\n";
  std::vector<RunRecord> runs;
  for (const auto& f : find_runs(out_dir, &progress)) {
    const Variant* v = find_variant(variants, f.variant);
    if (v == nullptr) {
      progress << "note: " << f.dir << " is a run of variant '" << f.variant
               << "', which is not in the config: left out of the summary\n";
      continue;
    }
    if (!f.finished) {
      progress << "note: " << f.dir << " is unfinished: left out of the summary\n";
      continue;
    }
    runs.push_back(load_record(f, run_config(config, *v, f.seed)));
    if (std::find(seeds.begin(), seeds.end(), f.seed) == seeds.end()) seeds.push_back(f.seed);
  }
  // By seed, then variant in config order: the order of every sum in the summary, the
  // same however the runs came here.
  auto variant_index = [&](const std::string& name) { return find_variant(variants, name) - variants.data(); };
  std::sort(runs.begin(), runs.end(), [&](const RunRecord& a, const RunRecord& b) {
    return a.seed != b.seed ? a.seed < b.seed : variant_index(a.variant) < variant_index(b.variant);
  });

  std::sort(seeds.begin(), seeds.end());
  Json described = config;  // the experiment this directory now holds: every recorded seed
  described["experiment"]["seeds"] = seeds;
  write_file_atomic(out_dir + "/experiment.json", described.dump(2) + "\n");
  const std::string rerun =
      "hkt experiment --config " + shell_quote(out_dir + "/experiment.json") + " --out <new directory>";
  Json summary = summarize(described, variants, runs);
  // The (variant, seed) cells of the grid no finished run fills: a table with holes says so.
  Json missing = Json::object();
  for (const auto& v : variants)
    for (auto seed : seeds)
      if (std::none_of(runs.begin(), runs.end(),
                       [&](const RunRecord& r) { return r.variant == v.name && r.seed == seed; }))
        missing[v.name].push_back(seed);
  summary["missing_runs"] = missing;
  summary["command"] = command;
  summary["rerun_command"] = rerun;
  summary["all_runs"] = Json::array();
  for (const auto& r : runs)
    summary["all_runs"].push_back({{"variant", r.variant}, {"seed", r.seed}, {"dir", r.dir}, {"result", r.result}});
  write_file_atomic(out_dir + "/summary.json", summary.dump(2) + "\n");
  write_file_atomic(out_dir + "/summary.md", summary_markdown(summary, command, rerun));

  // Attention maps of each variant's lowest seed with a best checkpoint, on a validation
  // example of that variant's own data. A variant without any checkpoint here (records
  // copied without them) keeps the maps this directory had.
  Json old_maps = Json::object();
  if (fs::exists(out_dir + "/attention_maps.json")) {
    try {
      old_maps = read_json_file(out_dir + "/attention_maps.json");
    } catch (const Error& e) {
      progress << "note: " << e.what() << ": its maps are not kept\n";
    }
  }
  Json maps = Json::object();
  for (const auto& v : variants) {
    const RunRecord* chosen = nullptr;
    for (const auto& r : runs)
      if (r.variant == v.name && fs::exists(out_dir + "/" + r.dir + "/best.safetensors") &&
          (chosen == nullptr || r.seed < chosen->seed))
        chosen = &r;
    if (chosen != nullptr) {
      try {  // needs the task's data, which a merge on another machine may lack
        const auto model = load_model(chosen->config, out_dir + "/" + chosen->dir + "/best.safetensors");
        maps[v.name] = attention_maps(*model, tasks.get(chosen->config).val);
        maps[v.name]["seed"] = chosen->seed;
        continue;
      } catch (const Error& e) {
        progress << "note: no new attention maps for variant '" << v.name << "': " << e.what() << "\n";
      }
    }
    if (old_maps.is_object() && old_maps.contains(v.name)) {
      maps[v.name] = old_maps.at(v.name);
    } else if (std::any_of(runs.begin(), runs.end(), [&](const RunRecord& r) { return r.variant == v.name; })) {
      progress << "note: no run of variant '" << v.name << "' has a best.safetensors here: no attention maps\n";
    }
  }
  write_file_atomic(out_dir + "/attention_maps.json", maps.dump() + "\n");
  return summary;
}

}  // namespace

Shard parse_shard(const std::string& text) {
  const std::string bad = "--shard must be I/N with 0 <= I < N, e.g. 0/4; got '" + text + "'";
  const std::size_t slash = text.find('/');
  check(slash != std::string::npos, bad);
  const std::string i = text.substr(0, slash), n = text.substr(slash + 1);
  for (const auto& part : {i, n})
    check(!part.empty() && part.size() <= 6 && part.find_first_not_of("0123456789") == std::string::npos, bad);
  const Shard s{std::stoll(i), std::stoll(n)};
  check(s.count >= 1 && s.count <= 100000 && s.index < s.count, bad);
  return s;
}

Shard slurm_shard(const char* task_id, const char* task_count, const char* task_min, const char* task_max) {
  if (task_id == nullptr) return {};
  auto integer = [](const char* name, const char* value) {
    const std::string text = value == nullptr ? "" : value;
    check(!text.empty() && text.size() <= 9 && text.find_first_not_of("0123456789") == std::string::npos,
          std::string(name) + " must be an integer from 0 to 999999999 when SLURM_ARRAY_TASK_ID is set, got '" + text +
              "'");
    return std::stoll(text);
  };
  const std::int64_t id = integer("SLURM_ARRAY_TASK_ID", task_id),
                     count = integer("SLURM_ARRAY_TASK_COUNT", task_count),
                     min = task_min == nullptr ? 0 : integer("SLURM_ARRAY_TASK_MIN", task_min);
  check(count >= 1 && count <= 100000,
        "SLURM_ARRAY_TASK_COUNT must be from 1 to 100000 (the most shards), got " + std::to_string(count));
  // MIN, MIN + 1, ..., MIN + COUNT - 1: else some shard index would never run.
  const bool contiguous = task_max == nullptr || integer("SLURM_ARRAY_TASK_MAX", task_max) == min + count - 1;
  check(contiguous && id >= min && id - min < count,
        "SLURM_ARRAY_TASK_ID " + std::to_string(id) + " is not in a contiguous array MIN .. MIN + COUNT - 1 " +
            "(SLURM_ARRAY_TASK_MIN " + std::to_string(min) + ", SLURM_ARRAY_TASK_COUNT " + std::to_string(count) +
            (task_max != nullptr ? std::string(", SLURM_ARRAY_TASK_MAX ") + task_max : std::string()) +
            "): submit e.g. --array=0-" + std::to_string(count - 1) + " (no step, no list), or give --shard I/N");
  return {id - min, count};
}

namespace {

// Refuses an out_dir whose experiment.json describes an experiment of another name: its
// summary would be rewritten as this config's (variants and seeds added to one
// experiment keep its name). `what` names the command in the message.
void check_same_experiment(const Json& config, const std::string& out_dir, const std::string& what) {
  const std::string path = out_dir + "/experiment.json";
  if (!fs::exists(path)) return;
  const Json held = read_json_file(path);
  check(held.is_object() && held.contains("experiment") && held.at("experiment").is_object() &&
            held.at("experiment").contains("name") && held.at("experiment").at("name").is_string(),
        path + ": not an experiment.json (no experiment.name)");
  const std::string held_name = held.at("experiment").at("name").get<std::string>(),
                    name = config.at("experiment").at("name").get<std::string>();
  check(held_name == name, what + ": " + out_dir + " holds the experiment '" + held_name + "' (" + path +
                               "), and this config is '" + name +
                               "': give another --out, or the same experiment.name to add runs to it");
}

// Creates the experiment directory, refusing a path that exists and is not a directory.
void make_experiment_dir(const std::string& out_dir) {
  check(!fs::exists(out_dir) || fs::is_directory(out_dir), out_dir + " exists and is not a directory (--out)");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  check(!ec, "cannot create the experiment directory " + out_dir + ": " + ec.message());
}

// The run directories of out_dir, each of a config variant checked: its config is the
// run config of its (variant, seed), and a finished one's record reads (result.json,
// metrics.jsonl). Throws hkt::Error naming the directory or file.
std::vector<FoundRun> checked_runs(const Json& config, const std::vector<Variant>& variants, const std::string& out_dir,
                                   std::ostream* notes) {
  std::vector<FoundRun> found = find_runs(out_dir, notes);
  for (const auto& f : found) {
    const Variant* v = find_variant(variants, f.variant);
    if (v == nullptr) continue;
    check_run_config(f, config, *v);
    if (f.finished) load_record(f, run_config(config, *v, f.seed));
  }
  return found;
}

}  // namespace

Json run_experiment(const Json& config, const std::string& out_dir, const std::string& command, std::ostream& progress,
                    bool progress_is_terminal, const Shard& shard, bool train_missing) {
  const auto variants = experiment_variants(config);
  const std::vector<std::int64_t> seeds = check_experiment_section(config, variants);
  check(
      shard.count >= 1 && shard.index >= 0 && shard.index < shard.count,
      "experiment: shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + " must have 0 <= I < N");

  // This shard's runs: run k of the plan (seeds in order, variants within a seed) when
  // k mod N = I.
  struct Planned {
    std::int64_t seed;
    const Variant* variant;
    Json config;
    std::string rel;
  };
  std::vector<Planned> plan;
  std::int64_t k = 0;
  for (auto s : seeds)
    for (const auto& v : variants)
      if (k++ % shard.count == shard.index)
        plan.push_back({s, &v, run_config(config, v, s), v.name + "/seed-" + std::to_string(s)});

  // Everything that can be refused is checked before anything is trained or written:
  // every run directory of out_dir, and the model and schedule of every variant that
  // still has a run to train (built once on its data).
  std::vector<FoundRun> found = checked_runs(config, variants, out_dir, &progress);
  auto finished = [&](const std::string& rel) {
    return std::any_of(found.begin(), found.end(), [&](const FoundRun& f) { return f.rel == rel && f.finished; });
  };
  TaskCache tasks;
  std::set<std::string> built;
  for (const auto& p : plan) {
    if (!train_missing || finished(p.rel) || built.count(p.variant->name)) continue;
    try {
      config::model_config(p.config, 1, 0, 2, 1);  // the enum keys, before any data is read
      build_model(p.config, tasks.get(p.config).train);
      schedule_config(p.config);
    } catch (const Error& e) {
      throw Error("experiment variant '" + p.variant->name + "': " + e.what());
    }
    built.insert(p.variant->name);
  }

  check_same_experiment(config, out_dir, train_missing ? "experiment" : "experiment --no-train");
  check(
      train_missing || std::any_of(found.begin(), found.end(),
                                   [&](const FoundRun& f) { return f.finished && find_variant(variants, f.variant); }),
      "experiment --no-train: " + out_dir +
          " holds no finished run of this config's variants, so there is no "
          "summary to rebuild");
  make_experiment_dir(out_dir);
  const RunLock lock(out_dir, "hkt experiment");
  // Again under the lock: another process (a merge) may have written runs meanwhile.
  found = checked_runs(config, variants, out_dir, nullptr);
  if (shard.count > 1)
    progress << "shard " << shard.index << "/" << shard.count << ": " << plan.size() << " of "
             << seeds.size() * variants.size() << " runs\n";
  std::size_t index = 0;
  for (const auto& p : plan) {
    ++index;
    const std::string dir = out_dir + "/" + p.rel;
    // Built with += : GCC 12 reports a false -Wrestrict for "[" + std::string (its bug 105329).
    std::string tag = "[";
    tag += std::to_string(index) + "/" + std::to_string(plan.size()) + "] " + p.rel;
    if (finished(p.rel)) {
      const Json result = read_json_file(dir + "/result.json");
      char accuracy[32];  // fixed format: the stream's may have been changed by a run's progress lines
      std::snprintf(accuracy, sizeof accuracy, "%.4f", result.at("test_accuracy").get<double>());
      progress << tag << ": finished before, reused (test accuracy " << accuracy << ")\n";
      continue;
    }
    if (!train_missing) {
      progress << tag << ": not trained (--no-train)\n";
      continue;
    }
    const bool resume = fs::exists(dir + "/config.json") && fs::exists(dir + "/last.safetensors");
    progress << tag << (resume ? ": resuming" : ": training") << "\n" << std::flush;
    TrainOptions options;
    options.out_dir = dir;
    options.resume = resume;
    options.overwrite = !resume;
    options.progress = &progress;
    options.progress_is_terminal = progress_is_terminal;
    options.eval_metrics = theory::eval_metrics;
    train(p.config, options);
  }
  return write_summary(config, variants, out_dir, command, progress, tasks);
}

namespace {

// What a merge copies, by "<variant>/seed-<s>": every finished run of the sources that
// out_dir does not hold finished, each checked as merge_experiments says; throws
// hkt::Error naming the directory or file. `notes` (when not null) is told what is
// skipped and why.
std::map<std::string, FoundRun> merge_plan(const Json& config, const std::vector<Variant>& variants,
                                           const std::vector<std::string>& sources, const std::string& out_dir,
                                           std::ostream* notes) {
  std::map<std::string, FoundRun> here;  // out_dir's runs
  for (const auto& f : checked_runs(config, variants, out_dir, notes)) here[f.rel] = f;
  std::ostringstream ignored;
  std::ostream& note = notes != nullptr ? *notes : ignored;
  std::map<std::string, FoundRun> chosen;
  for (const auto& src : sources) {
    check(fs::is_directory(src), "experiment --merge: " + src + " is not a directory");
    if (fs::exists(out_dir) && fs::equivalent(src, out_dir)) continue;  // its records are here already
    const std::vector<FoundRun> runs = find_runs(src, notes);
    if (runs.empty() && fs::exists(src + "/experiment.json")) {
      // An experiment directory with no run: a shard whose share was empty (more shards
      // than runs) or not yet run. Nothing to take from it.
      note << "note: " << src << " holds no run yet: nothing merged from it\n";
      continue;
    }
    check(!runs.empty(), "experiment --merge: " + src +
                             " holds no run directory (<variant>/seed-<s>/ with a config.json) and is not an "
                             "experiment directory (no experiment.json); name the experiment directories "
                             "themselves, e.g. " +
                             src + "/shard-*");
    for (const auto& f : runs) {
      if (!f.finished) {
        note << "note: " << f.dir << " is unfinished: not merged\n";
        continue;
      }
      const Variant* v = find_variant(variants, f.variant);
      check(v != nullptr, f.dir + " is a run of variant '" + f.variant +
                              "', which is not in the config (add it to experiment.variants, or merge without that "
                              "directory)");
      check_run_config(f, config, *v, "merge without that directory, or into another --out with its own config");
      const Json rc = run_config(config, *v, f.seed);
      load_record(f, rc);
      if (fs::exists(f.dir + "/best.safetensors")) load_model(rc, f.dir + "/best.safetensors");
      // A target without result.json or last.safetensors holds no training to lose: an
      // interrupted merge's copy (or a run stopped before its first checkpoint), replaced.
      const std::string target = out_dir + "/" + f.rel;
      if (here.count(f.rel) && !here.at(f.rel).finished && fs::exists(target + "/last.safetensors")) {
        throw Error(target + " holds an unfinished run of the same variant and seed that " + f.dir +
                    " holds finished: finish it (hkt experiment --out " + out_dir +
                    ") or delete that directory, then merge again");
      } else if (here.count(f.rel) && here.at(f.rel).finished) {
        note << "note: " << f.rel << " is in " << out_dir << " already: " << f.dir << " not copied\n";
      } else if (chosen.count(f.rel)) {
        note << "note: " << f.rel << " is in " << chosen.at(f.rel).dir << " too: " << f.dir << " not copied\n";
      } else {
        chosen[f.rel] = f;
      }
    }
  }
  return chosen;
}

// Copies one file into a run directory atomically (a temporary name, then a rename).
void copy_file_atomic(const std::string& from, const std::string& to) {
  check(fs::is_regular_file(from), "cannot copy " + from + ": not a regular file");
  const std::string tmp = to + ".tmp";
  std::error_code ec;
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(tmp, to, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error("cannot copy " + from + " to " + to + ": " + ec.message());
  }
}

}  // namespace

Json merge_experiments(const Json& config, const std::vector<std::string>& sources, const std::string& out_dir,
                       const std::string& command, std::ostream& progress) {
  const auto variants = experiment_variants(config);
  check_experiment_section(config, variants);
  check(!sources.empty(), "experiment --merge: name at least one experiment directory");
  merge_plan(config, variants, sources, out_dir, &progress);  // every check, before anything is written
  check_same_experiment(config, out_dir, "experiment --merge");
  make_experiment_dir(out_dir);
  const RunLock lock(out_dir, "hkt experiment --merge");
  // Planned again under the lock: another process may have written out_dir meanwhile.
  const std::map<std::string, FoundRun> chosen = merge_plan(config, variants, sources, out_dir, nullptr);
  for (const auto& [rel, f] : chosen) {
    const std::string to = out_dir + "/" + rel;
    fs::create_directories(to);
    const RunLock run_lock(to, "hkt experiment --merge");  // refused while a process trains there
    for (const char* file : {"config.json", "metrics.jsonl", "best.safetensors", "result.json"})
      if (fs::exists(f.dir + "/" + file)) copy_file_atomic(f.dir + "/" + file, to + "/" + file);
    progress << "merged " << f.dir << "\n";
  }
  progress << "merged " << chosen.size() << " runs into " << out_dir << "\n";
  TaskCache tasks;
  return write_summary(config, variants, out_dir, command, progress, tasks);
}

std::string shell_quote(const std::string& text) {
  const bool plain = !text.empty() && text.find_first_not_of(
                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                          "0123456789_./,=:@%+-") == std::string::npos;
  if (plain) return text;
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace hkt
