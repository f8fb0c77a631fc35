// test_experiment_records.cpp: experiments that outlive a machine (experiment.h): the
// summary rebuilt from records (level weights, comparisons, timing marks), shard
// assignment from --shard and Slurm's variables, two shard processes merged into the
// unsharded summary, merges that must be refused, records without checkpoints, and a
// summary rebuilt without training (--no-train).
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

#include "config.h"
#include "experiment.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;
namespace fs = std::filesystem;
using config::Json;

namespace {

Json tiny_experiment(const std::string& seeds) {
  return config::merge(Json::parse(R"({
    "data": {"task": "listops", "max_len": 48,
             "listops": {"source": "generate", "train": 32, "val": 16, "test": 16, "seed": 5}},
    "model": {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "dropout": 0.0},
    "train": {"batch_size": 8, "lr": 0.003, "schedule": "constant", "warmup_steps": 1, "eval_every": 2,
              "log_every": 2, "checkpoint_every": 2, "threads": 1, "steps": 4},
    "experiment": {"name": "tiny", "seeds": )" +
                                   seeds + "}}"));
}

Json result(double test, const std::string& cpu, double load) {
  return {{"best_val_accuracy", test},     {"test_accuracy", test},
          {"time_per_step_ms", 10.0},      {"parameter_count", 100},
          {"chance_level", 0.1},           {"steps", 4},
          {"extra_tests", Json::object()}, {"machine", {{"cpu", cpu}, {"threads", 2}, {"load_average_max", load}}}};
}

// The summary's numbers that do not depend on timing: per variant its seeds, accuracies,
// paired differences and level weights, and every run's result without its timings.
Json accuracies(const Json& summary) {
  Json out = Json::array();
  for (const auto& row : summary.at("variants"))
    out.push_back({row.at("variant"), row.at("seeds"), row.at("val_accuracy"), row.at("test_accuracy"),
                   row.at("accuracy_by_seed"), row.at("differences_to_baseline"), row.at("final_level_weights")});
  for (auto run : summary.at("all_runs")) {
    for (const char* timing : {"time_per_step_ms", "train_seconds", "machine", "peak_tensor_bytes"})
      run["result"].erase(timing);
    out.push_back(run);
  }
  return out;
}

}  // namespace

