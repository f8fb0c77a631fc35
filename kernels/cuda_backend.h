// cuda_backend.h: the engine's whole view of CUDA, as plain C++ functions.
//
// With nvcc at build time these are implemented in kernels/cuda/*.cu; without it,
// kernels/stub/cuda_stub.cpp implements them to throw hkt::Error("... this build has no
// CUDA support"). Nothing here detects a GPU at configure time: a CUDA build on a
// machine without a GPU (or driver) runs CPU work normally, and every CUDA request fails
// with a message naming the CUDA error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hkt::cuda {

/// True when this build contains the CUDA backend.
bool built_with_cuda();

/// Number of usable CUDA devices; 0 when the build has no CUDA, there is no driver or no
/// device. Never throws. `reason` (optional) receives why the count is 0.
int device_count(std::string* reason = nullptr);

/// Properties of one device, as cudaGetDeviceProperties reports them.
struct DeviceInfo {
  std::string name;
  int compute_major = 0, compute_minor = 0;
  std::size_t total_memory_bytes = 0;
  int multiprocessors = 0;
};

/// Throws hkt::Error when no device can be used, naming `what` (the request) and why:
/// "what: this build has no CUDA support" or "what: no CUDA device is available (...)".
void require_device(const std::string& what);

/// Properties of device `index`; throws hkt::Error if it does not exist.
DeviceInfo device_info(int index);

/// Allocates `nbytes` of device memory with cudaMalloc (never managed memory). Throws
/// hkt::Error naming the size asked for and the free memory when it fails.
void* allocate(std::size_t nbytes);

/// Frees memory from allocate(); never throws (errors are printed to stderr).
void free(void* ptr) noexcept;

/// Synchronous copies between host and device memory (`nbytes` bytes).
void copy_host_to_device(void* dst, const void* src, std::size_t nbytes);
void copy_device_to_host(void* dst, const void* src, std::size_t nbytes);
void copy_device_to_device(void* dst, const void* src, std::size_t nbytes);

/// out[i] = a[i] + b[i] for i < n, on device pointers of float (is_double false) or
/// double elements. The first elementwise kernel; the CUDA backend issue adds the rest.
void add(const void* a, const void* b, void* out, std::int64_t n, bool is_double);

}  // namespace hkt::cuda
