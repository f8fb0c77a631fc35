// cpu_kernels.h: shared building blocks of the ops: argument checks, a parallel loop,
// and elementwise maps with numpy broadcasting that run on the tensor's device (the CPU
// loop here, or the CUDA backend of kernels/cuda_backend.h). Internal to engine/ops/.
#pragma once

#include <omp.h>

#include <string>

#include "../autograd.h"
#include "../tensor.h"
#include "common/functors.h"
#include "cuda_backend.h"

namespace hkt::cpu {

/// Loops below this many elements run on one thread: starting a team costs more.
inline constexpr std::int64_t kParallelGrain = 1 << 15;

/// for i in [0, n): f(i), split over OpenMP threads when n * work_per_item is large.
/// Each i writes only its own outputs, so the result never depends on the thread count.
template <class F>
void parallel_for(std::int64_t n, std::int64_t work_per_item, F&& f) {
#pragma omp parallel for schedule(static) if (n * work_per_item >= kParallelGrain && n > 1)
  for (std::int64_t i = 0; i < n; ++i) f(i);
}

/// Sets OpenBLAS to one thread, once per process (ops/matmul.cpp): the engine splits BLAS
/// work over its own OpenMP threads, each call running in the thread that makes it.
void use_single_threaded_blas();

/// Throws unless x is defined and on the CPU (ops without a CUDA kernel: the fused CPU
/// attention; the CUDA one is kernels/backend/attention_v1.cpp).
void check_cpu(const char* op, const Tensor& x, const char* name = "input");
/// Throws unless x is defined (on either device).
void check_defined(const char* op, const Tensor& x, const char* name = "input");
/// Throws unless a and b have the same dtype and device.
void check_same_kind(const char* op, const Tensor& a, const Tensor& b);
/// Throws unless x is an int64 tensor (indices), on either device.
void check_indices(const char* op, const Tensor& x, const char* name);
/// The values of an int64 tensor on the host (copied from the GPU when needed), for
/// range checks and index lists.
std::vector<std::int64_t> host_indices(const Tensor& x);
/// x itself when on `device`, else a copy there (indices follow their table).
Tensor on_device(const Tensor& x, Device device);

inline bool on_cuda(const Tensor& x) { return x.device() == Device::CUDA; }

/// y[i] = fn::unary<op>(x[i], s) for a floating x, on x's device (shared functors,
/// kernels/common/functors.h).
template <fn::Unary op>
Tensor map_unary(const char* name, const Tensor& x, double s = 0.0) {
  check_defined(name, x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_floating(x.dtype(), name, [&](auto tag) {
    using E = decltype(tag);
    if (on_cuda(x)) {
      cuda::unary(op, x.raw_data(), y.raw_data(), x.numel(), s, x.dtype());
      return;
    }
    const E* px = x.data<E>();
    E* py = y.data<E>();
    parallel_for(x.numel(), 1, [&](std::int64_t i) { py[i] = fn::unary<op, E>(px[i], s); });
  });
  return y;
}

/// Offsets for reading an input of shape `in` broadcast to `out`: the element strides of
/// `in` aligned on the right with `out`, 0 where `in` has size 1 or no dimension.
std::vector<std::int64_t> broadcast_strides(const Shape& in, const Shape& out);

/// The CUDA backend's description of a broadcast of shapes a and b to `out`.
cuda::StridedView broadcast_view(const Shape& a, const Shape& b, const Shape& out);

/// z = fn::binary<op>(a, b, s) elementwise with numpy broadcasting (same dtype and
/// device). On the CPU the output is walked as rows of its last dimension; each row
/// finds its two input offsets once.
template <fn::Binary op>
Tensor map_binary(const char* name, const Tensor& a, const Tensor& b, double s = 0.0) {
  check_defined(name, a, "first input");
  check_defined(name, b, "second input");
  check_same_kind(name, a, b);
  const Shape out_shape = broadcast_shapes(name, a.shape(), b.shape());
  Tensor z = Tensor::empty(out_shape, a.dtype(), a.device());
  dispatch_floating(a.dtype(), name, [&](auto tag) {
    using E = decltype(tag);
    if (on_cuda(a)) {
      cuda::binary(op, a.raw_data(), b.raw_data(), z.raw_data(), broadcast_view(a.shape(), b.shape(), out_shape), s,
                   a.dtype());
      return;
    }
    const E* pa = a.data<E>();
    const E* pb = b.data<E>();
    E* pz = z.data<E>();
    if (a.shape() == b.shape()) {  // the common case: no index arithmetic at all
      parallel_for(z.numel(), 1, [&](std::int64_t i) { pz[i] = fn::binary<op, E>(pa[i], pb[i], s); });
      return;
    }
    const int rank = static_cast<int>(out_shape.size());
    const std::int64_t inner = rank == 0 ? 1 : out_shape[rank - 1];
    const std::int64_t rows = inner == 0 ? 0 : z.numel() / inner;
    const auto sa = broadcast_strides(a.shape(), out_shape), sb = broadcast_strides(b.shape(), out_shape);
    const std::int64_t step_a = rank == 0 ? 0 : sa[rank - 1], step_b = rank == 0 ? 0 : sb[rank - 1];
    parallel_for(rows, inner, [&](std::int64_t row) {
      std::int64_t oa = 0, ob = 0, rest = row;
      for (int d = rank - 2; d >= 0; --d) {  // decompose the row index into coordinates
        const std::int64_t coord = rest % out_shape[d];
        rest /= out_shape[d];
        oa += coord * sa[d];
        ob += coord * sb[d];
      }
      E* out_row = pz + row * inner;
      for (std::int64_t j = 0; j < inner; ++j)
        out_row[j] = fn::binary<op, E>(pa[oa + j * step_a], pb[ob + j * step_b], s);
    });
  });
  return z;
}

/// g * local elementwise (broadcasting), but exactly 0 wherever g == 0, even where
/// local is inf or nan (docs/engine.md convention 3). For backward formulas only (not recorded).
Tensor zero_safe_mul(const Tensor& g, const Tensor& local);
/// g / d elementwise (broadcasting), exactly 0 wherever g == 0 (docs/engine.md convention 3).
Tensor zero_safe_div(const Tensor& g, const Tensor& d);

}  // namespace hkt::cpu
