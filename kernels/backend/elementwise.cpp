// elementwise.cpp: fill, dtype conversion, the unary and binary functors (with numpy
// broadcasting), strided copies and repeat_interleave. One output element per thread.
// Compiled as CUDA in the CUDA build and as C++ in the EMULATE build (launch.h).
#include "cuda_backend.h"
#include "launch.h"

namespace hkt::cuda {

namespace detail {

template <class E>
void fill_impl(E* x, std::int64_t n, E value) {
  for_each(
      n, HKT_KERNEL(std::int64_t i) { x[i] = value; });
}

template <class S, class D>
void convert_impl(const S* src, D* dst, std::int64_t n, bool nonzero) {
  for_each(
      n, HKT_KERNEL(std::int64_t i) { dst[i] = nonzero ? (src[i] != S(0) ? D(1) : D(0)) : static_cast<D>(src[i]); });
}

template <fn::Unary op, class E>
void unary_impl(const E* x, E* y, std::int64_t n, double s) {
  for_each(
      n, HKT_KERNEL(std::int64_t i) { y[i] = fn::unary<op, E>(x[i], s); });
}

template <fn::Unary op, class E>
void unary_backward_impl(const E* g, const E* x, const E* y, E* gx, std::int64_t n) {
  for_each(
      n, HKT_KERNEL(std::int64_t i) { gx[i] = fn::zero_safe(g[i], fn::unary_derivative<op, E>(x[i], y[i])); });
}

template <fn::Binary op, class E>
void binary_impl(const E* a, const E* b, E* out, const StridedView& view, double s) {
  std::int64_t n = 1;
  for (int d = 0; d < view.rank; ++d) n *= view.shape[d];
  const StridedView v = view;  // captured by value: the kernel gets its own copy
  for_each(
      n, HKT_KERNEL(std::int64_t i) {
        const E av = a[strided_offset(i, v.rank, v.shape, v.strides_a)];
        const E bv = b[strided_offset(i, v.rank, v.shape, v.strides_b)];
        out[i] = fn::binary<op, E>(av, bv, s);
      });
}

// Moves elements as unsigned integers of their size: copies need no arithmetic.
template <class W>
void strided_copy_impl(const W* src, W* out, const StridedView& view) {
  std::int64_t n = 1;
  for (int d = 0; d < view.rank; ++d) n *= view.shape[d];
  const StridedView v = view;
  for_each(
      n, HKT_KERNEL(std::int64_t i) { out[i] = src[v.offset_a + strided_offset(i, v.rank, v.shape, v.strides_a)]; });
}

template <class W>
void copy_block_impl(const W* src, std::int64_t src_n, std::int64_t src_start, W* dst, std::int64_t dst_n,
                     std::int64_t dst_start, std::int64_t count, std::int64_t outer, std::int64_t inner) {
  for_each(
      outer * count * inner, HKT_KERNEL(std::int64_t i) {
        const std::int64_t k = i % inner, j = (i / inner) % count, o = i / (inner * count);
        dst[(o * dst_n + dst_start + j) * inner + k] = src[(o * src_n + src_start + j) * inner + k];
      });
}

template <class W>
void repeat_impl(const W* x, W* out, std::int64_t outer, std::int64_t n, std::int64_t repeats, std::int64_t inner) {
  for_each(
      outer * n * repeats * inner, HKT_KERNEL(std::int64_t i) {
        const std::int64_t k = i % inner, j = (i / inner) % (n * repeats), o = i / (inner * n * repeats);
        out[i] = x[(o * n + j / repeats) * inner + k];
      });
}

}  // namespace detail

void fill(void* x, std::int64_t n, double value, DType dtype) {
  dispatch_any(dtype, [&](auto tag) {
    using E = decltype(tag);
    detail::fill_impl(static_cast<E*>(x), n, static_cast<E>(value));
  });
}

void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, std::int64_t n, bool nonzero) {
  dispatch_any(src_dtype, [&](auto src_tag) {
    dispatch_any(dst_dtype, [&](auto dst_tag) {
      using S = decltype(src_tag);
      using D = decltype(dst_tag);
      detail::convert_impl(static_cast<const S*>(src), static_cast<D*>(dst), n, nonzero);
    });
  });
}

// The runtime op code picks one template instance (one kernel per op and dtype).
// A list of cases, a few per line: clang-format would reflow it differently on every pass.
// clang-format off
#define HKT_UNARY_CASE(OP, CALL) \
  case fn::Unary::OP: CALL(fn::Unary::OP); break;
