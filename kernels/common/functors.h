// functors.h: the scalar formulas of the elementwise ops, shared by the CPU ops
// (engine/ops/unary.cpp, scalar.cpp, binary.cpp, masking.cpp, reduce.cpp) and the CUDA
// backend (kernels/backend/elementwise.cpp). One source per formula, so the two devices
// can only differ by rounding in the math library, never by a formula.
//
// Each op is an enum value; unary<Op>(v, s) and binary<Op>(a, b, s) are templates on it
// (if constexpr), so a CPU loop over one op compiles to that op alone. `s` is the op's
// scalar argument (the number of add_scalar, the exponent of pow, the fill value of
// masked_fill) and is ignored by ops without one. E is float or double.
#pragma once

#include <cmath>

#include "host_device.h"

namespace hkt::fn {

enum class Unary {
  Neg,
  Exp,
  Log,
  Sqrt,
  Tanh,
  Sigmoid,
  Relu,
  GeluErf,
  GeluTanh,  // the unary ops of ops.h
  AddScalar,
  RsubScalar,
  MulScalar,
  DivScalar,
  RdivScalar,
  Pow,  // x (op) s, s (op) x
};

enum class Binary {
  Add,
  Sub,
  Mul,
  Div,  // a (op) b
  Eq,   // 1 where a == b, else 0
  ZeroSafeMul,
  ZeroSafeDiv,  // a * b and a / b, exactly 0 where a == 0 (docs/engine.md convention 3)
  IsMax,        // 1 where a == b or both are NaN (max backward), else 0
  MaskedFill,   // b != 0 ? s : a
  MaskedZero,   // b != 0 ? 0 : a (masked_fill backward)
};

// GELU constants: 1/sqrt(2), 1/sqrt(2 pi), sqrt(2/pi), and the cubic coefficient
// (Hendrycks & Gimpel 2016; PyTorch's approximate="tanh" uses the same numbers).
inline constexpr double kInvSqrt2 = 0.70710678118654752440, kInvSqrt2Pi = 0.39894228040143267794,
                        kSqrt2OverPi = 0.79788456080286535588, kGeluCubic = 0.044715;

/// y = op(v) (or v op s). IEEE semantics: log 0 = -inf, s/0 = inf, relu keeps NaN.
template <Unary op, class E>
HKT_HOST_DEVICE inline E unary(E v, double s) {
  (void)s;  // used by the scalar ops only
  if constexpr (op == Unary::Neg)
    return -v;
  else if constexpr (op == Unary::Exp)
    return std::exp(v);
  else if constexpr (op == Unary::Log)
    return std::log(v);
  else if constexpr (op == Unary::Sqrt)
    return std::sqrt(v);
  else if constexpr (op == Unary::Tanh)
    return std::tanh(v);
  else if constexpr (op == Unary::Sigmoid) {  // two branches so that exp never overflows
    if (v >= E(0)) return E(1) / (E(1) + std::exp(-v));
    const E e = std::exp(v);
    return e / (E(1) + e);
  } else if constexpr (op == Unary::Relu)
    return v < E(0) ? E(0) : v;  // NaN stays NaN (as PyTorch)
  else if constexpr (op == Unary::GeluErf)
    return E(0.5) * v * (E(1) + std::erf(v * E(kInvSqrt2)));  // x Phi(x)
  else if constexpr (op == Unary::GeluTanh)
    return E(0.5) * v * (E(1) + std::tanh(E(kSqrt2OverPi) * (v + E(kGeluCubic) * v * v * v)));
  else if constexpr (op == Unary::AddScalar)
    return v + static_cast<E>(s);
  else if constexpr (op == Unary::RsubScalar)
    return static_cast<E>(s) - v;
  else if constexpr (op == Unary::MulScalar)
    return v * static_cast<E>(s);
  else if constexpr (op == Unary::DivScalar)
    return v / static_cast<E>(s);
  else if constexpr (op == Unary::RdivScalar)
    return static_cast<E>(s) / v;
  else if constexpr (op == Unary::Pow)
    return std::pow(v, static_cast<E>(s));
  else
    return v;  // (no op is left: every enum value is handled above)
}

/// dy/dx of the unary ops Neg..GeluTanh at input x with output y (whichever is cheaper).
template <Unary op, class E>
HKT_HOST_DEVICE inline E unary_derivative(E x, E y) {
  (void)x;  // each derivative uses x, y or neither
  (void)y;
  if constexpr (op == Unary::Neg)
    return E(-1);
  else if constexpr (op == Unary::Exp)
    return y;  // (e^x)' = e^x
  else if constexpr (op == Unary::Log)
    return E(1) / x;  // (ln x)' = 1/x
  else if constexpr (op == Unary::Sqrt)
    return E(0.5) / y;  // 1 / (2 sqrt x)
  else if constexpr (op == Unary::Tanh)
    return E(1) - y * y;  // 1 - tanh^2
  else if constexpr (op == Unary::Sigmoid)
    return y * (E(1) - y);  // s (1 - s)
  else if constexpr (op == Unary::Relu)
    return x <= E(0) ? E(0) : E(1);         // 0 at x = 0 (PyTorch)
  else if constexpr (op == Unary::GeluErf)  // Phi(x) + x phi(x)
    return E(0.5) * (E(1) + std::erf(x * E(kInvSqrt2))) + x * E(kInvSqrt2Pi) * std::exp(E(-0.5) * x * x);
  else if constexpr (op == Unary::GeluTanh) {  // (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3c x^2)
    const E t = std::tanh(E(kSqrt2OverPi) * (x + E(kGeluCubic) * x * x * x));
    return E(0.5) * (E(1) + t) + E(0.5) * x * (E(1) - t * t) * E(kSqrt2OverPi) * (E(1) + E(3 * kGeluCubic) * x * x);
  } else
    return E(0);  // the scalar ops record their backward with other ops
}

/// g * local, but exactly 0 where g == 0 even if local is inf or NaN (docs/engine.md convention 3).
template <class E>
HKT_HOST_DEVICE inline E zero_safe(E g, E local) {
  return g == E(0) ? E(0) : g * local;
}

/// z = a (op) b.
template <Binary op, class E>
HKT_HOST_DEVICE inline E binary(E a, E b, double s) {
  (void)s;  // used by masked_fill only
  if constexpr (op == Binary::Add)
    return a + b;
  else if constexpr (op == Binary::Sub)
    return a - b;
  else if constexpr (op == Binary::Mul)
    return a * b;
  else if constexpr (op == Binary::Div)
    return a / b;
  else if constexpr (op == Binary::Eq)
    return a == b ? E(1) : E(0);
  else if constexpr (op == Binary::ZeroSafeMul)
    return a == E(0) ? a * E(0) : a * b;
  else if constexpr (op == Binary::ZeroSafeDiv)
    return a == E(0) ? a * E(0) : a / b;
  else if constexpr (op == Binary::IsMax)
    return a == b || (std::isnan(a) && std::isnan(b)) ? E(1) : E(0);
  else if constexpr (op == Binary::MaskedFill)
    return b != E(0) ? static_cast<E>(s) : a;
  else if constexpr (op == Binary::MaskedZero)
    return b != E(0) ? E(0) : a;
  else
    return a;  // (no op is left)
}

}  // namespace hkt::fn
