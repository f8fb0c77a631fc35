// adamw_update.h: one AdamW step of one element (Loshchilov & Hutter 2019, in PyTorch's
// order of operations), shared by the CPU optimizer (engine/optim/adamw.cpp) and the
// CUDA backend (kernels/backend/optim.cpp), so both apply one formula; they can still
// differ by an ulp where nvcc fuses a multiply and an add into one FMA (its default), as
// the host compiler may not.
#pragma once

#include <cmath>

#include "host_device.h"

namespace hkt::fn {

/// Constants of one step, in E: b1, 1-b1, b2, 1-b2, eps, decay = 1 - lr wd,
/// neg_step = -lr / (1 - beta1^t), bc2 = sqrt(1 - beta2^t).
template <class E>
struct AdamWStep {
  E b1, one_minus_b1, b2, one_minus_b2, eps, decay, neg_step, bc2;
};

template <class E>
AdamWStep<E> adamw_step_constants(double beta1, double beta2, double eps, double decay, double step_size,
                                  double bc2_sqrt) {
  return {static_cast<E>(beta1), static_cast<E>(1 - beta1), static_cast<E>(beta2),      static_cast<E>(1 - beta2),
          static_cast<E>(eps),   static_cast<E>(decay),     static_cast<E>(-step_size), static_cast<E>(bc2_sqrt)};
}

/// Updates p, m, v of one element with gradient g.
template <class E>
HKT_HOST_DEVICE inline void adamw_update_one(E& p, E g, E& m, E& v, const AdamWStep<E>& c) {
  p *= c.decay;                                  // p <- p (1 - lr wd)
  m = m * c.b1 + c.one_minus_b1 * g;             // m <- beta1 m + (1 - beta1) g
  v = v * c.b2 + c.one_minus_b2 * g * g;         // v <- beta2 v + (1 - beta2) g^2
  const E denom = std::sqrt(v) / c.bc2 + c.eps;  // sqrt(v) / sqrt(1 - beta2^t) + eps
  p = p + c.neg_step * m / denom;                // p <- p - lr / (1 - beta1^t) m / denom
}

}  // namespace hkt::fn
