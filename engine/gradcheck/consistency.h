// consistency.h: the CUDA consistency harness. Every op, forward and backward, run on
// the CUDA backend and on the CPU from the same inputs, compared element by element.
//
// The cases are the registry's (cases.cpp: every differentiable op at several shapes,
// odd sizes and size 1 included, plus larger shapes that use many GPU threads). For each
// case and dtype:
//   forward:  y_cuda vs y_cpu;   backward, for a random upstream g (the same on both):
//   every input gradient, cuda vs cpu.
// The error of a tensor is max |cuda - cpu| / max(max |cpu|, 1 % of the case output's
// max |cpu|) (scaled by the tensor's magnitude; the floor keeps a gradient that is zero
// in exact arithmetic from being divided by its rounding noise; 0 when both agree
// exactly); it must be at most the case's bound (per dtype, per op: bound_for). Any NaN fails, and so does a mismatch
// of infinities. All device memory of the case is allocated in guard mode (kernels/caching_allocator.h), so a kernel
// that writes outside its output fails the case.
#pragma once

#include <string>
#include <vector>

#include "../tensor.h"

namespace hkt::gradcheck {

struct ConsistencyResult {
  std::string op, shape;
  DType dtype = DType::Float64;
  double forward_err = 0.0;   ///< scaled max error of the output
  double backward_err = 0.0;  ///< the largest scaled max error over the input gradients
  double bound = 0.0;         ///< the bound both errors must meet
  bool passed = false;
  bool skipped = false;  ///< an op with no CUDA kernel (none at present)
  std::string note;      ///< why it failed or was skipped
};

/// The error bound of `op` in `dtype`, from its OpInfo's Summation (cases.cpp):
/// Exact float64 1e-12, float32 1e-5 (both devices round each operation correctly, nvcc
/// may fuse multiply-adds); FloatSums float64 1e-11, float32 2e-5 (layer_norm,
/// causal_conv1d, embedding, gather, the softmax family); Reordered float64 1e-11,
/// float32 5e-5 (matmul through cuBLAS against BLAS, linear, the attention ops). Throws
/// hkt::Error for an op without an OpInfo.
double bound_for(const std::string& op, DType dtype);

/// Runs the cases of `op` (every case when empty) in `dtype` on the CUDA backend
/// against the CPU. Throws hkt::Error when no CUDA device can be used (naming why), or
/// when `op` matches no case (naming the known ops).
std::vector<ConsistencyResult> run_consistency(const std::string& op, DType dtype);

}  // namespace hkt::gradcheck
