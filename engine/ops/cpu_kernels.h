// cpu_kernels.h: shared building blocks of the CPU ops: argument checks, a parallel
// loop, and elementwise maps with numpy broadcasting. Internal to engine/ops/.
#pragma once

#include <omp.h>

#include <string>

#include "../autograd.h"
#include "../tensor.h"

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

/// Throws unless x is defined and on the CPU (the CUDA backend adds its own kernels).
void check_cpu(const char* op, const Tensor& x, const char* name = "input");
/// Throws unless a and b have the same dtype and device.
void check_same_kind(const char* op, const Tensor& a, const Tensor& b);
/// Throws unless x is an int64 tensor (indices).
void check_indices(const char* op, const Tensor& x, const char* name);

/// y[i] = f(x[i]) for a floating x; f is a generic lambda called with T.
template <class F>
Tensor map_unary(const char* op, const Tensor& x, F f) {
  check_cpu(op, x);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_for(x.numel(), 1, [&](std::int64_t i) { py[i] = f(px[i]); });
  });
  return y;
}

/// Offsets for reading an input of shape `in` broadcast to `out`: the element strides of
/// `in` aligned on the right with `out`, 0 where `in` has size 1 or no dimension.
std::vector<std::int64_t> broadcast_strides(const Shape& in, const Shape& out);

/// z = f(a, b) elementwise with numpy broadcasting (same dtype). The output is walked as
/// rows of its last dimension; each row finds its two input offsets once.
template <class F>
Tensor map_binary(const char* op, const Tensor& a, const Tensor& b, F f) {
  check_cpu(op, a, "first input");
  check_cpu(op, b, "second input");
  check_same_kind(op, a, b);
  const Shape out_shape = broadcast_shapes(op, a.shape(), b.shape());
  Tensor z = Tensor::empty(out_shape, a.dtype());
  dispatch_floating(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pz = z.data<T>();
    if (a.shape() == b.shape()) {  // the common case: no index arithmetic at all
      parallel_for(z.numel(), 1, [&](std::int64_t i) { pz[i] = f(pa[i], pb[i]); });
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
      T* out_row = pz + row * inner;
      for (std::int64_t j = 0; j < inner; ++j) out_row[j] = f(pa[oa + j * step_a], pb[ob + j * step_b]);
    });
  });
  return z;
}

/// g * local elementwise (broadcasting), but exactly 0 wherever g == 0, even where
/// local is inf or nan (convention 3). For backward formulas only (not recorded).
Tensor zero_safe_mul(const Tensor& g, const Tensor& local);
/// g / d elementwise (broadcasting), exactly 0 wherever g == 0 (convention 3).
Tensor zero_safe_div(const Tensor& g, const Tensor& d);

}  // namespace hkt::cpu
