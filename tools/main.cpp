// main.cpp: the `hkt` command. Subcommands are registered by the cmd_*.cpp files;
// any hkt::Error a subcommand throws is printed as "hkt: error: ..." with exit status 2.
#include <CLI/CLI.hpp>

#include <iostream>

#include "commands.h"
#include "error.h"

int main(int argc, char** argv) {
  CLI::App app{"hkt: a C++/CUDA engine for the Hierarchical Kernel Transformer (arXiv 2604.08829)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hkt 0.1.0");
  hkt::tools::add_gradcheck_command(app);
  hkt::tools::add_devices_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return hkt::tools::run_selected(app);
  } catch (const hkt::Error& e) {
    std::cerr << "hkt: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "hkt: internal error: " << e.what() << "\n";
    return 3;
  }
}