TEST_CASE("experiment summary: final level weights, comparisons to a second variant, timing marks", "[experiment]") {
  Json cfg = tiny_experiment("[0, 1]");
  cfg["experiment"]["variants"] = Json::parse(R"([{"name": "mha", "set": {"model.attention": "mha"}},
      {"name": "hkt", "set": {"model.attention": "hkt"}},
      {"name": "L2", "set": {"model.attention": "hkt", "model.hkt.levels": 2}}])");
  cfg["experiment"]["compare_to"] = {"hkt"};
  const auto variants = experiment_variants(cfg);
  std::vector<RunRecord> runs;
  auto add = [&](std::size_t v, std::int64_t seed, double test, const std::string& cpu, double load, Json weights) {
    runs.push_back(
        {variants[v].name, seed, "x", run_config(cfg, variants[v], seed), result(test, cpu, load), std::move(weights)});
  };
  add(0, 0, 0.50, "A", 2.1, Json::parse("[[[1.0], [1.0]]]"));
  add(0, 1, 0.60, "A", 2.0, Json::parse("[[[1.0], [1.0]]]"));
  add(1, 0, 0.55, "A", 2.2, Json::parse("[[[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]]"));
  add(1, 1, 0.70, "B", 2.0, Json::parse("[[[0.4, 0.3, 0.3], [0.3, 0.3, 0.4]]]"));
  add(2, 0, 0.45, "A", 2.76, Json::parse("[[[0.5, 0.5], [0.5, 0.5]]]"));  // beside other work: 2.76 > 2 + 0.75
  add(2, 1, 0.50, "A", 2.75, Json::parse("[[[0.7, 0.3], [0.5, 0.5]]]"));
  const Json s = summarize(cfg, variants, runs);
  const Json& hkt = s.at("variants")[1];
  const Json& l2 = s.at("variants")[2];
  // Element-wise means over the two seeds, by hand: (0.2 + 0.4) / 2 = 0.3, ...
  const double expected[2][3] = {{0.3, 0.3, 0.4}, {0.2, 0.2, 0.6}};
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 3; ++l)
      CHECK(hkt.at("final_level_weights")[0][h][l].get<double>() == Approx(expected[h][l]).epsilon(1e-12));
  CHECK(hkt.at("timing").at("cpus") == Json::parse(R"(["A", "B"])"));
  CHECK(hkt.at("timing").at("runs_beside_other_work") == 0);
  CHECK(l2.at("timing").at("runs_beside_other_work") == 1);
  // L2 against hkt, per seed: 0.45 - 0.55 = -0.10, 0.50 - 0.70 = -0.20: mean -0.15.
  const Json& d = l2.at("differences_to").at("hkt").at("test");
  CHECK(d.at("mean").get<double>() == Approx(-0.15).epsilon(1e-12));
  CHECK(d.at("std").get<double>() == Approx(std::sqrt(0.005)).epsilon(1e-9));
  CHECK(d.at("t_critical_95").get<double>() == 12.706);
  CHECK(!hkt.at("differences_to").contains("hkt"));
  const std::string md = summary_markdown(s, "cmd", "again");
  CHECK(md.find("Every run of this table trained again from nothing: `again`") != std::string::npos);
  CHECK(md.find("| 10 † |") != std::string::npos);  // hkt: two CPUs
  CHECK(md.find("| 10 * |") != std::string::npos);  // L2: a run beside other work
  CHECK(md.find("Paired differences to hkt (same seed)") != std::string::npos);
  CHECK(md.find("- L2, test: -15.00 ± 7.07 (per seed: -10.0 -20.0; n = 2)") != std::string::npos);
  CHECK(md.find("- hkt: layer 0 h0 [0.30 0.30 0.40], h1 [0.20 0.20 0.60]") != std::string::npos);
  CHECK(md.find("- mha: layer") == std::string::npos);  // one level: no weights to show

  cfg["experiment"]["compare_to"] = {"hkt3"};
  require_error([&] { summarize(cfg, variants, runs); },
                "'experiment.compare_to' names \"hkt3\", which is not a variant");

  // compare_to naming the baseline adds no second section; a record without "machine"
  // (older than the field) is counted apart, not as another CPU.
  cfg["experiment"]["compare_to"] = {"mha"};
  runs[1].result.erase("machine");
  const Json again = summarize(cfg, variants, runs);
  CHECK(again.at("variants")[0].at("timing").at("cpus") == Json::parse(R"(["A"])"));
  CHECK(again.at("variants")[0].at("timing").at("runs_without_machine") == 1);
  const std::string md2 = summary_markdown(again, "cmd");
  CHECK(md2.find("Paired differences to mha") == md2.rfind("Paired differences to mha"));
  const std::size_t mha_row = md2.find("| mha |");
  CHECK(md2.substr(mha_row, md2.find('\n', mha_row) - mha_row).find("†") == std::string::npos);

  // Without the baseline's runs: no ratios and no differences, the table still renders.
  std::vector<RunRecord> no_base(runs.begin() + 2, runs.end());
  const Json alone = summarize(cfg, variants, no_base);
  CHECK(alone.at("baseline").is_null());
  CHECK(!alone.at("variants")[0].contains("time_ratio"));
  CHECK(summary_markdown(alone, "cmd").find("| hkt | 3 |") != std::string::npos);
}

TEST_CASE("experiment summary: the t test beyond 30 degrees of freedom and seeds in numeric order", "[experiment]") {
  Json cfg = tiny_experiment("[0]");
  const auto variants = experiment_variants(cfg);
  // 41 seeds: hkt - mha alternates +0.01 and -0.01 around +0.02 (40 degrees of freedom:
  // the table's 2.021); seeds 0..40 make "10" sort before "2" as text.
  std::vector<RunRecord> runs;
  for (std::int64_t seed = 0; seed <= 40; ++seed) {
    const double diff = 0.02 + (seed % 2 == 0 ? 0.01 : -0.01);
    runs.push_back({"mha", seed, "x", run_config(cfg, variants[0], seed), result(0.5, "A", 1), Json()});
    runs.push_back({"hkt", seed, "x", run_config(cfg, variants[1], seed), result(0.5 + diff, "A", 1), Json()});
  }
  const Json d = summarize(cfg, variants, runs).at("variants")[1].at("differences_to_baseline").at("test");
  CHECK(d.at("n") == 41);
  CHECK(d.at("t_critical_95").get<double>() == 2.021);
  // Per seed in numeric order: seed 2 (+0.03) comes third, not after seed 19.
  CHECK(d.at("values")[2].get<double>() == Approx(0.03).epsilon(1e-9));
  CHECK(d.at("values")[3].get<double>() == Approx(0.01).epsilon(1e-9));
  // 21 values of 0.03 and 20 of 0.01: mean 0.02 + 0.01 / 41.
  CHECK(d.at("mean").get<double>() == Approx(0.02 + 0.01 / 41).epsilon(1e-9));
}

