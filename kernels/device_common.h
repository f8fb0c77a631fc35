// device_common.h: what each build of the CUDA backend provides to the code the CUDA and
// EMULATE builds share (device_common.cpp). cuda/device.cu and cuda/gemm.cu define these
// with the CUDA runtime and cuBLAS; emulated/device.cpp and emulated/gemm.cpp with host
// memory and CPU BLAS.
#pragma once

#include <cstdint>

#include "caching_allocator.h"
#include "dtype.h"

namespace hkt::cuda {

/// Uploads of at most this many bytes go through pinned staging memory and do not make
/// the host wait (copy_host_to_device).
inline constexpr std::size_t kStagingBytes = std::size_t{1} << 20;

/// Adds one to host_waits(): called by each build where the host waits for the device.
void count_host_wait();

/// The one caching allocator of device memory (never destroyed: tensors in static
/// storage may free their blocks after main returns).
CachingAllocator& device_allocator();

/// gemm_strided_batched of cuda_backend.h for m, n, k, batch all >= 1 (the shared caller
/// handles the empty cases). `allow_tf32` is the current set_allow_tf32 setting.
void gemm_strided_batched_nonempty(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                                   const void* a, std::int64_t stride_a, const void* b, std::int64_t stride_b, void* c,
                                   std::int64_t stride_c, std::int64_t batch, DType dtype, bool allow_tf32);

}  // namespace hkt::cuda
