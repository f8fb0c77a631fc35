// cuda_stub.cpp: the CUDA backend of a build without nvcc. Every request that needs a
// GPU throws hkt::Error("...: this build has no CUDA support"), so a no-GPU build links,
// runs all CPU work and fails clearly when asked for CUDA.
#include "cuda_backend.h"

#include "error.h"

namespace hkt::cuda {

namespace {
[[noreturn]] void no_cuda(const std::string& what) {
  throw Error(what + ": this build has no CUDA support (rebuild on a machine with the CUDA toolkit, HKT_CUDA=ON)");
}
}  // namespace

bool built_with_cuda() { return false; }

int device_count(std::string* reason) {
  if (reason) *reason = "this build has no CUDA support";
  return 0;
}

void require_device(const std::string& what) { no_cuda(what); }
DeviceInfo device_info(int) { no_cuda("device_info"); }
void* allocate(std::size_t) { no_cuda("cuda allocate"); }
void free(void*) noexcept {}
void copy_host_to_device(void*, const void*, std::size_t) { no_cuda("copy to cuda"); }
void copy_device_to_host(void*, const void*, std::size_t) { no_cuda("copy from cuda"); }
void copy_device_to_device(void*, const void*, std::size_t) { no_cuda("copy on cuda"); }
void add(const void*, const void*, void*, std::int64_t, bool) { no_cuda("add on cuda"); }

}  // namespace hkt::cuda
