// optim.cpp: the dropout mask (Philox, engine/random.h) and the AdamW update
// (kernels/common/adamw_update.h), one element per thread; the formulas are the CPU's.
#include "common/adamw_update.h"
#include "cuda_backend.h"
#include "launch.h"
#include "random.h"

namespace hkt::cuda {

namespace detail {

template <class E>
void dropout_mask_impl(E* mask, std::int64_t n, std::uint64_t seed, std::uint64_t first, double p) {
  const E keep_scale = static_cast<E>(1.0 / (1.0 - p));
  for_each(
      n, HKT_KERNEL(std::int64_t i) {
        const float u = uniform24_at(seed, first, i);  // engine/random.h
        mask[i] = u < p ? E(0) : keep_scale;
      });
}

template <class E>
void adamw_impl(E* p, const E* g, E* m, E* v, std::int64_t n, const fn::AdamWStep<E> c) {
  for_each(
      n, HKT_KERNEL(std::int64_t i) { fn::adamw_update_one(p[i], g[i], m[i], v[i], c); });
}

}  // namespace detail

void dropout_mask(void* mask, std::int64_t n, std::uint64_t seed, std::uint64_t first, double p, DType dtype) {
  dispatch_floating(dtype, "dropout_mask on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::dropout_mask_impl(static_cast<E*>(mask), n, seed, first, p);
  });
}

void adamw_update(void* param, const void* grad, void* m, void* v, std::int64_t n, double beta1, double beta2,
                  double eps, double decay, double step_size, double bc2_sqrt, DType dtype) {
  dispatch_floating(dtype, "adamw_update on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::adamw_impl(static_cast<E*>(param), static_cast<const E*>(grad), static_cast<E*>(m), static_cast<E*>(v), n,
                       fn::adamw_step_constants<E>(beta1, beta2, eps, decay, step_size, bc2_sqrt));
  });
}

}  // namespace hkt::cuda
