// main.cpp: the `hkt` command. Subcommands are registered by the cmd_*.cpp files.
// Exit status: 0 success; 1 a check failed (e.g. a gradcheck row); 2 bad input (usage
// errors, and any hkt::Error, printed as "hkt: error: ..."); 3 an internal error.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "commands.h"
#include "error.h"

int main(int argc, char** argv) {
  CLI::App app{"hkt: a C++/CUDA engine for the Hierarchical Kernel Transformer (arXiv 2604.08829)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hkt 0.1.0");
  hkt::tools::add_gradcheck_command(app);
  hkt::tools::add_devices_command(app);
  hkt::tools::add_bench_command(app);
  hkt::tools::add_train_commands(app);
  hkt::tools::add_data_commands(app);
  hkt::tools::add_experiment_command(app);
  hkt::tools::add_theory_command(app);
  // An unknown first word would otherwise read as "A subcommand is required".
  if (argc > 1 && argv[1][0] != '-') {
    std::string known;
    bool found = false;
    for (const auto* sub : app.get_subcommands({})) {
      known += (known.empty() ? "" : ", ") + sub->get_name();
      found |= sub->get_name() == argv[1];
    }
    if (!found) {
      std::cerr << "hkt: error: unknown command '" << argv[1] << "' (commands: " << known << "; see hkt --help)\n";
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2, like other bad input.
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    return hkt::tools::run_selected(app);
  } catch (const hkt::Error& e) {
    std::cerr << "hkt: error: " << e.what() << "\n";
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {  // e.g. --out naming a file or an unwritable place
    std::cerr << "hkt: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "hkt: internal error: " << e.what() << "\n";
    return 3;
  }
}
