// layer_norm.cpp: layer norm rows, one warp per row (warp_rows.h), and the column sums
// of its weight and bias gradients (two passes of fixed-order block sums). The forward
// and backward rows are kernels/common/rows.h, shared with engine/ops/layer_norm.cpp
// (Ba et al. 2016).
#include <cmath>

#include "block.h"
#include "common/rows.h"
#include "cuda_backend.h"
#include "launch.h"
#include "scratch.h"
#include "warp_rows.h"

namespace hkt::cuda {

namespace detail {

template <class E>
void layer_norm_forward_impl(const E* x, const E* w, const E* b, E* y, E* xhat, E* rstd, std::int64_t N, std::int64_t D,
                             double eps) {
  for_each_row(
      "layer_norm_forward", N, HKT_KERNEL(std::int64_t r, const WarpTeam& team) {
        const E rs = fn::layer_norm_row(x + r * D, w, b, y + r * D, xhat + r * D, D, eps, team);  // common/rows.h
        if (team.lane == 0) rstd[r] = rs;
      });
}

template <class E>
void layer_norm_backward_input_impl(const E* g, const E* xhat, const E* rstd, const E* w, E* dx, std::int64_t N,
                                    std::int64_t D) {
  for_each_row(
      "layer_norm_backward_input", N, HKT_KERNEL(std::int64_t r, const WarpTeam& team) {
        fn::layer_norm_backward_row(g + r * D, xhat + r * D, w, rstd[r], dx + r * D, D, team);  // common/rows.h
      });
}

// The column sums in two passes, each a fixed order of additions (no atomics):
//   pass 1, block (bx, by): columns bx * 32 .. bx * 32 + 31 of rows by * chunk_rows ..
//     (by + 1) * chunk_rows - 1. Thread t = slice * 32 + c walks rows slice, slice + 8,
//     ... of the chunk in column bx * 32 + c (a warp reads 32 neighbouring columns of one
//     row), summing in double; the 8 slices are added by a tree of halvings in shared
//     memory; slice 0 writes partial[by, column].
//   pass 2, one thread per column: the chunks' partial sums in chunk order.
// N terms are summed in double whatever E is, as on the CPU (whose order is the rows'
// own; the two agree to double rounding).
template <class E>
struct ColumnSumsPass1 {
  static constexpr unsigned kThreads = 256, kColumns = 32, kSlices = kThreads / kColumns;
  const E* g;
  const E* xhat;    // nullptr: the plain sums of g (dbias)
  double* partial;  // [chunks, D]
  std::int64_t N, D, chunk_rows;
  HKT_DEVICE void operator()() const {
    HKT_SHARED(double, part, kThreads);
    const unsigned t = dev::thread_index(), c = t % kColumns, slice = t / kColumns;
    const std::int64_t col = static_cast<std::int64_t>(dev::block_x()) * kColumns + c;
    const std::int64_t r0 = static_cast<std::int64_t>(dev::block_y()) * chunk_rows;
    const std::int64_t r1 = r0 + chunk_rows < N ? r0 + chunk_rows : N;
    double s = 0;
    if (col < D)
      for (std::int64_t r = r0 + slice; r < r1; r += kSlices)
        s += static_cast<double>(g[r * D + col]) * (xhat ? static_cast<double>(xhat[r * D + col]) : 1.0);
    part[t] = s;
    dev::sync_threads();
    for (unsigned half = kSlices / 2; half >= 1; half /= 2) {
      if (slice < half) part[t] += part[t + half * kColumns];
      dev::sync_threads();
    }
    if (slice == 0 && col < D) partial[static_cast<std::int64_t>(dev::block_y()) * D + col] = part[t];
  }
};

template <class E>
void column_sums_impl(const E* g, const E* xhat, E* out, std::int64_t N, std::int64_t D) {
  if (D <= 0) return;
  if (N <= 0) {  // no rows: every sum is 0
    for_each(
        D, HKT_KERNEL(std::int64_t j) { out[j] = E(0); });
    return;
  }
  using Pass1 = ColumnSumsPass1<E>;
  // 256 rows a chunk, more when N needs over 65535 chunks (gridDim.y's limit). The
  // chunking depends on N alone, so the order of the additions does too.
  constexpr std::int64_t kMaxChunks = 65535;
  const std::int64_t chunk_rows = N > 256 * kMaxChunks ? (N + kMaxChunks - 1) / kMaxChunks : 256;
  const std::int64_t chunks = (N + chunk_rows - 1) / chunk_rows;
  const std::int64_t column_blocks = (D + Pass1::kColumns - 1) / Pass1::kColumns;
  const Scratch scratch(static_cast<std::size_t>(chunks * D) * sizeof(double));
  auto* partial = static_cast<double*>(scratch.ptr);
  launch_blocks("column_sums", Grid{static_cast<unsigned>(column_blocks), static_cast<unsigned>(chunks)}, 0,
                Pass1{g, xhat, partial, N, D, chunk_rows});
  for_each(
      D, HKT_KERNEL(std::int64_t j) {
        double s = 0;
        for (std::int64_t c = 0; c < chunks; ++c) s += partial[c * D + j];
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
