// cmd_experiment.cpp: `hkt experiment`, every variant of a config for every seed, then the
// summary table and plots (models/experiment/experiment.h does the work; tools/plot_experiment.py
// draws the plots when Python with matplotlib is found).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "config.h"
#include "error.h"
#include "experiment.h"

namespace hkt::tools {

namespace {
// "0,1,2" -> [0, 1, 2]: comma-separated decimal integers in [0, 2^62); anything else
// (an empty item, a sign, hex, letters, a huge number) is an error quoting the text.
std::vector<std::int64_t> parse_seeds(const std::string& text) {
  const std::string bad = "--seeds must be a comma-separated list of integers >= 0, e.g. 0,1,2; got '" + text + "'";
  std::vector<std::int64_t> seeds;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    check(!item.empty() && item.size() <= 18 && item.find_first_not_of("0123456789") == std::string::npos, bad);
    seeds.push_back(std::stoll(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return seeds;
}
}  // namespace

void add_experiment_command(CLI::App& app) {
  struct Args {
    std::string config, out, seeds, shard;
    std::vector<std::string> sets, merge;
    bool no_plots = false, no_train = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "experiment",
      "Train every variant of a config (MHA, HKT, ablations) for every seed; write summary.md, summary.json and plots "
      "from every finished run of the experiment directory");
  cmd->add_option("--config", args->config,
                  "Experiment config (JSON; docs/config.md, section experiment); with --merge, default: "
                  "OUT/experiment.json, else the first directory's")
      ->check(readable_file());
  cmd->add_option("--seeds", args->seeds, "Seeds, e.g. 0,1,2 (default: experiment.seeds of the config)");
  cmd->add_option("--out", args->out, "Experiment directory (default: runs/<config file name>)")
      ->check(nonempty_path());
  cmd->add_option("--set", args->sets, "Override a config key for every run: --set train.steps=200 (repeatable)");
  cmd->add_option("--shard", args->shard,
                  "Train only share I of N of the runs, I/N with 0 <= I < N (default: from SLURM_ARRAY_TASK_ID, "
                  "_COUNT, _MIN and _MAX in a Slurm job array, else 0/1)");
  cmd->add_option("--merge", args->merge,
                  "Train nothing: copy the finished runs of these experiment directories (shards) into --out "
                  "and rebuild its summary")
      ->expected(1, -1)
      ->check(nonempty_path())
      ->check(CLI::Validator(
          [](const std::string& dir) {
            // An option given right after --merge would otherwise be taken as a directory.
            return dir.rfind('-', 0) == 0 ? "'" + dir + "' is an option, not a directory: --merge takes directories"
                                          : std::string();
          },
          "DIR", "not an option"));
  cmd->add_flag("--no-plots", args->no_plots, "Do not draw the PNG plots");
  cmd->add_flag("--no-train", args->no_train,
                "Train nothing: rebuild the summary of --out from its finished runs (the others are listed as "
                "missing)");
  on_selected(cmd, [args, cmd] {
    const bool cmd_has_shard = cmd->count("--shard") > 0;     // --shard "" is refused, not "no shard"
    if (cmd->count("--seeds") > 0) parse_seeds(args->seeds);  // --seeds "" is refused, not "the config's seeds"
    for (const auto& item : args->sets)
      check(item.rfind("train.seed=", 0) != 0,
            "experiment: --set " + item + ": the seeds come from --seeds (or experiment.seeds)");
    const bool merge = !args->merge.empty();
    check(merge || !args->config.empty(), "experiment: --config is required (unless --merge is given)");
    check(!merge || (args->seeds.empty() && !cmd_has_shard),
          "experiment: --merge trains nothing, so it takes no --seeds or --shard (the seeds are those of the runs "
          "found)");
    check(!merge || !args->out.empty(), "experiment: --merge needs --out, the directory to merge into");
    check(!args->no_train || (!merge && !cmd_has_shard),
          "experiment: --no-train takes no --merge (a merge trains nothing already) and no --shard");
    for (const auto& dir : args->merge)
      check(std::filesystem::is_directory(dir), "experiment --merge: " + dir + " is not a directory");
    config::Json cfg;
    if (!args->config.empty()) {
      cfg = config::load_file(args->config);
    } else {  // --merge without --config: the experiment's own config
      const std::string path = std::filesystem::exists(args->out + "/experiment.json")
                                   ? args->out + "/experiment.json"
                                   : args->merge.front() + "/experiment.json";
      check(std::filesystem::exists(path), "experiment --merge: neither " + args->out + " nor " + args->merge.front() +
                                               " holds an experiment.json (a shard stopped before writing it?): "
                                               "give the experiment's config with --config");
      try {
        cfg = config::load_file(path);
        experiment_variants(cfg);
      } catch (const Error& e) {
        throw Error(path + " (the config of this merge): " + e.what());
      }
    }
    cfg = config::apply_sets(cfg, args->sets);
    if (!args->seeds.empty()) cfg["experiment"]["seeds"] = parse_seeds(args->seeds);
    const Shard shard = cmd_has_shard ? parse_shard(args->shard)
                        : merge || args->no_train
                            ? Shard{}
                            : slurm_shard(std::getenv("SLURM_ARRAY_TASK_ID"), std::getenv("SLURM_ARRAY_TASK_COUNT"),
                                          std::getenv("SLURM_ARRAY_TASK_MIN"), std::getenv("SLURM_ARRAY_TASK_MAX"));
    const std::string out =
        args->out.empty() ? "runs/" + std::filesystem::path(args->config).stem().string() : args->out;
    // The command as it can be pasted into a shell (summary.md records it).
    std::string command = "hkt experiment";
    if (!args->config.empty()) command += " --config " + shell_quote(args->config);
    if (!args->seeds.empty()) command += " --seeds " + shell_quote(args->seeds);
    if (shard.count > 1) command += " --shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count);
    if (args->no_train) command += " --no-train";
    if (merge) command += " --merge";
    for (const auto& m : args->merge) command += " " + shell_quote(m);
    command += " --out " + shell_quote(out);
    for (const auto& s : args->sets) command += " --set " + shell_quote(s);
    const bool terminal = isatty(fileno(stdout)) != 0;
    const config::Json summary = merge ? merge_experiments(cfg, args->merge, out, command, std::cout)
                                       : run_experiment(cfg, out, command, std::cout, terminal, shard, !args->no_train);
    std::cout << "\n" << summary_markdown(summary, command, summary.at("rerun_command").get<std::string>());
    std::cout << "\nwrote " << out << "/summary.md, summary.json, attention_maps.json\n" << std::flush;
    if (args->no_plots) return 0;
    const std::string why = run_plot_script("plot_experiment.py", out);
    if (!why.empty()) std::cout << why << "\n";
    return 0;
  });
}

}  // namespace hkt::tools
