// device.cpp (EMULATE build): "device" memory is host memory from the caching
// allocator over aligned_alloc, copies are memcpy, and there is one pretend device. See
// cuda_backend.h for why this build exists: it runs every CUDA code path but the launch
// on a machine without a GPU.
#include <cstdlib>
#include <cstring>

#include "device_common.h"
#include "emulated/block_emulator.h"
#include "cuda_backend.h"
#include "error.h"

namespace hkt::cuda {

bool built_with_cuda() { return true; }
bool is_emulated() { return true; }

int device_count(std::string*) { return 1; }

void require_device(const std::string&) {}

DeviceInfo device_info(int index) {
  check(index == 0, "device_info: no CUDA device " + std::to_string(index) + " (the emulated build has one, 0)");
  DeviceInfo info;
  info.name = "emulated CUDA device (host memory, HKT_CUDA=EMULATE)";
  info.compute_major = 0;
  info.compute_minor = 0;
  return info;
}

std::size_t max_shared_memory_per_block() { return emu::max_shared_bytes(); }

CachingAllocator& device_allocator() {
  static auto* a = [] {
    auto* created = new CachingAllocator([](std::size_t nbytes) { return std::aligned_alloc(64, nbytes); },
                                         [](void* ptr) { std::free(ptr); });
    created->set_guard_io([](void* ptr, unsigned char byte, std::size_t n) { std::memset(ptr, byte, n); },
                          [](void* host, const void* dev, std::size_t n) { std::memcpy(host, dev, n); });
    return created;
  }();
  return *a;
}

void* allocate(std::size_t nbytes) { return device_allocator().allocate(nbytes); }

void free(void* ptr) noexcept {
  try {
    device_allocator().free(ptr);
  } catch (...) {
  }
}

// The host waits counted where cuda/device.cu waits (host_waits in cuda_backend.h).
void empty_cache() {
  count_host_wait();
  device_allocator().empty_cache();
}

void copy_host_to_device(void* dst, const void* src, std::size_t nbytes) {
  if (!nbytes) return;
  if (nbytes > kStagingBytes) count_host_wait();
  std::memcpy(dst, src, nbytes);
}
void copy_device_to_host(void* dst, const void* src, std::size_t nbytes) {
  if (!nbytes) return;
  count_host_wait();
  std::memcpy(dst, src, nbytes);
}
void copy_device_to_device(void* dst, const void* src, std::size_t nbytes) {
  if (nbytes) std::memmove(dst, src, nbytes);
}
void synchronize() { count_host_wait(); }

}  // namespace hkt::cuda
