// cmd_experiment.cpp: `hkt experiment`, every variant of a config for every seed, then the
// summary table and plots (models/experiment/experiment.h does the work; tools/plot_experiment.py
// draws the plots when Python with matplotlib is found).
#include <unistd.h>

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
    std::string config, out;
    std::string seeds;
    std::vector<std::string> sets;
    bool no_plots = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "experiment",
      "Train every variant of a config (MHA, HKT, ablations) for every seed; write summary.md, summary.json and plots");
  cmd->add_option("--config", args->config, "Experiment config (JSON; docs/config.md, section experiment)")
      ->required()
      ->check(readable_file());
  cmd->add_option("--seeds", args->seeds, "Seeds, e.g. 0,1,2 (default: experiment.seeds of the config)");
  cmd->add_option("--out", args->out, "Experiment directory (default: runs/<config file name>)")
      ->check(nonempty_path());
  cmd->add_option("--set", args->sets, "Override a config key for every run: --set train.steps=200 (repeatable)");
  cmd->add_flag("--no-plots", args->no_plots, "Do not draw the PNG plots");
  on_selected(cmd, [args] {
    for (const auto& item : args->sets)
      check(item.rfind("train.seed=", 0) != 0,
            "experiment: --set " + item + ": the seeds come from --seeds (or experiment.seeds)");
    config::Json cfg = config::apply_sets(config::load_file(args->config), args->sets);
    if (!args->seeds.empty()) cfg["experiment"]["seeds"] = parse_seeds(args->seeds);
    const std::string out =
        args->out.empty() ? "runs/" + std::filesystem::path(args->config).stem().string() : args->out;
    std::string command = "hkt experiment --config " + args->config;
    if (!args->seeds.empty()) command += " --seeds " + args->seeds;
    command += " --out " + out;
    for (const auto& s : args->sets) command += " --set " + s;
    const bool terminal = isatty(fileno(stdout)) != 0;
    run_experiment(cfg, out, command, std::cout, terminal);
    std::cout << "\n" << summary_markdown(config::Json::parse(std::ifstream(out + "/summary.json")), command);
    std::cout << "\nwrote " << out << "/summary.md, summary.json, attention_maps.json\n" << std::flush;
    if (args->no_plots) return 0;
    const std::string why = run_plot_script("plot_experiment.py", out);
    if (!why.empty()) std::cout << why << "\n";
    return 0;
  });
}

}  // namespace hkt::tools
