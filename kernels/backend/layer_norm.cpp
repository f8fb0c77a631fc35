// layer_norm.cpp: layer norm rows (one row per thread) and the column sums of its
// weight and bias gradients (one column per thread, rows in order). The forward and
// backward rows are kernels/common/rows.h, shared with engine/ops/layer_norm.cpp
// (Ba et al. 2016).
#include <cmath>

#include "common/rows.h"
#include "cuda_backend.h"
#include "launch.h"

namespace hkt::cuda {

namespace detail {

template <class E>
void layer_norm_forward_impl(const E* x, const E* w, const E* b, E* y, E* xhat, E* rstd, std::int64_t N, std::int64_t D,
                             double eps) {
  for_each(
      N, HKT_KERNEL(std::int64_t r) {
        rstd[r] = fn::layer_norm_row(x + r * D, w, b, y + r * D, xhat + r * D, D, eps);  // common/rows.h
      });
}

template <class E>
void layer_norm_backward_input_impl(const E* g, const E* xhat, const E* rstd, const E* w, E* dx, std::int64_t N,
                                    std::int64_t D) {
  for_each(
      N, HKT_KERNEL(std::int64_t r) {
        fn::layer_norm_backward_row(g + r * D, xhat + r * D, w, rstd[r], dx + r * D, D);  // common/rows.h
      });
}

template <class E>
void column_sums_impl(const E* g, const E* xhat, E* out, std::int64_t N, std::int64_t D) {
  for_each(
      D, HKT_KERNEL(std::int64_t j) {
        double s = 0;  // N terms: summed in double whatever E is, as on the CPU
        for (std::int64_t r = 0; r < N; ++r) s += g[r * D + j] * (xhat ? xhat[r * D + j] : 1.0);
        out[j] = static_cast<E>(s);
      });
}

}  // namespace detail

void layer_norm_forward(const void* x, const void* w, const void* b, void* y, void* xhat, void* rstd, std::int64_t N,
                        std::int64_t D, double eps, DType dtype) {
  dispatch_floating(dtype, "layer_norm_forward on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::layer_norm_forward_impl(static_cast<const E*>(x), static_cast<const E*>(w), static_cast<const E*>(b),
                                    static_cast<E*>(y), static_cast<E*>(xhat), static_cast<E*>(rstd), N, D, eps);
  });
}

void layer_norm_backward_input(const void* g, const void* xhat, const void* rstd, const void* w, void* dx,
                               std::int64_t N, std::int64_t D, DType dtype) {
  dispatch_floating(dtype, "layer_norm_backward_input on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::layer_norm_backward_input_impl(static_cast<const E*>(g), static_cast<const E*>(xhat),
                                           static_cast<const E*>(rstd), static_cast<const E*>(w), static_cast<E*>(dx),
                                           N, D);
  });
}

void column_sums(const void* g, const void* xhat, void* out, std::int64_t N, std::int64_t D, DType dtype) {
  dispatch_floating(dtype, "column_sums on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::column_sums_impl(static_cast<const E*>(g), static_cast<const E*>(xhat), static_cast<E*>(out), N, D);
  });
}

}  // namespace hkt::cuda
