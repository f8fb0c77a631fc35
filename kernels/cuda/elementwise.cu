// elementwise.cu: the first elementwise kernel, out = a + b over n contiguous elements.
// A grid-stride loop, so any n works with a fixed launch size.
#include "check.cuh"
#include "cuda_backend.h"

namespace hkt::cuda {

namespace {
template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    out[i] = a[i] + b[i];
}
}  // namespace

void add(const void* a, const void* b, void* out, std::int64_t n, bool is_double) {
  if (n == 0) return;
  constexpr int threads = 256;
  const std::int64_t wanted = (n + threads - 1) / threads;
  const int blocks = static_cast<int>(wanted < 65535 ? wanted : 65535);
  if (is_double)
    add_kernel<<<blocks, threads>>>(static_cast<const double*>(a), static_cast<const double*>(b),
                                    static_cast<double*>(out), n);
  else
    add_kernel<<<blocks, threads>>>(static_cast<const float*>(a), static_cast<const float*>(b),
                                    static_cast<float*>(out), n);
  HKT_CUDA_CHECK(cudaGetLastError());
  HKT_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace hkt::cuda
