// commands.h: each subcommand of `hkt` adds itself to the CLI11 app and leaves a
// function to run once parsing has selected it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace hkt::tools {

/// `hkt gradcheck`: finite-difference checks of every differentiable op (cmd_gradcheck.cpp).
void add_gradcheck_command(CLI::App& app);
/// `hkt devices`: what this build and machine offer (cmd_devices.cpp).
void add_devices_command(CLI::App& app);
/// `hkt bench attention`: attention timings, FLOPs and memory (cmd_bench.cpp).
void add_bench_command(CLI::App& app);
/// `hkt bench step` (cmd_bench_step.cpp), added under the bench command.
void add_bench_step_command(CLI::App* bench);
/// `hkt train`, `hkt eval`, `hkt predict` (cmd_train.cpp).
void add_train_commands(CLI::App& app);
/// `hkt data generate-listops`, `hkt data inspect` (cmd_data.cpp).
void add_data_commands(CLI::App& app);

/// `hkt experiment`: variants x seeds, summary and plots (cmd_experiment.cpp).
void add_experiment_command(CLI::App& app);
/// `hkt theory`: the paper's theory results checked on real weights (cmd_theory.cpp).
void add_theory_command(CLI::App& app);

/// CLI11 check of an input file option: passes a readable regular file, else says what
/// the path is ("PATH: no such file", "PATH: a symbolic link loop", "PATH: is a
/// directory, not a file"); CLI11 prefixes the option's name.
CLI::Validator readable_file();
/// CLI11 check of an output directory option: refuses an empty path.
CLI::Validator nonempty_path();

/// Registers the body of a subcommand; run_selected calls the one the user chose.
void on_selected(CLI::App* sub, std::function<int()> body);
/// Runs the selected subcommand; returns its exit status.
int run_selected(CLI::App& app);

/// Runs `python tools/<script> <dir>` (a plotting script of this repository) with the first
/// Python that imports matplotlib: $HKT_PYTHON, python3, then /usr/bin/python3 (Debian's
/// python3-matplotlib installs for the system Python, which a pyenv python3 earlier on
/// PATH would not see). The script's output goes to stdout, or stderr when
/// output_to_stderr. Returns "" when it ran, else one line saying why there are no plots.
std::string run_plot_script(const std::string& script, const std::string& dir, bool output_to_stderr = false);

}  // namespace hkt::tools
