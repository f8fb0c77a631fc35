// storage.h: a block of memory on one device, shared by every tensor that views it.
#pragma once

#include <cstddef>
#include <memory>

#include "device.h"

namespace hkt {

/// Owns `nbytes` of memory on `device` (64-byte aligned on the CPU, cudaMalloc on CUDA)
/// and frees it when the last tensor using it goes away. Contents start uninitialised.
class Storage {
 public:
  /// Throws hkt::Error when the memory cannot be allocated (CPU: naming the size; CUDA:
  /// see hkt::cuda::allocate).
  static std::shared_ptr<Storage> allocate(std::size_t nbytes, Device device);

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  Storage(void* data, std::size_t nbytes, Device device) : data_(data), nbytes_(nbytes), device_(device) {}
  void* data_;
  std::size_t nbytes_;
  Device device_;
};

/// Bytes of CPU tensor storage: alive now, and the most alive at once since the last
/// reset_peak_cpu_memory(). Counts every Storage the engine allocates on the CPU (not
/// BLAS or OpenMP workspaces), so it measures what an algorithm keeps, e.g. O(T) vs
/// O(T^2) attention.
struct MemoryStats {
  std::size_t current_bytes = 0;
  std::size_t peak_bytes = 0;
};
MemoryStats cpu_memory_stats();
/// Sets the peak to the current value.
void reset_peak_cpu_memory();

}  // namespace hkt
