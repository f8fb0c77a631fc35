// device_common.cpp: the parts of cuda_backend.h that are the same on a GPU and in the
// EMULATE build: memory statistics and guard mode over the build's caching allocator, the
// TF32 setting, and the empty cases of the batched matrix product.
#include "device_common.h"

#include <atomic>

#include "cuda_backend.h"

namespace hkt::cuda {

void reset_peak_memory() { device_allocator().reset_peak(); }

CudaMemoryStats memory_stats() {
  const CachingAllocator& a = device_allocator();
  return {a.allocated_bytes(), a.peak_allocated_bytes(), a.reserved_bytes()};
}

namespace {
std::atomic<std::int64_t> g_host_waits{0};
}

void count_host_wait() { g_host_waits.fetch_add(1, std::memory_order_relaxed); }
std::int64_t host_waits() { return g_host_waits.load(std::memory_order_relaxed); }

void set_guard_mode(bool on) { device_allocator().set_guard_mode(on); }
std::vector<std::string> take_guard_violations() { return device_allocator().take_guard_violations(); }

namespace {
bool g_allow_tf32 = false;  // the EMULATE build records it only: the host has no TF32
}

void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }

void gemm_strided_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const void* a,
                          std::int64_t stride_a, const void* b, std::int64_t stride_b, void* c, std::int64_t stride_c,
                          std::int64_t batch, DType dtype) {
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) {  // an empty sum: C = 0 (cuBLAS with k = 0 would leave C untouched)
    fill(c, m * n + (batch - 1) * stride_c, 0.0, dtype);
    return;
  }
  gemm_strided_batched_nonempty(trans_a, trans_b, m, n, k, a, stride_a, b, stride_b, c, stride_c, batch, dtype,
                                g_allow_tf32);
}

}  // namespace hkt::cuda