TEST_CASE("experiment shards: --shard I/N and Slurm's array variables", "[experiment]") {
  CHECK(parse_shard("0/1").count == 1);
  CHECK(parse_shard("3/4").index == 3);
  for (const char* bad : {"4/4", "1", "-1/2", "1/0", "a/2", "1/2/3", "/2", " 1/2", "1/1000000"})
    require_error([&] { parse_shard(bad); }, "--shard must be I/N with 0 <= I < N");
  CHECK(slurm_shard(nullptr, nullptr, nullptr, nullptr).count == 1);
  const Shard s = slurm_shard("7", "4", "5", "8");  // --array=5-8: the third task
  CHECK(s.index == 2);
  CHECK(s.count == 4);
  CHECK(slurm_shard("2", "3", nullptr, nullptr).index == 2);
  require_error([&] { slurm_shard("4", "3", "0", nullptr); }, "submit e.g. --array=0-2 (no step, no list)");
  // --array=0-8:4 (COUNT 3, MAX 8): task 4 maps to shard 1 of 3, but shard 2 would
  // never run, so every task of it is refused.
  require_error([&] { slurm_shard("4", "3", "0", "8"); }, "is not in a contiguous array");
  require_error([&] { slurm_shard("0", "3", "0", "8"); }, "SLURM_ARRAY_TASK_MAX 8");
  require_error([&] { slurm_shard("1", nullptr, nullptr, nullptr); },
                "SLURM_ARRAY_TASK_COUNT must be an integer from 0 to 999999999");
  require_error([&] { slurm_shard("x", "2", nullptr, nullptr); }, "SLURM_ARRAY_TASK_ID must be an integer");
  require_error([&] { slurm_shard("0", "0", nullptr, nullptr); }, "SLURM_ARRAY_TASK_COUNT must be from 1 to 100000");
}

