// cmd_devices.cpp: `hkt devices` prints whether this build has CUDA and which GPUs it sees.
#include <iostream>

#include "commands.h"
#include "cuda_backend.h"

namespace hkt::tools {

void add_devices_command(CLI::App& app) {
  auto* sub = app.add_subcommand("devices", "Show whether this build has CUDA support and list the GPUs it can use");
  on_selected(sub, [] {
    std::cout << "cpu: available\n";
    if (!cuda::built_with_cuda()) {
      std::cout << "cuda: this build has no CUDA support\n";
      return 0;
    }
    std::string reason;
    const int count = cuda::device_count(&reason);
    if (count == 0) {
      std::cout << "cuda: built with CUDA, but no CUDA device is available (" << reason << ")\n";
      return 0;
    }
    if (cuda::is_emulated()) {
      std::cout << "cuda:0: " << cuda::device_info(0).name << "\n";
      return 0;
    }
    for (int i = 0; i < count; ++i) {
      const auto info = cuda::device_info(i);
      std::cout << "cuda:" << i << ": " << info.name << ", compute capability " << info.compute_major << "."
                << info.compute_minor << ", " << info.total_memory_bytes / (1024 * 1024) << " MiB, "
                << info.multiprocessors << " SMs\n";
    }
    return 0;
  });
}

}  // namespace hkt::tools
