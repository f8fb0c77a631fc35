// unary.cpp: neg, exp, log, sqrt, tanh, sigmoid, relu, gelu: forward and backward.
//
// Each backward is one elementwise map over (upstream gradient g, saved value), so
// backward is not itself recorded (the engine does first derivatives only). Where the
// local derivative can be infinite (log at 0, sqrt at 0) a zero g gives a zero
// gradient, not nan (convention 3): `zero_safe` below.
#include <cmath>

#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

namespace {
// g * local, but exactly 0 where g == 0 even if local is inf or nan (convention 3).
template <class T>
T zero_safe(T g, T local) {
  return g == T(0) ? T(0) : g * local;
}

// Records a unary op whose gradient is g (.) dydx(x, y), computed by one map.
template <class Deriv>
void record_unary(Tensor& y, const char* op, const Tensor& x, Deriv dydx) {
  record(y, op, {x}, [op, x = x.detach(), y = y.detach(), dydx](const Tensor& g, const std::vector<bool>&) {
    // Walk (g, x) and look y up at the same index: all three share one shape.
    Tensor gx = Tensor::empty(x.shape(), x.dtype());
    dispatch_floating(x.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      const T *pg = g.data<T>(), *px = x.data<T>(), *py = y.data<T>();
      T* out = gx.data<T>();
      cpu::parallel_for(x.numel(), 1, [&](std::int64_t i) { out[i] = zero_safe(pg[i], static_cast<T>(dydx(px[i], py[i]))); });
    });
    return Grads{gx};
  });
}
}  // namespace

Tensor neg(const Tensor& x) {
  Tensor y = cpu::map_unary("neg", x, [](auto v) { return -v; });
  record_unary(y, "neg", x, [](auto, auto) { return -1.0; });
  return y;
}

Tensor exp(const Tensor& x) {
  Tensor y = cpu::map_unary("exp", x, [](auto v) { return std::exp(v); });
  record_unary(y, "exp", x, [](auto, auto yv) { return yv; });  // (e^x)' = e^x
  return y;
}

Tensor log(const Tensor& x) {
  Tensor y = cpu::map_unary("log", x, [](auto v) { return std::log(v); });
  record_unary(y, "log", x, [](auto xv, auto) { return decltype(xv)(1) / xv; });  // (ln x)' = 1/x
  return y;
}

Tensor sqrt(const Tensor& x) {
  Tensor y = cpu::map_unary("sqrt", x, [](auto v) { return std::sqrt(v); });
  record_unary(y, "sqrt", x, [](auto, auto yv) { return decltype(yv)(0.5) / yv; });  // (sqrt x)' = 1/(2 sqrt x)
  return y;
}

Tensor tanh(const Tensor& x) {
  Tensor y = cpu::map_unary("tanh", x, [](auto v) { return std::tanh(v); });
  record_unary(y, "tanh", x, [](auto, auto yv) { return decltype(yv)(1) - yv * yv; });  // 1 - tanh^2
  return y;
}

Tensor sigmoid(const Tensor& x) {
  // Two branches so that exp never overflows: for v < 0, e^v / (1 + e^v).
  Tensor y = cpu::map_unary("sigmoid", x, [](auto v) {
    using T = decltype(v);
    if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
    const T e = std::exp(v);
    return e / (T(1) + e);
  });
  record_unary(y, "sigmoid", x, [](auto, auto yv) { return yv * (decltype(yv)(1) - yv); });  // s (1 - s)
  return y;
}

Tensor relu(const Tensor& x) {
  // v < 0 ? 0 : v keeps NaN as NaN (as PyTorch), so divergence is never hidden.
  Tensor y = cpu::map_unary("relu", x, [](auto v) { return v < decltype(v)(0) ? decltype(v)(0) : v; });
  record_unary(y, "relu", x, [](auto xv, auto) { return xv <= decltype(xv)(0) ? 0.0 : 1.0; });
  return y;
}

namespace {
// GELU constants: 1/sqrt(2), 1/sqrt(2 pi), sqrt(2/pi), and the cubic coefficient.
constexpr double kInvSqrt2 = 0.70710678118654752440, kInvSqrt2Pi = 0.39894228040143267794,
                 kSqrt2OverPi = 0.79788456080286535588, kCubic = 0.044715;
}  // namespace

Tensor gelu(const Tensor& x, GeluApproximation approximation) {
  if (approximation == GeluApproximation::Erf) {
    // y = x Phi(x), Phi(x) = (1 + erf(x/sqrt 2))/2;  y' = Phi(x) + x phi(x), phi = e^(-x^2/2)/sqrt(2 pi)
    Tensor y = cpu::map_unary("gelu", x, [](auto v) {
      using T = decltype(v);
      return T(0.5) * v * (T(1) + std::erf(v * T(kInvSqrt2)));
    });
    record_unary(y, "gelu", x, [](auto v, auto) {
      using T = decltype(v);
      return T(0.5) * (T(1) + std::erf(v * T(kInvSqrt2))) + v * T(kInvSqrt2Pi) * std::exp(T(-0.5) * v * v);
    });
    return y;
  }
  // y = x/2 (1 + tanh u), u = sqrt(2/pi)(x + 0.044715 x^3);
  // y' = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi)(1 + 3 * 0.044715 x^2)
  Tensor y = cpu::map_unary("gelu_tanh", x, [](auto v) {
    using T = decltype(v);
    return T(0.5) * v * (T(1) + std::tanh(T(kSqrt2OverPi) * (v + T(kCubic) * v * v * v)));
  });
  record_unary(y, "gelu_tanh", x, [](auto v, auto) {
    using T = decltype(v);
    const T t = std::tanh(T(kSqrt2OverPi) * (v + T(kCubic) * v * v * v));
    return T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * kCubic) * v * v);
  });
  return y;
}

}  // namespace hkt