TEST_CASE("experiment shards: two processes, merged, give the unsharded summary", "[experiment]") {
  TempDir dir("shards");
  const std::string config_path = dir.file("tiny.json"), hkt = HKT_BINARY;
  { std::ofstream(config_path) << tiny_experiment("[0, 1]").dump(); }
  auto experiment = [&](const std::string& args) {
    return hkt + " experiment --no-plots " + args + " >>" + dir.file("log") + " 2>&1";
  };
  // Shard 0 from --shard, shard 1 from Slurm's variables (--array=4-5), side by side.
  const std::string both = experiment("--config " + config_path + " --shard 0/2 --out " + dir.file("s0")) +
                           " & p=$!; SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_COUNT=2 SLURM_ARRAY_TASK_MIN=4 " +
                           experiment("--config " + config_path + " --out " + dir.file("s1")) +
                           " ; r1=$?; wait $p; r0=$?; test $r0 -eq 0 -a $r1 -eq 0";
  INFO(read_text(dir.file("log")));
  REQUIRE(std::system(both.c_str()) == 0);
  // Runs go round-robin over (seed, variant): shard 0 has mha, shard 1 hkt.
  CHECK(fs::exists(dir.file("s0/mha/seed-1/result.json")));
  CHECK(!fs::exists(dir.file("s0/hkt")));
  CHECK(fs::exists(dir.file("s1/hkt/seed-0/result.json")));
  REQUIRE(std::system(experiment("--merge " + dir.file("s0") + " " + dir.file("s1") + " --out " + dir.file("merged"))
                          .c_str()) == 0);
  REQUIRE(std::system(experiment("--config " + config_path + " --out " + dir.file("all")).c_str()) == 0);
  const Json merged = config::read_json_file(dir.file("merged/summary.json"));
  const Json all = config::read_json_file(dir.file("all/summary.json"));
  REQUIRE(merged.at("variants").size() == 2);
  CHECK(merged.at("variants")[0].at("seeds") == Json::parse("[0, 1]"));
  CHECK(accuracies(merged) == accuracies(all));  // bit-identical: JSON keeps every double exactly
  CHECK(config::read_json_file(dir.file("merged/experiment.json")).at("experiment").at("seeds") ==
        Json::parse("[0, 1]"));
  CHECK(!fs::exists(dir.file("merged/mha/seed-0/last.safetensors")));  // records and best weights only
  CHECK(fs::exists(dir.file("merged/mha/seed-0/best.safetensors")));

  // --no-train rebuilds shard 0's table from its records, Slurm's variables ignored; it
  // takes no --shard or --merge.
  REQUIRE(std::system(("SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=2 " +
                       experiment("--config " + config_path + " --seeds 0,1,2 --out " + dir.file("s0") + " --no-train"))
                          .c_str()) == 0);
  CHECK(!fs::exists(dir.file("s0/mha/seed-2")));
  CHECK(config::read_json_file(dir.file("s0/summary.json")).at("missing_runs") ==
        Json::parse(R"({"hkt": [0, 1, 2], "mha": [2]})"));
  CHECK(read_text(dir.file("s0/summary.md")).find("--seeds 0,1,2 --no-train --out " + dir.file("s0")) !=
        std::string::npos);
  for (const std::string& bad : std::vector<std::string>{" --shard 0/2", " --merge " + dir.file("s1")})
    CHECK(std::system(
              experiment("--config " + config_path + " --out " + dir.file("s0") + " --no-train" + bad).c_str()) != 0);
  CHECK(read_text(dir.file("log")).find("--no-train takes no --merge") != std::string::npos);
}

