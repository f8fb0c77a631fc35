// softmax.cpp: softmax / log_softmax rows, their backward, and cross entropy. One row
// per thread (rows are at most a few thousand long in this project); the formulas and
// the order of the double-precision row sums are those of engine/ops/softmax.cpp.
#include <cmath>

#include "common/rows.h"
#include "cuda_backend.h"
#include "launch.h"

namespace hkt::cuda {

namespace detail {

template <class T>
void softmax_impl(const T* z, T* y, std::int64_t rows, std::int64_t n, bool as_probabilities) {
  for_each(rows, HKT_KERNEL(std::int64_t r) {
    fn::log_softmax_row(z + r * n, y + r * n, n);  // common/rows.h, as the CPU op
    if (as_probabilities)
      for (std::int64_t j = 0; j < n; ++j) y[r * n + j] = std::exp(y[r * n + j]);  // e^-inf = 0
  });
}

template <class T>
void softmax_backward_impl(const T* y, const T* g, T* gx, std::int64_t rows, std::int64_t n, bool as_probabilities) {
  for_each(rows, HKT_KERNEL(std::int64_t r) {
    const T *yr = y + r * n, *gr = g + r * n;
    T* out = gx + r * n;
    const T neg_inf = -static_cast<T>(HUGE_VAL);
    T acc = 0;  // softmax: sum g p; log_softmax: sum of g over live entries
    for (std::int64_t j = 0; j < n; ++j) {
      if (as_probabilities) acc += gr[j] * yr[j];
      else if (yr[j] != neg_inf) acc += gr[j];
    }
    for (std::int64_t j = 0; j < n; ++j) {
      if (as_probabilities) out[j] = yr[j] == T(0) ? T(0) : yr[j] * (gr[j] - acc);
      else out[j] = yr[j] == neg_inf ? T(0) : gr[j] - std::exp(yr[j]) * acc;
    }
  });
}

template <class T>
void cross_entropy_loss_impl(const T* logp, const std::int64_t* t, T* loss, std::int64_t N, std::int64_t C,
                             std::int64_t ignore_index, double eps, std::int64_t count) {
  // One thread: the loss is one number, summed in row order as on the CPU.
  for_each(1, HKT_KERNEL(std::int64_t) {
    double total = 0.0;
    for (std::int64_t i = 0; i < N; ++i) {
      if (t[i] == ignore_index) continue;
      double row_mean = 0.0;
      if (eps > 0.0) {
        for (std::int64_t c = 0; c < C; ++c) row_mean += static_cast<double>(logp[i * C + c]);
        row_mean /= static_cast<double>(C);
      }
      total -= (1.0 - eps) * static_cast<double>(logp[i * C + t[i]]) + eps * row_mean;
    }
    loss[0] = count > 0 ? static_cast<T>(total / static_cast<double>(count)) : T(0);
  });
}

template <class T>
void cross_entropy_backward_impl(const T* logp, const std::int64_t* t, T* gx, std::int64_t N, std::int64_t C,
                                 std::int64_t ignore_index, double eps, double scale_d) {
  const T scale = static_cast<T>(scale_d);
  for_each(N * C, HKT_KERNEL(std::int64_t i) {
    const std::int64_t row = i / C, c = i % C;
    if (t[row] == ignore_index || scale == T(0)) {  // convention 3: exactly zero
      gx[i] = T(0);
      return;
    }
    const double q = (c == t[row] ? 1.0 - eps : 0.0) + eps / static_cast<double>(C);
    gx[i] = scale * static_cast<T>(std::exp(static_cast<double>(logp[i])) - q);
  });
}

}  // namespace detail

void softmax_rows(const void* z, void* y, std::int64_t rows, std::int64_t n, bool as_probabilities, DType dtype) {
  if (dtype == DType::Float64)
    detail::softmax_impl(static_cast<const double*>(z), static_cast<double*>(y), rows, n, as_probabilities);
  else
    detail::softmax_impl(static_cast<const float*>(z), static_cast<float*>(y), rows, n, as_probabilities);
}

void softmax_backward_rows(const void* y, const void* g, void* gx, std::int64_t rows, std::int64_t n,
                           bool as_probabilities, DType dtype) {
  if (dtype == DType::Float64)
    detail::softmax_backward_impl(static_cast<const double*>(y), static_cast<const double*>(g), static_cast<double*>(gx),
                                  rows, n, as_probabilities);
  else
    detail::softmax_backward_impl(static_cast<const float*>(y), static_cast<const float*>(g), static_cast<float*>(gx),
                                  rows, n, as_probabilities);
}

void cross_entropy_loss(const void* logp, const std::int64_t* targets, void* loss, std::int64_t N, std::int64_t C,
                        std::int64_t ignore_index, double label_smoothing, std::int64_t count, DType dtype) {
  if (dtype == DType::Float64)
    detail::cross_entropy_loss_impl(static_cast<const double*>(logp), targets, static_cast<double*>(loss), N, C,
                                    ignore_index, label_smoothing, count);
  else
    detail::cross_entropy_loss_impl(static_cast<const float*>(logp), targets, static_cast<float*>(loss), N, C,
                                    ignore_index, label_smoothing, count);
}

void cross_entropy_backward(const void* logp, const std::int64_t* targets, void* gx, std::int64_t N, std::int64_t C,
                            std::int64_t ignore_index, double label_smoothing, double scale, DType dtype) {
  if (dtype == DType::Float64)
    detail::cross_entropy_backward_impl(static_cast<const double*>(logp), targets, static_cast<double*>(gx), N, C,
                                        ignore_index, label_smoothing, scale);
  else
    detail::cross_entropy_backward_impl(static_cast<const float*>(logp), targets, static_cast<float*>(gx), N, C,
                                        ignore_index, label_smoothing, scale);
}

}  // namespace hkt::cuda
