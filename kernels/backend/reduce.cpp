// reduce.cpp: sum or max along one axis, and the sum of squares of clip_grad_norm.
// One output element per thread; the thread walks its inputs in order, accumulating in
// double, exactly as the CPU (engine/ops/reduce.cpp): same order, same rounding.
#include <cmath>
#include <vector>

#include "cuda_backend.h"
#include "launch.h"

namespace hkt::cuda {

namespace detail {

template <class E>
void reduce_axis_impl(bool is_max, const E* x, E* out, std::int64_t outer, std::int64_t n, std::int64_t inner) {
  for_each(
      outer * inner, HKT_KERNEL(std::int64_t i) {
        const std::int64_t o = i / inner, k = i % inner;
        const E* p = x + o * n * inner + k;
        double acc = is_max ? -HUGE_VAL : 0.0;  // HUGE_VAL is +inf
        for (std::int64_t j = 0; j < n; ++j) {
          const double v = p[j * inner];
          if (!is_max)
            acc += v;
          else if ((v > acc || std::isnan(v)) && !std::isnan(acc))
            acc = v;  // NaN propagates
        }
        out[i] = static_cast<E>(acc);
      });
}

// Stage 1 of sum_of_squares: partial[c] = sum of x^2 over chunk c (in order).
template <class E>
void squares_impl(const E* x, double* partial, std::int64_t n, std::int64_t chunk, std::int64_t chunks) {
  for_each(
      chunks, HKT_KERNEL(std::int64_t c) {
        double s = 0.0;
        const std::int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        for (std::int64_t i = c * chunk; i < end; ++i) {
          const double v = x[i];
          s += v * v;
        }
        partial[c] = s;
      });
}

}  // namespace detail

void reduce_axis(bool is_max, const void* x, void* out, std::int64_t outer, std::int64_t n, std::int64_t inner,
                 DType dtype) {
  dispatch_floating(dtype, "reduce_axis on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::reduce_axis_impl(is_max, static_cast<const E*>(x), static_cast<E*>(out), outer, n, inner);
  });
}

double sum_of_squares(const void* x, std::int64_t n, DType dtype) {
  if (n == 0) return 0.0;
  // Two stages so that a long vector is not summed by one thread: chunks of 4096 in
  // parallel, then the partial sums on the host in chunk order (deterministic).
  constexpr std::int64_t kChunk = 4096;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  void* partial = allocate(chunks * sizeof(double));
  std::vector<double> host(chunks);
  try {
    dispatch_floating(dtype, "sum_of_squares on cuda", [&](auto tag) {
      using E = decltype(tag);
      detail::squares_impl(static_cast<const E*>(x), static_cast<double*>(partial), n, kChunk, chunks);
    });
    copy_device_to_host(host.data(), partial, host.size() * sizeof(double));
  } catch (...) {
    free(partial);
    throw;
  }
  free(partial);
  double total = 0.0;
  for (double s : host) total += s;
  return total;
}

}  // namespace hkt::cuda