TEST_CASE("experiment records: later seeds join the summary, bad merges are refused, checkpoints are optional",
          "[experiment][errors]") {
  TempDir dir("records");
  const std::string a = dir.file("a"), b = dir.file("b");
  std::ostringstream log;
  run_experiment(tiny_experiment("[0]"), a, "test", log, false);
  run_experiment(tiny_experiment("[1]"), b, "test", log, false);
  const std::string b_summary = read_text(b + "/summary.json");

  // Refused, with b untouched: a record of another config, of an unknown variant, a file.
  const std::string c = dir.file("c");
  Json changed = tiny_experiment("[0]");
  changed["train"]["lr"] = 0.001;
  run_experiment(changed, c, "test", log, false);
  require_error(
      [&] {
        merge_experiments(tiny_experiment("[0]"), {a, c}, b, "test", log);
      },
      "c/hkt/seed-0 holds a run with a different config (first difference: 'train.lr'); merge without");
  Json only_mha = tiny_experiment("[0]");
  only_mha["experiment"]["variants"] = Json::parse(R"([{"name": "mha", "set": {"model.attention": "mha"}}])");
  require_error([&] { merge_experiments(only_mha, {a}, b, "test", log); },
                "a/hkt/seed-0 is a run of variant 'hkt', which is not in the config");
  require_error([&] { merge_experiments(tiny_experiment("[0]"), {a + "/summary.json"}, b, "test", log); },
                "summary.json is not a directory");
  require_error([&] { merge_experiments(tiny_experiment("[0]"), {dir.path.string()}, b, "test", log); },
                "holds no run directory (<variant>/seed-<s>/ with a config.json)");
  // A source whose metrics.jsonl is broken is refused before anything is copied, naming it.
  const std::string broken = dir.file("broken");
  fs::create_directories(broken + "/mha");
  fs::copy(a + "/mha/seed-0", broken + "/mha/seed-0");
  std::ofstream(broken + "/mha/seed-0/metrics.jsonl") << "{\"trunc\n";
  require_error([&] { merge_experiments(tiny_experiment("[0]"), {broken}, b, "test", log); },
                "broken/mha/seed-0/metrics.jsonl line 1: not JSON");
  CHECK(read_text(b + "/summary.json") == b_summary);
  CHECK(!fs::exists(b + "/mha/seed-0"));

  // An unfinished run in the target where a source holds the same run finished: refused.
  const std::string u = dir.file("u");
  fs::create_directories(u + "/mha");
  fs::copy(a + "/mha/seed-0", u + "/mha/seed-0");
  fs::remove(u + "/mha/seed-0/result.json");
  require_error([&] { merge_experiments(tiny_experiment("[0]"), {a}, u, "test", log); },
                "u/mha/seed-0 holds an unfinished run of the same variant and seed");
  CHECK(!fs::exists(u + "/mha/seed-0/result.json"));
  // Without its last.safetensors it holds no training (an interrupted merge's copy): replaced.
  fs::remove(u + "/mha/seed-0/last.safetensors");
  merge_experiments(tiny_experiment("[0]"), {a}, u, "test", log);
  CHECK(read_text(u + "/mha/seed-0/result.json") == read_text(a + "/mha/seed-0/result.json"));

  // Merged: seeds 0 and 1 in one summary.
  const Json merged = merge_experiments(tiny_experiment("[0]"), {a}, b, "test", log);
  CHECK(merged.at("missing_runs") == Json::object());
  // A variant of the config without any run is missing every seed.
  Json three = tiny_experiment("[0]");
  three["experiment"]["variants"].push_back({{"name", "L2"}, {"set", {{"model.hkt.levels", 2}}}});
  std::ostringstream quiet;
  const Json with_l2 = merge_experiments(three, {a}, dir.file("three"), "test", quiet);
  CHECK(with_l2.at("missing_runs") == Json::parse(R"({"L2": [0]})"));
  CHECK(merged.at("variants")[0].at("seeds") == Json::parse("[0, 1]"));
  const Json maps = config::read_json_file(b + "/attention_maps.json");
  CHECK(maps.at("hkt").at("seed") == 0);  // the lowest seed with a checkpoint

  // Records without checkpoints (as committed): nothing is trained again, the summary is
  // the same, and the attention maps stay.
  for (const auto& run : {"mha/seed-0", "mha/seed-1", "hkt/seed-0", "hkt/seed-1"})
    for (const char* f : {"best.safetensors", "last.safetensors"}) fs::remove(b + "/" + run + "/" + f);
  std::ostringstream again;
  const Json rebuilt = run_experiment(tiny_experiment("[1]"), b, "test", again, false);
  CHECK(again.str().find("training") == std::string::npos);
  CHECK(again.str().find("[2/2] hkt/seed-1: finished before, reused") != std::string::npos);
  CHECK(accuracies(rebuilt) == accuracies(merged));
  CHECK(config::read_json_file(b + "/attention_maps.json") == maps);

  // A hole in the grid is named; a seed-00 directory is not a run of seed 0.
  fs::copy(b + "/hkt/seed-0", b + "/hkt/seed-00");
  fs::remove_all(b + "/hkt/seed-0");
  std::ostringstream holes;
  const Json with_hole = run_experiment(tiny_experiment("[1]"), b, "test", holes, false);
  CHECK(with_hole.at("missing_runs") == Json::parse(R"({"hkt": [0]})"));
  CHECK(with_hole.at("variants")[1].at("seeds") == Json::parse("[1]"));
  CHECK(holes.str().find("seed-00 is not a run directory name hkt writes") != std::string::npos);
  CHECK(read_text(b + "/summary.md").find("Not in this table (no finished run yet): hkt seed 0.") != std::string::npos);

  // --no-train: seed 2 of both variants is not trained; the table comes from the records
  // alone and names the runs it lacks. With no finished run at all there is nothing to rebuild.
  std::ostringstream no_train;
  const Json rebuilt_only = run_experiment(tiny_experiment("[1, 2]"), b, "test", no_train, false, {}, false);
  CHECK(no_train.str().find("hkt/seed-2: not trained (--no-train)") != std::string::npos);
  CHECK(!fs::exists(b + "/hkt/seed-2"));
  CHECK(rebuilt_only.at("missing_runs") == Json::parse(R"({"hkt": [0, 2], "mha": [2]})"));
  CHECK(rebuilt_only.at("variants")[0].at("seeds") == Json::parse("[0, 1]"));
  require_error([&] { run_experiment(tiny_experiment("[0]"), dir.file("empty"), "test", log, false, {}, false); },
                "empty holds no finished run of this config's variants, so there is no summary to rebuild");
  CHECK(!fs::exists(dir.file("empty")));

  // A record of a variant the config no longer has is left out, and said so.
  std::ostringstream fewer;
  const Json s = run_experiment(only_mha, b, "test", fewer, false);
  CHECK(s.at("variants").size() == 1);
  CHECK(fewer.str().find("is a run of variant 'hkt', which is not in the config: left out") != std::string::npos);
}

