// softmax.cpp: softmax / log_softmax rows, their backward, and cross entropy. One warp
// per row (warp_rows.h), through the row functions of kernels/common/rows.h that
// engine/ops/softmax.cpp calls too; the loss, one number over all rows, is one thread
// block's sum (block_reduce.h).
#include <cmath>

#include "block_reduce.h"
#include "common/rows.h"
#include "cuda_backend.h"
#include "launch.h"
#include "warp_rows.h"

namespace hkt::cuda {

namespace detail {

template <class E>
void softmax_impl(const E* z, E* y, std::int64_t rows, std::int64_t n, bool as_probabilities) {
  for_each_row(
      "softmax_rows", rows, HKT_KERNEL(std::int64_t r, const WarpTeam& team) {
        if (as_probabilities)
          fn::softmax_row(z + r * n, y + r * n, n, team);
        else
          fn::log_softmax_row(z + r * n, y + r * n, n, team);
      });
}

template <class E>
void softmax_backward_impl(const E* y, const E* g, E* gx, std::int64_t rows, std::int64_t n, bool as_probabilities) {
  for_each_row(
      "softmax_backward_rows", rows, HKT_KERNEL(std::int64_t r, const WarpTeam& team) {
        if (as_probabilities)
          fn::softmax_backward_row(y + r * n, g + r * n, gx + r * n, n, team);
        else
          fn::log_softmax_backward_row(y + r * n, g + r * n, gx + r * n, n, team);
      });
}

// The mean loss over the counted rows, by one block: thread j sums rows j, j + kThreads,
// ... in order (in double), then block_sum adds the threads' sums in its fixed tree. The
// order differs from the CPU's row order (the values agree to double rounding), and is
// the same on every run.
template <class E>
struct CrossEntropyLoss {
  static constexpr unsigned kThreads = 256;
  const E* logp;          // [N, C] log-probabilities
  const std::int64_t* t;  // [N] targets
  E* loss;                // [1]
  std::int64_t N, C, ignore_index;
  double eps;          // label smoothing
  std::int64_t count;  // rows not ignored (the mean's divisor)
  HKT_DEVICE void operator()() const {
    HKT_SHARED(double, scratch, kThreads);
    double s = 0.0;
    for (std::int64_t i = dev::thread_index(); i < N; i += kThreads)
      if (t[i] != ignore_index) s += fn::cross_entropy_row(logp + i * C, C, t[i], eps);
    const double total = block_sum<kThreads>(s, scratch);
    if (dev::thread_index() == 0) loss[0] = count > 0 ? static_cast<E>(total / static_cast<double>(count)) : E(0);
  }
};

template <class E>
void cross_entropy_loss_impl(const E* logp, const std::int64_t* t, E* loss, std::int64_t N, std::int64_t C,
                             std::int64_t ignore_index, double eps, std::int64_t count) {
  launch_blocks("cross_entropy_loss", Grid{}, 0, CrossEntropyLoss<E>{logp, t, loss, N, C, ignore_index, eps, count});
}

// scale = upstream / count, rounded to E as the CPU's op rounds it (its g.item() is the
// same element, widened to double).
template <class E>
void cross_entropy_backward_impl(const E* logp, const std::int64_t* t, E* gx, std::int64_t N, std::int64_t C,
                                 std::int64_t ignore_index, double eps, const E* upstream, std::int64_t count) {
  for_each(
      N * C, HKT_KERNEL(std::int64_t i) {
        const E scale = static_cast<E>(static_cast<double>(upstream[0]) / static_cast<double>(count));
        const std::int64_t row = i / C, c = i % C;
        if (t[row] == ignore_index || scale == E(0)) {  // docs/engine.md conventions 3 and 4: exactly zero
          gx[i] = E(0);
          return;
        }
        gx[i] = fn::cross_entropy_grad(logp[i], c, C, t[row], eps, scale);
      });
}

}  // namespace detail

void softmax_rows(const void* z, void* y, std::int64_t rows, std::int64_t n, bool as_probabilities, DType dtype) {
  dispatch_floating(dtype, "softmax_rows on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::softmax_impl(static_cast<const E*>(z), static_cast<E*>(y), rows, n, as_probabilities);
  });
}

void softmax_backward_rows(const void* y, const void* g, void* gx, std::int64_t rows, std::int64_t n,
                           bool as_probabilities, DType dtype) {
  dispatch_floating(dtype, "softmax_backward_rows on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::softmax_backward_impl(static_cast<const E*>(y), static_cast<const E*>(g), static_cast<E*>(gx), rows, n,
                                  as_probabilities);
  });
}

void cross_entropy_loss(const void* logp, const std::int64_t* targets, void* loss, std::int64_t N, std::int64_t C,
                        std::int64_t ignore_index, double label_smoothing, std::int64_t count, DType dtype) {
  dispatch_floating(dtype, "cross_entropy_loss on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::cross_entropy_loss_impl(static_cast<const E*>(logp), targets, static_cast<E*>(loss), N, C, ignore_index,
                                    label_smoothing, count);
  });
}

void cross_entropy_backward(const void* logp, const std::int64_t* targets, void* gx, std::int64_t N, std::int64_t C,
                            std::int64_t ignore_index, double label_smoothing, const void* upstream, std::int64_t count,
                            DType dtype) {
  dispatch_floating(dtype, "cross_entropy_backward on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::cross_entropy_backward_impl(static_cast<const E*>(logp), targets, static_cast<E*>(gx), N, C, ignore_index,
                                        label_smoothing, static_cast<const E*>(upstream), count);
  });
}

}  // namespace hkt::cuda
