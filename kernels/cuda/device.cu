// device.cu: device query, memory and copies through the CUDA runtime.
#include <cstdio>

#include "check.cuh"
#include "cuda_backend.h"

namespace hkt::cuda {

bool built_with_cuda() { return true; }

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

void* allocate(std::size_t nbytes) {
  require_device("cuda allocate");
  void* ptr = nullptr;
  if (nbytes == 0) return nullptr;
  cudaError_t status = cudaMalloc(&ptr, nbytes);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    std::size_t free_bytes = 0, total_bytes = 0;
    (void)cudaMemGetInfo(&free_bytes, &total_bytes);
    throw Error("cuda allocate: cudaMalloc of " + std::to_string(nbytes) + " bytes failed (" +
                cudaGetErrorString(status) + "); " + std::to_string(free_bytes) + " of " +
                std::to_string(total_bytes) + " bytes free");
  }
  return ptr;
}

void free(void* ptr) noexcept {
  if (!ptr) return;
  cudaError_t status = cudaFree(ptr);
  if (status != cudaSuccess) std::fprintf(stderr, "hkt: cudaFree failed: %s\n", cudaGetErrorString(status));
}

void copy_host_to_device(void* dst, const void* src, std::size_t nbytes) {
  if (nbytes) HKT_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice));
}
void copy_device_to_host(void* dst, const void* src, std::size_t nbytes) {
  if (nbytes) HKT_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost));
}
void copy_device_to_device(void* dst, const void* src, std::size_t nbytes) {
  if (nbytes) HKT_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToDevice));
}

}  // namespace hkt::cuda
