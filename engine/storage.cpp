#include "storage.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "cuda_backend.h"
#include "error.h"

namespace hkt {

namespace {
// Relaxed atomics suffice: the counters are statistics, never used for synchronisation.
std::atomic<std::size_t> g_cpu_current{0}, g_cpu_peak{0};

void count_allocation(std::size_t nbytes) {
  const std::size_t now = g_cpu_current.fetch_add(nbytes, std::memory_order_relaxed) + nbytes;
  std::size_t peak = g_cpu_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_cpu_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
// The CPU's cache of freed blocks is glibc's own heap, told to keep them. By default
// glibc serves large blocks with fresh mmap calls (above a threshold that it raises as
// such blocks are freed, up to 32 MiB) and gives freed memory at the top of the heap back
// to the system beyond 128 KiB. A training step frees and re-allocates the same tensor
// sizes every step, so steps kept paying page faults and the zeroing of fresh pages
// (perf: clear_page, exc_page_fault). Here every block up to 32 MiB (the largest
// threshold glibc accepts on 64-bit systems) comes from the heap, and freed memory stays
// there for the next step's tensors: the role PyTorch's caching allocator plays on the
// GPU, and kernels/caching_allocator.h here. The cost is that the process keeps its peak
// heap. A setting glibc refuses is left at glibc's default (mallopt returns 0).
void keep_freed_cpu_memory() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 16 << 20);
  });
#endif
}
}  // namespace

MemoryStats cpu_memory_stats() {
  return MemoryStats{g_cpu_current.load(std::memory_order_relaxed), g_cpu_peak.load(std::memory_order_relaxed)};
}

void reset_peak_cpu_memory() {
  g_cpu_peak.store(g_cpu_current.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

std::shared_ptr<Storage> Storage::allocate(std::size_t nbytes, Device device) {
  void* data = nullptr;
  if (device == Device::CUDA) {
    data = cuda::allocate(nbytes);
  } else {
    // 64-byte alignment suits AVX-512 loads and cache lines; aligned_alloc needs a size
    // that is a multiple of the alignment, so round up (and never ask for 0 bytes).
    keep_freed_cpu_memory();
    std::size_t rounded = ((nbytes + 63) / 64) * 64;
    data = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!data) throw Error("cpu allocate: could not allocate " + std::to_string(nbytes) + " bytes");
    count_allocation(nbytes);
  }
  return std::shared_ptr<Storage>(new Storage(data, nbytes, device));
}

Storage::~Storage() {
  if (device_ == Device::CUDA)
    cuda::free(data_);
  else {
    std::free(data_);
    g_cpu_current.fetch_sub(nbytes_, std::memory_order_relaxed);
  }
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") return Device::CUDA;
  throw Error("unknown device '" + name + "' (expected cpu or cuda)");
}

}  // namespace hkt
