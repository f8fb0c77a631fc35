// check.cuh: every CUDA runtime call goes through HKT_CUDA_CHECK, which throws
// hkt::Error with the file, line, the call and CUDA's error string.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "error.h"

namespace hkt::cuda {

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    throw Error(std::string("CUDA error at ") + file + ":" + std::to_string(line) + ": " + call + ": " +
                cudaGetErrorString(status));
}

}  // namespace hkt::cuda

#define HKT_CUDA_CHECK(call) ::hkt::cuda::check_cuda((call), #call, __FILE__, __LINE__)
