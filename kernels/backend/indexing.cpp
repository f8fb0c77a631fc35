// indexing.cpp: embedding and gather, forward and deterministic backward (each output
// element has one thread that adds its terms in increasing position: no atomics).
#include "cuda_backend.h"
#include "launch.h"

namespace hkt::cuda {

namespace detail {

template <class E>
void embedding_forward_impl(const E* w, const std::int64_t* idx, E* y, std::int64_t N, std::int64_t D) {
  for_each(
      N * D, HKT_KERNEL(std::int64_t i) { y[i] = w[idx[i / D] * D + i % D]; });
}

template <class E>
void embedding_backward_impl(const E* g, const std::int64_t* row_start, const std::int64_t* rows_of, E* dw,
                             std::int64_t V, std::int64_t D) {
  for_each(
      V * D, HKT_KERNEL(std::int64_t i) {
        const std::int64_t v = i / D, j = i % D;
        double s = 0;  // summed in double whatever E is, as on the CPU
        for (std::int64_t p = row_start[v]; p < row_start[v + 1]; ++p) s += g[rows_of[p] * D + j];
        dw[i] = static_cast<E>(s);
      });
}

template <class E>
void gather_forward_impl(const E* x, const std::int64_t* index, E* y, std::int64_t outer, std::int64_t n_x,
                         std::int64_t n_i, std::int64_t inner) {
  for_each(
      outer * n_i * inner, HKT_KERNEL(std::int64_t at) {
        const std::int64_t k = at % inner, o = at / (n_i * inner);
        y[at] = x[(o * n_x + index[at]) * inner + k];
      });
}

template <class E>
void gather_backward_impl(const E* g, const std::int64_t* index, E* dx, std::int64_t outer, std::int64_t n_x,
                          std::int64_t n_i, std::int64_t inner) {
  // Thread per dx element: scans the n_i candidates of its (o, k) column, O(n_i) each.
  for_each(
      outer * n_x * inner, HKT_KERNEL(std::int64_t at) {
        const std::int64_t k = at % inner, p = (at / inner) % n_x, o = at / (n_x * inner);
        E s = 0;
        for (std::int64_t i = 0; i < n_i; ++i) {
          const std::int64_t src = (o * n_i + i) * inner + k;
          if (index[src] == p) s += g[src];
        }
        dx[at] = s;
      });
}

}  // namespace detail

void embedding_forward(const void* weight, const std::int64_t* indices, void* y, std::int64_t N, std::int64_t D,
                       DType dtype) {
  dispatch_floating(dtype, "embedding_forward on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::embedding_forward_impl(static_cast<const E*>(weight), indices, static_cast<E*>(y), N, D);
  });
}

void embedding_backward(const void* g, const std::int64_t* row_start, const std::int64_t* rows_of, void* dw,
                        std::int64_t V, std::int64_t D, DType dtype) {
  dispatch_floating(dtype, "embedding_backward on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::embedding_backward_impl(static_cast<const E*>(g), row_start, rows_of, static_cast<E*>(dw), V, D);
  });
}

void gather_forward(const void* x, const std::int64_t* index, void* y, std::int64_t outer, std::int64_t n_x,
                    std::int64_t n_i, std::int64_t inner, DType dtype) {
  dispatch_floating(dtype, "gather_forward on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::gather_forward_impl(static_cast<const E*>(x), index, static_cast<E*>(y), outer, n_x, n_i, inner);
  });
}

void gather_backward(const void* g, const std::int64_t* index, void* dx, std::int64_t outer, std::int64_t n_x,
                     std::int64_t n_i, std::int64_t inner, DType dtype) {
  dispatch_floating(dtype, "gather_backward on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::gather_backward_impl(static_cast<const E*>(g), index, static_cast<E*>(dx), outer, n_x, n_i, inner);
  });
}

}  // namespace hkt::cuda