TEST_CASE("experiment records: damaged records, another experiment's directory and empty shards",
          "[experiment][errors]") {
  TempDir dir("damaged");
  const std::string a = dir.file("a");
  std::ostringstream log;
  run_experiment(tiny_experiment("[0]"), a, "test", log, false);
  // A copy of a's hkt record, damaged one way at a time; each is refused naming the file,
  // before anything is trained or written.
  auto damaged = [&](const std::string& name, const std::function<void(const std::string&)>& damage) {
    const std::string d = dir.file(name);
    fs::create_directories(d + "/hkt");
    fs::copy(a + "/hkt/seed-0", d + "/hkt/seed-0");
    damage(d + "/hkt/seed-0");
    return d;
  };
  // No config.json: trained over, the record would be replaced.
  const std::string no_config = damaged("no_config", [](const std::string& run) { fs::remove(run + "/config.json"); });
  const std::string result_before = read_text(no_config + "/hkt/seed-0/result.json");
  require_error([&] { run_experiment(tiny_experiment("[0]"), no_config, "test", log, false); },
                "no_config/hkt/seed-0 holds files but no config.json: restore its config.json, or delete the "
                "directory to run it again");
  CHECK(read_text(no_config + "/hkt/seed-0/result.json") == result_before);
  CHECK(!fs::exists(no_config + "/mha"));
  // A run directory holding only hkt's .lock (a run stopped before it wrote its config)
  // holds no record: it is trained.
  const std::string lock_only = damaged("lock_only", [](const std::string& run) {
    for (const auto& entry : fs::directory_iterator(run))
      if (entry.path().filename() != ".lock") fs::remove(entry.path());
    std::ofstream(run + "/.lock") << "";
  });
  std::ostringstream lock_log;
  run_experiment(tiny_experiment("[0]"), lock_only, "test", lock_log, false);
  CHECK(fs::exists(lock_only + "/hkt/seed-0/result.json"));
  // A negative step time.
  const std::string negative = damaged("negative", [](const std::string& run) {
    Json r = config::read_json_file(run + "/result.json");
    r["time_per_step_ms"] = -50;
    std::ofstream(run + "/result.json") << r.dump();
  });
  require_error([&] { run_experiment(tiny_experiment("[0]"), negative, "test", log, false, {}, false); },
                "negative/hkt/seed-0/result.json: 'time_per_step_ms' must be >= 0, got -50");
  // metrics.jsonl cut at a line boundary: its last line is step 2 of the run's 4.
  const std::string cut = damaged("cut", [](const std::string& run) {
    std::ifstream in(run + "/metrics.jsonl");
    std::string line, kept;
    while (std::getline(in, line))
      if (Json::parse(line).at("step").get<std::int64_t>() <= 2) kept += line + "\n";
    in.close();
    std::ofstream(run + "/metrics.jsonl") << kept;
  });
  require_error([&] { run_experiment(tiny_experiment("[0]"), cut, "test", log, false, {}, false); },
                "cut/hkt/seed-0/metrics.jsonl: ends at step 2, but result.json says the run trained 4 steps");
  const std::string emptied =
      damaged("emptied", [](const std::string& run) { std::ofstream(run + "/metrics.jsonl", std::ios::trunc); });
  require_error([&] { run_experiment(tiny_experiment("[0]"), emptied, "test", log, false, {}, false); },
                "emptied/hkt/seed-0/metrics.jsonl: ends at step (none)");

  // A directory holding another experiment (by experiment.name) is refused by a run, a
  // rebuild and a merge; its experiment.json stays.
  Json other = tiny_experiment("[0]");
  other["experiment"]["name"] = "another";
  const std::string held = read_text(a + "/experiment.json");
  const std::string refusal = "holds the experiment 'tiny' (" + a + "/experiment.json), and this config is 'another'";
  require_error([&] { run_experiment(other, a, "test", log, false); }, "experiment: " + a + " " + refusal);
  require_error([&] { run_experiment(other, a, "test", log, false, {}, false); }, "experiment --no-train: " + a);
  require_error([&] { merge_experiments(other, {a}, a, "test", log); }, "experiment --merge: " + a);
  CHECK(read_text(a + "/experiment.json") == held);

  // A shard whose share is empty (5 shards, 2 runs) writes an experiment directory with
  // no run; merging it with the others takes nothing from it.
  std::ostringstream shard_log;
  const Json empty = run_experiment(tiny_experiment("[0]"), dir.file("shard3"), "test", shard_log, false, {3, 5});
  CHECK(empty.at("all_runs").empty());
  CHECK(fs::exists(dir.file("shard3/experiment.json")));
  std::ostringstream merge_log;
  const Json merged =
      merge_experiments(tiny_experiment("[0]"), {a, dir.file("shard3")}, dir.file("m"), "test", merge_log);
  CHECK(merged.at("missing_runs") == Json::object());
  CHECK(merge_log.str().find("shard3 holds no run yet: nothing merged from it") != std::string::npos);
}

