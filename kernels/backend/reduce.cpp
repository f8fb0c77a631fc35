// reduce.cpp: sum or max along one axis (one output element per thread, walking its
// inputs in order in double, exactly as the CPU, engine/ops/reduce.cpp: same order, same
// rounding), and the global sum of squares of clip_grad_norm (thread blocks, block_sum).
#include <cmath>
#include <vector>

#include "block_reduce.h"
#include "cuda_backend.h"
#include "launch.h"
#include "scratch.h"

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

// Stage 1 of sum_of_squares: block c of one array sums x^2 over its chunk of kChunk
// elements (thread t: elements t, t + 256, ... of the chunk, in double, so that a warp
// reads neighbouring addresses), then block_sum; partial[c] = the chunk's sum.
template <class E>
struct SquaresOfChunks {
  static constexpr unsigned kThreads = 256;
  static constexpr std::int64_t kChunk = 4096;
  const E* x;
  double* partial;
  std::int64_t n;
  HKT_DEVICE void operator()() const {
    HKT_SHARED(double, scratch, kThreads);
    const std::int64_t begin = static_cast<std::int64_t>(dev::block_x()) * kChunk;
    const std::int64_t end = begin + kChunk < n ? begin + kChunk : n;
    double s = 0.0;
    for (std::int64_t i = begin + dev::thread_index(); i < end; i += kThreads) {
      const double v = x[i];
      s += v * v;
    }
    const double total = block_sum<kThreads>(s, scratch);
    if (dev::thread_index() == 0) partial[dev::block_x()] = total;
  }
};

// Stage 2: one block adds the `count` partial sums (thread t: t, t + 256, ... in order,
// then block_sum) into total[0].
struct SumOfPartials {
  static constexpr unsigned kThreads = 256;
  const double* partial;
  double* total;
  std::int64_t count;
  HKT_DEVICE void operator()() const {
    HKT_SHARED(double, scratch, kThreads);
    double s = 0.0;
    for (std::int64_t i = dev::thread_index(); i < count; i += kThreads) s += partial[i];
    const double sum = block_sum<kThreads>(s, scratch);
    if (dev::thread_index() == 0) total[0] = sum;
  }
};

// g[i] *= coef: engine/optim/clip.cpp's formula, with the norm read from the device.
template <class E>
void clip_scale_impl(E* g, std::int64_t n, const double* sum_of_squares, double max_norm) {
  for_each(
      n, HKT_KERNEL(std::int64_t i) {
        const double norm = std::sqrt(*sum_of_squares);
        const double coef = max_norm / (norm + 1e-6);
        if (std::isfinite(norm) && coef < 1.0) g[i] *= static_cast<E>(coef);
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

void sum_of_squares_into(const std::vector<DeviceArray>& arrays, double* total) {
  constexpr std::int64_t kChunk = detail::SquaresOfChunks<float>::kChunk;
  std::int64_t chunks = 0;  // over every array: the partial sums' count
  for (const auto& a : arrays) chunks += (a.n + kChunk - 1) / kChunk;
  if (chunks == 0) return fill(total, 1, 0.0, DType::Float64);
  const Scratch scratch(static_cast<std::size_t>(chunks) * sizeof(double));
  auto* partial = static_cast<double*>(scratch.ptr);
  std::int64_t offset = 0;
  for (const auto& a : arrays) {
    if (a.n <= 0) continue;
    const std::int64_t c = (a.n + kChunk - 1) / kChunk;
    dispatch_floating(a.dtype, "sum_of_squares on cuda", [&](auto tag) {
      using E = decltype(tag);
      launch_blocks("sum_of_squares", Grid{static_cast<unsigned>(c)}, 0,
                    detail::SquaresOfChunks<E>{static_cast<const E*>(a.data), partial + offset, a.n});
    });
    offset += c;
  }
  launch_blocks("sum_of_squares", Grid{}, 0, detail::SumOfPartials{partial, total, chunks});
}

double sum_of_squares(const std::vector<DeviceArray>& arrays) {
  const Scratch result(sizeof(double));
  sum_of_squares_into(arrays, static_cast<double*>(result.ptr));
  double total = 0.0;
  copy_device_to_host(&total, result.ptr, sizeof(double));
  return total;
}

void clip_scale(void* g, std::int64_t n, const double* sum_of_squares, double max_norm, DType dtype) {
  dispatch_floating(dtype, "clip_grad_norm on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::clip_scale_impl(static_cast<E*>(g), n, sum_of_squares, max_norm);
  });
}

}  // namespace hkt::cuda
