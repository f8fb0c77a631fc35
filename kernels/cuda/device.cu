// device.cu: device query, the stream, memory (through the caching allocator) and
// copies, on the CUDA runtime. Every runtime call is checked (check.cuh).
#include <cstdio>
#include <cstring>

#include "check.cuh"
#include "cuda_backend.h"
#include "device_common.h"

namespace hkt::cuda {

bool built_with_cuda() { return true; }
bool is_emulated() { return false; }

int device_count(std::string* reason) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    // No driver or no device: CPU work goes on; CUDA requests fail via require_device.
    (void)cudaGetLastError();  // clear the sticky error state
    if (reason) *reason = cudaGetErrorString(status);
    return 0;
  }
  if (count == 0 && reason) *reason = "cudaGetDeviceCount reported 0 devices";
  return count;
}

void require_device(const std::string& what) {
  std::string reason;
  if (device_count(&reason) == 0) throw Error(what + ": no CUDA device is available (" + reason + ")");
}

DeviceInfo device_info(int index) {
  require_device("device_info");
  cudaDeviceProp prop{};
  HKT_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  DeviceInfo info;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.total_memory_bytes = prop.totalGlobalMem;
  info.multiprocessors = prop.multiProcessorCount;
  return info;
}

std::size_t max_shared_memory_per_block() {
  static const std::size_t bytes = [] {
    int device = 0, value = 0;
    HKT_CUDA_CHECK(cudaGetDevice(&device));
    HKT_CUDA_CHECK(cudaDeviceGetAttribute(&value, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    return static_cast<std::size_t>(value);
  }();
  return bytes;
}

cudaStream_t stream() {
  // One non-blocking stream for all of the engine's work, created on first use.
  static cudaStream_t s = [] {
    cudaStream_t created = nullptr;
    HKT_CUDA_CHECK(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking));
    return created;
  }();
  return s;
}

CachingAllocator& device_allocator() {
  static auto* a = new CachingAllocator(
      [](std::size_t nbytes) -> void* {
        void* ptr = nullptr;
        const cudaError_t status = cudaMalloc(&ptr, nbytes);
        if (status == cudaErrorMemoryAllocation) {
          (void)cudaGetLastError();  // out of memory is not sticky: clear it and report nullptr
          return nullptr;
        }
        // Anything else (a sticky fault of an earlier kernel, say) is that error, not
        // "out of memory".
        check_cuda(status, "cudaMalloc", __FILE__, __LINE__);
        return ptr;
      },
      [](void* ptr) {
        const cudaError_t status = cudaFree(ptr);
        if (status != cudaSuccess) std::fprintf(stderr, "hkt: cudaFree failed: %s\n", cudaGetErrorString(status));
      },
      []() -> std::size_t {
        std::size_t free_bytes = 0, total_bytes = 0;
        if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
        return free_bytes;
      });
  static const bool guard_io = [] {
    a->set_guard_io(
        [](void* ptr, unsigned char byte, std::size_t n) { HKT_CUDA_CHECK(cudaMemsetAsync(ptr, byte, n, stream())); },
        [](void* host, const void* dev, std::size_t n) {
          HKT_CUDA_CHECK(cudaMemcpyAsync(host, dev, n, cudaMemcpyDeviceToHost, stream()));
          HKT_CUDA_CHECK(cudaStreamSynchronize(stream()));
        });
    return true;
  }();
  (void)guard_io;
  return *a;
}

void* allocate(std::size_t nbytes) {
  require_device("cuda allocate");
  (void)stream();  // create the stream before the first kernel can need it
  return device_allocator().allocate(nbytes);
}

void free(void* ptr) noexcept {
  if (!ptr) return;
  try {
    device_allocator().free(ptr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hkt: %s\n", e.what());
  }
}

void empty_cache() {
  count_host_wait();
  HKT_CUDA_CHECK(cudaStreamSynchronize(stream()));
  device_allocator().empty_cache();
}

namespace {

// Uploads of up to kStagingBytes go through a ring of pinned (page-locked) buffers: the
// host copies the bytes into the next buffer, queues that buffer's copy to the device on
// the stream, and records an event after it. The caller's memory is free on return and
// the host has not waited for the stream. A buffer is reused once its event has fired;
// only when the ring has gone round to a buffer whose copy is still queued does the host
// wait, for that copy alone. (A copy from pageable memory may make the driver wait for
// the stream, CUDA Runtime API, "API synchronization behavior"; from pinned memory the
// copy is asynchronous.)
class StagingRing {
 public:
  static constexpr int kBuffers = 16;

  StagingRing() {
    HKT_CUDA_CHECK(cudaHostAlloc(&pinned_, kBuffers * kStagingBytes, cudaHostAllocDefault));
    for (auto& e : done_) HKT_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }

  void upload(void* dst, const void* src, std::size_t nbytes) {
    const int i = next_;
    next_ = (next_ + 1) % kBuffers;
    const cudaError_t state = cudaEventQuery(done_[i]);  // success for an event never recorded
    if (state == cudaErrorNotReady) {
      count_host_wait();
      HKT_CUDA_CHECK(cudaEventSynchronize(done_[i]));
    } else {
      HKT_CUDA_CHECK(state);
    }
    auto* buffer = static_cast<unsigned char*>(pinned_) + static_cast<std::size_t>(i) * kStagingBytes;
    std::memcpy(buffer, src, nbytes);
    HKT_CUDA_CHECK(cudaMemcpyAsync(dst, buffer, nbytes, cudaMemcpyHostToDevice, stream()));
    HKT_CUDA_CHECK(cudaEventRecord(done_[i], stream()));
  }

 private:
  void* pinned_ = nullptr;
  cudaEvent_t done_[kBuffers] = {};
  int next_ = 0;
};

StagingRing& staging_ring() {
  static auto* ring = new StagingRing();  // never destroyed: uploads may come from static destructors
  return *ring;
}

}  // namespace

void copy_host_to_device(void* dst, const void* src, std::size_t nbytes) {
  if (!nbytes) return;
  if (nbytes <= kStagingBytes) return staging_ring().upload(dst, src, nbytes);
  count_host_wait();
  HKT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream()));
  HKT_CUDA_CHECK(cudaStreamSynchronize(stream()));  // the host buffer may be freed on return
}
void copy_device_to_host(void* dst, const void* src, std::size_t nbytes) {
  if (!nbytes) return;
  count_host_wait();
  HKT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, stream()));
  HKT_CUDA_CHECK(cudaStreamSynchronize(stream()));
}
void copy_device_to_device(void* dst, const void* src, std::size_t nbytes) {
  if (nbytes) HKT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, stream()));
}

void synchronize() {
  count_host_wait();
  HKT_CUDA_CHECK(cudaGetLastError());
  HKT_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

}  // namespace hkt::cuda