TEST_CASE("experiment command line: a pasteable command in summary.md, --seeds \"\" refused, baseline and reuse notes",
          "[experiment][errors]") {
  TempDir dir("cli quoting");  // a space in every path below
  const std::string config_path = dir.file("my cfg.json"), hkt = HKT_BINARY, log = dir.file("log");
  { std::ofstream(config_path) << tiny_experiment("[0]").dump(); }
  auto run = [&](const std::string& args) {
    return std::system((hkt + " experiment --no-plots " + args + " >>'" + log + "' 2>&1").c_str());
  };
  const std::string out = dir.file("out dir");
  REQUIRE(run("--config '" + config_path + "' --out '" + out + "' --set 'experiment.name=it'\\''s'") == 0);
  // The recorded command quotes what a shell would split or interpret, and runs as pasted.
  const std::string md = read_text(out + "/summary.md");
  const std::string expected =
      "hkt experiment --config '" + config_path + "' --out '" + out + "' --set 'experiment.name=it'\\''s'";
  CHECK(md.find(expected) != std::string::npos);
  CHECK(md.find("hkt experiment --config '" + out + "/experiment.json' --out <new directory>") != std::string::npos);
  CHECK(config::read_json_file(out + "/experiment.json").at("experiment").at("name") == "it's");
  REQUIRE(run(expected.substr(std::string("hkt experiment ").size())) == 0);
  // A reused run's accuracy is printed with four decimals.
  const std::string text = read_text(log), reused = "finished before, reused (test accuracy ";
  const std::size_t at = text.find(reused);
  REQUIRE(at != std::string::npos);
  const std::string value = text.substr(at + reused.size(), 7);  // "0.2600)": one digit, a point, four digits
  CHECK((value.size() == 7 && std::isdigit(static_cast<unsigned char>(value[0])) && value[1] == '.' &&
         std::all_of(value.begin() + 2, value.begin() + 6,
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) &&
         value[6] == ')'));
  // --seeds "" is refused, not read as the config's seeds.
  CHECK(run("--config '" + config_path + "' --seeds '' --out '" + dir.file("s") + "'") != 0);
  CHECK(read_text(log).find("--seeds must be a comma-separated list of integers >= 0, e.g. 0,1,2; got ''") !=
        std::string::npos);
  CHECK(!fs::exists(dir.file("s")));
  // A baseline that names no variant: the summary has none, and says why.
  Json no_base = tiny_experiment("[0]");
  no_base["experiment"]["baseline"] = "nope";
  std::ostringstream notes;
  const Json s = run_experiment(no_base, dir.file("b"), "test", notes, false);
  CHECK(s.at("baseline").is_null());
  CHECK(notes.str().find("note: experiment.baseline 'nope' names no variant") != std::string::npos);
}
