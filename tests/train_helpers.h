// train_helpers.h: train() with the options the tests vary, the rest at their defaults.
#pragma once

#include <ostream>
#include <string>

#include "trainer.h"

namespace hkt {

/// train(cfg, options) with out_dir = dir and progress to `log` (not a terminal); the
/// other arguments are TrainOptions' fields of the same names (trainer.h).
inline config::Json train_run(const config::Json& cfg, const std::string& dir, std::ostream& log, bool resume = false,
                              std::int64_t stop_after = 0, bool overwrite = false, Device device = Device::CPU) {
  TrainOptions options;
  options.out_dir = dir;
  options.resume = resume;
  options.overwrite = overwrite;
  options.progress = &log;
  options.stop_after = stop_after;
  options.device = device;
  return train(cfg, options);
}

}  // namespace hkt
