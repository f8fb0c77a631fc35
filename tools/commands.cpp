// commands.cpp: the registry that maps a parsed subcommand to its body.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>

#include "commands.h"
#include "experiment.h"

#ifndef HKT_SOURCE_DIR
#define HKT_SOURCE_DIR "."
#endif

namespace hkt::tools {

namespace {
std::map<CLI::App*, std::function<int()>>& bodies() {
  static std::map<CLI::App*, std::function<int()>> registry;
  return registry;
}
}  // namespace

CLI::Validator readable_file() {
  return CLI::Validator(
      [](std::string& path) -> std::string {
        namespace fs = std::filesystem;
        std::error_code ec;
        const auto st = fs::status(path, ec);  // follows links: a loop shows as ELOOP
        if (ec) {
          if (ec == std::errc::too_many_symbolic_link_levels) return path + ": a symbolic link loop";
          if (ec == std::errc::no_such_file_or_directory) return path + ": no such file";
          return path + ": " + ec.message();
        }
        if (fs::is_directory(st)) return path + ": is a directory, not a file";
        if (!fs::exists(st)) return path + ": no such file";
        return "";
      },
      "FILE");
}

CLI::Validator nonempty_path() {
  return CLI::Validator(
      [](std::string& path) -> std::string { return path.empty() ? "an empty path; give a directory" : ""; }, "DIR");
}

void on_selected(CLI::App* sub, std::function<int()> body) { bodies()[sub] = std::move(body); }

int run_selected(CLI::App& /*app*/) {
  for (auto& [sub, body] : bodies())
    if (sub->parsed()) return body();  // nested subcommands (bench attention) too
  return 0;
}

std::string run_plot_script(const std::string& script, const std::string& dir, bool output_to_stderr) {
  const std::string path = std::string(HKT_SOURCE_DIR) + "/tools/" + script;
  if (!std::filesystem::exists(path)) return "plots skipped: " + path + " not found";
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("HKT_PYTHON"); p && *p) candidates.emplace_back(p);
  candidates.emplace_back("python3");
  candidates.emplace_back("/usr/bin/python3");
  std::string python;
  for (const auto& c : candidates)
    if (std::system((shell_quote(c) + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0) {
      python = c;
      break;
    }
  if (python.empty()) return "plots skipped: no Python with matplotlib (install python3-matplotlib, or set HKT_PYTHON)";
  std::cout.flush();
  std::cerr.flush();
  const std::string command =
      shell_quote(python) + " " + shell_quote(path) + " " + shell_quote(dir) + (output_to_stderr ? " 1>&2" : "");
  if (std::system(command.c_str()) != 0) return "plots failed (see the message above)";
  return "";
}

}  // namespace hkt::tools