#define HKT_ALL_UNARY(CALL)                                                                                     \
  HKT_UNARY_CASE(Neg, CALL) HKT_UNARY_CASE(Exp, CALL) HKT_UNARY_CASE(Log, CALL) HKT_UNARY_CASE(Sqrt, CALL)       \
  HKT_UNARY_CASE(Tanh, CALL) HKT_UNARY_CASE(Sigmoid, CALL) HKT_UNARY_CASE(Relu, CALL)                            \
  HKT_UNARY_CASE(GeluErf, CALL) HKT_UNARY_CASE(GeluTanh, CALL) HKT_UNARY_CASE(AddScalar, CALL)                   \
  HKT_UNARY_CASE(RsubScalar, CALL) HKT_UNARY_CASE(MulScalar, CALL) HKT_UNARY_CASE(DivScalar, CALL)               \
  HKT_UNARY_CASE(RdivScalar, CALL) HKT_UNARY_CASE(Pow, CALL)
// clang-format on

void unary(fn::Unary op, const void* x, void* y, std::int64_t n, double s, DType dtype) {
  dispatch_floating(dtype, "unary on cuda", [&](auto tag) {
    using E = decltype(tag);
#define HKT_CALL(OP) detail::unary_impl<OP, E>(static_cast<const E*>(x), static_cast<E*>(y), n, s)
    switch (op) { HKT_ALL_UNARY(HKT_CALL) }
#undef HKT_CALL
  });
}

void unary_backward(fn::Unary op, const void* g, const void* x, const void* y, void* gx, std::int64_t n, DType dtype) {
  dispatch_floating(dtype, "unary_backward on cuda", [&](auto tag) {
    using E = decltype(tag);
#define HKT_CALL(OP)                                                                                               \
  detail::unary_backward_impl<OP, E>(static_cast<const E*>(g), static_cast<const E*>(x), static_cast<const E*>(y), \
                                     static_cast<E*>(gx), n)
    switch (op) { HKT_ALL_UNARY(HKT_CALL) }
#undef HKT_CALL
  });
}

// A list of cases, a few per line: clang-format would reflow it differently on every pass.
// clang-format off
#define HKT_BINARY_CASE(OP, CALL) \
  case fn::Binary::OP: CALL(fn::Binary::OP); break;
#define HKT_ALL_BINARY(CALL)                                                                                   \
  HKT_BINARY_CASE(Add, CALL) HKT_BINARY_CASE(Sub, CALL) HKT_BINARY_CASE(Mul, CALL) HKT_BINARY_CASE(Div, CALL) \
  HKT_BINARY_CASE(Eq, CALL) HKT_BINARY_CASE(ZeroSafeMul, CALL) HKT_BINARY_CASE(ZeroSafeDiv, CALL)             \
  HKT_BINARY_CASE(IsMax, CALL) HKT_BINARY_CASE(MaskedFill, CALL) HKT_BINARY_CASE(MaskedZero, CALL)
// clang-format on

void binary(fn::Binary op, const void* a, const void* b, void* out, const StridedView& view, double s, DType dtype) {
  dispatch_floating(dtype, "binary on cuda", [&](auto tag) {
    using E = decltype(tag);
#define HKT_CALL(OP) \
  detail::binary_impl<OP, E>(static_cast<const E*>(a), static_cast<const E*>(b), static_cast<E*>(out), view, s)
    switch (op) { HKT_ALL_BINARY(HKT_CALL) }
#undef HKT_CALL
  });
}

void strided_copy(const void* src, void* out, const StridedView& view, std::size_t element_bytes) {
  if (element_bytes == 8)
    detail::strided_copy_impl(static_cast<const std::uint64_t*>(src), static_cast<std::uint64_t*>(out), view);
  else
    detail::strided_copy_impl(static_cast<const std::uint32_t*>(src), static_cast<std::uint32_t*>(out), view);
}

void copy_block(const void* src, std::int64_t src_n, std::int64_t src_start, void* dst, std::int64_t dst_n,
                std::int64_t dst_start, std::int64_t count, std::int64_t outer, std::int64_t inner,
                std::size_t element_bytes) {
  if (element_bytes == 8)
    detail::copy_block_impl(static_cast<const std::uint64_t*>(src), src_n, src_start, static_cast<std::uint64_t*>(dst),
                            dst_n, dst_start, count, outer, inner);
  else
    detail::copy_block_impl(static_cast<const std::uint32_t*>(src), src_n, src_start, static_cast<std::uint32_t*>(dst),
                            dst_n, dst_start, count, outer, inner);
}

void repeat_interleave(const void* x, void* out, std::int64_t outer, std::int64_t n, std::int64_t repeats,
                       std::int64_t inner, std::size_t element_bytes) {
  if (element_bytes == 8)
    detail::repeat_impl(static_cast<const std::uint64_t*>(x), static_cast<std::uint64_t*>(out), outer, n, repeats,
                        inner);
  else
    detail::repeat_impl(static_cast<const std::uint32_t*>(x), static_cast<std::uint32_t*>(out), outer, n, repeats,
                        inner);
}

}  // namespace hkt::cuda
