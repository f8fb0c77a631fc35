// unary.cpp: neg, exp, log, sqrt, tanh, sigmoid, relu, gelu: forward and backward.
//
// The formulas (value and derivative) are kernels/common/functors.h, shared with the
// CUDA backend. Each backward is one elementwise map over (upstream gradient g, saved
// input x, saved output y), so backward is not itself recorded (the engine does first
// derivatives only). Where the local derivative can be infinite (log at 0, sqrt at 0) a
// zero g gives a zero gradient, not nan (docs/engine.md convention 3): fn::zero_safe.
#include <cmath>

#include "../attention/vector_math.h"
#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

namespace {

// y = op(x) on x's device, recorded with gradient g (.) dydx(x, y).
template <fn::Unary op>
Tensor unary_op(const char* name, const Tensor& x) {
  Tensor y = cpu::map_unary<op>(name, x);
  record(y, name, {x}, [name, x = x.detach(), y = y.detach()](const Tensor& g, const std::vector<bool>&) {
    // Walk (g, x) and look y up at the same index: all three share one shape.
    Tensor gx = Tensor::empty(x.shape(), x.dtype(), x.device());
    dispatch_floating(x.dtype(), name, [&](auto tag) {
      using E = decltype(tag);
      if (cpu::on_cuda(x)) {
        cuda::unary_backward(op, g.raw_data(), x.raw_data(), y.raw_data(), gx.raw_data(), x.numel(), x.dtype());
        return;
      }
      const E *pg = g.data<E>(), *px = x.data<E>(), *py = y.data<E>();
      E* out = gx.data<E>();
      cpu::parallel_for(x.numel(), 1, [&](std::int64_t i) {
        out[i] = fn::zero_safe(pg[i], fn::unary_derivative<op, E>(px[i], py[i]));
      });
    });
    return Grads{gx};
  });
  return y;
}

// GELU, erf form, float32 on the CPU:
//   GELU(x) = x Phi(x),  GELU'(x) = Phi(x) + x phi(x),
//   Phi(x) = erfc(-x / sqrt 2) / 2,  phi(x) = exp(-x^2 / 2) / sqrt(2 pi),
// through the vectorisable fast_erfc and fast_exp (engine/attention/vector_math.h);
// fn::unary's std::erf loops stayed scalar and took 6 % of a training step. Writing Phi
// with erfc also keeps its relative accuracy for negative x, where 1 + erf(x) cancels.
// float64 and CUDA keep fn::unary (kernels/common/functors.h); tests/test_ops_conventions.cpp
// checks this path against a float64 erfc reference.
float gelu_erf_value(float x) { return 0.5f * x * attention::fast_erfc(-x * static_cast<float>(fn::kInvSqrt2)); }
float gelu_erf_derivative(float x) {
  return 0.5f * attention::fast_erfc(-x * static_cast<float>(fn::kInvSqrt2)) +
         x * static_cast<float>(fn::kInvSqrt2Pi) * attention::fast_exp(-0.5f * x * x);
}

// x: a float32 CPU tensor; y = GELU(x), recorded with gradient g (.) GELU'(x).
Tensor gelu_erf_float_cpu(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  const float* px = x.data<float>();
  float* py = y.data<float>();
  cpu::parallel_for(x.numel(), 8, [=](std::int64_t i) { py[i] = gelu_erf_value(px[i]); });
  record(y, "gelu", {x}, [x = x.detach()](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(x.shape(), x.dtype());
    const float *pg = g.data<float>(), *pxx = x.data<float>();
    float* out = gx.data<float>();
    cpu::parallel_for(x.numel(), 8,
                      [=](std::int64_t i) { out[i] = fn::zero_safe(pg[i], gelu_erf_derivative(pxx[i])); });
    return Grads{gx};
  });
  return y;
}

}  // namespace

Tensor neg(const Tensor& x) { return unary_op<fn::Unary::Neg>("neg", x); }
Tensor exp(const Tensor& x) { return unary_op<fn::Unary::Exp>("exp", x); }
Tensor log(const Tensor& x) { return unary_op<fn::Unary::Log>("log", x); }
Tensor sqrt(const Tensor& x) { return unary_op<fn::Unary::Sqrt>("sqrt", x); }
Tensor tanh(const Tensor& x) { return unary_op<fn::Unary::Tanh>("tanh", x); }
Tensor sigmoid(const Tensor& x) { return unary_op<fn::Unary::Sigmoid>("sigmoid", x); }
Tensor relu(const Tensor& x) { return unary_op<fn::Unary::Relu>("relu", x); }

Tensor gelu(const Tensor& x, GeluApproximation approximation) {
  if (approximation == GeluApproximation::Tanh) return unary_op<fn::Unary::GeluTanh>("gelu_tanh", x);
  if (x.defined() && x.dtype() == DType::Float32 && !cpu::on_cuda(x)) return gelu_erf_float_cpu(x);
  return unary_op<fn::Unary::GeluErf>("gelu", x);
}

}  // namespace hkt
