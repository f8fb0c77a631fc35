// machine.h: what a run's time per step was measured on, for result.json's "machine"
// (docs/experiments.md, "Outputs"): the CPU, the threads, and how busy the machine was.
#pragma once

#include <string>

namespace hkt {

/// The CPU's model name ("model name" of /proc/cpuinfo, e.g. "AMD EPYC 7B13"), or
/// "unknown" where that file has none.
std::string cpu_model();

/// The system's 1-minute load average (getloadavg(3): runnable threads, averaged with a
/// one-minute decay), or -1 where it cannot be read.
double load_average_1min();

}  // namespace hkt
