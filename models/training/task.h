// task.h: the data of an experiment, loaded as its config's "data" section says
// (docs/config.md): ListOps (generated or from files, plus the released test set as an
// extra test), sequential CIFAR-10, IMDB bytes or Fashion-MNIST.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "dataset.h"

namespace hkt {

struct TaskData {
  data::Dataset train, val, test;
  std::vector<data::Dataset> extra_tests;  ///< evaluated once at the end, e.g. the released ListOps test set
  std::vector<std::string> warnings;       ///< from readers (e.g. a validation split without movie URLs)
};

/// Loads the splits. Paths may use ${HKT_DATA_DIR}. limit_train/val/test > 0 keep the
/// first that many examples of a split (deterministic subsets for CPU configs). Throws
/// hkt::Error naming the config key or the file that is wrong.
TaskData load_task(const config::Json& config);

}  // namespace hkt
