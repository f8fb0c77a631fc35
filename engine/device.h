// device.h: where a tensor's storage lives.
#pragma once

#include <string>

namespace hkt {

/// CPU memory, or the memory of CUDA device 0 (one GPU per process for now).
enum class Device { CPU, CUDA };

inline std::string device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

/// Parses "cpu" or "cuda"; throws hkt::Error for anything else.
Device parse_device(const std::string& name);

}  // namespace hkt
