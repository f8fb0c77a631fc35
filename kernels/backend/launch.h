// launch.h: the simple way the backend runs work: for_each(n, f) calls f(i) for every
// i < n. Compiled by nvcc (the CUDA build) it launches a grid-stride kernel on the
// backend's stream, one thread per output element; compiled by a C++ compiler (the
// EMULATE build) it is an OpenMP loop on the host. Every kernel in kernels/backend/ is
// written as "what output element i is", so the two builds run the same code and the
// emulated build tests everything but the launch itself.
//
// Why one thread per output: each output is then computed by one thread in a fixed
// order (deterministic, no atomics), which is what the consistency harness needs. It is
// not the fastest layout for reductions over long rows. Kernels that need thread blocks
// (shared memory, barriers, warp shuffles), such as the tiled fused attention
// (attention_v1.cpp), are written against block.h instead.
#pragma once

#include <cstdint>

#include "common/host_device.h"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include "cuda/check.cuh"

// A device lambda: [=] captures by value (pointers and sizes), __device__ runs on the GPU.
#define HKT_KERNEL [=] __device__

namespace hkt::cuda {

/// The backend's stream (kernels/cuda/device.cu): all work is queued in order on it.
cudaStream_t stream();

namespace detail {
template <class F>
__global__ void for_each_kernel(std::int64_t n, F f) {
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n; i += step) f(i);
}
}  // namespace detail

/// Calls f(i) for i < n on the GPU (asynchronously, on stream()).
template <class F>
void for_each(std::int64_t n, F f) {
  if (n <= 0) return;
  constexpr int kThreads = 256;
  // At most 65535 * 8 blocks: the grid-stride loop covers the rest; more blocks than
  // that only add scheduling work (the H200 has 132 SMs of 2048 threads).
  const std::int64_t wanted = (n + kThreads - 1) / kThreads;
  const unsigned blocks = static_cast<unsigned>(wanted < 65535 * 8 ? wanted : 65535 * 8);
  detail::for_each_kernel<<<blocks, kThreads, 0, stream()>>>(n, f);
  HKT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hkt::cuda

#else  // the EMULATE build: a host loop

#define HKT_KERNEL [=]

namespace hkt::cuda {

/// Calls f(i) for i < n on the host, split over OpenMP threads (each i writes only its
/// own outputs, as on the GPU, so the thread count changes nothing).
template <class F>
void for_each(std::int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n >= 4096)
  for (std::int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace hkt::cuda

#endif

namespace hkt::cuda::detail {

/// Element offset of output element i in an input with `strides` (0 where broadcast).
HKT_HOST_DEVICE inline std::int64_t strided_offset(std::int64_t i, int rank, const std::int64_t* shape,
                                                   const std::int64_t* strides) {
  std::int64_t offset = 0;
  for (int d = rank - 1; d >= 0; --d) {  // peel coordinates off from the last axis
    offset += (i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return offset;
}

}  // namespace hkt::cuda::detail
