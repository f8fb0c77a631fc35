// machine.cpp: the CPU's name and the load average (machine.h).
#include "machine.h"

#include <cstdlib>
#include <fstream>

namespace hkt {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    const std::size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "unknown" : line.substr(start);
  }
  return "unknown";
}

double load_average_1min() {
  double load[1];
  return getloadavg(load, 1) == 1 ? load[0] : -1.0;
}

}  // namespace hkt
