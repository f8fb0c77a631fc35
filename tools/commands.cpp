// commands.cpp: the registry that maps a parsed subcommand to its body.
#include <map>

#include "commands.h"

namespace hkt::tools {

namespace {
std::map<CLI::App*, std::function<int()>>& bodies() {
  static std::map<CLI::App*, std::function<int()>> registry;
  return registry;
}
}  // namespace

void on_selected(CLI::App* sub, std::function<int()> body) { bodies()[sub] = std::move(body); }

int run_selected(CLI::App& /*app*/) {
  for (auto& [sub, body] : bodies())
    if (sub->parsed()) return body();  // nested subcommands (bench attention) too
  return 0;
}

}  // namespace hkt::tools
