// scalar.cpp: a tensor combined with a number: x+s, x-s, s-x, x*s, x/s, s/x, x^p.
#include <cmath>

#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

Tensor add(const Tensor& x, double s) {
  Tensor y = cpu::map_unary<fn::Unary::AddScalar>("add_scalar", x, s);
  record(y, "add_scalar", {x}, [](const Tensor& g, const std::vector<bool>&) { return Grads{g}; });  // dy/dx = 1
  return y;
}

Tensor sub(const Tensor& x, double s) { return add(x, -s); }

Tensor rsub(const Tensor& x, double s) {
  Tensor y = cpu::map_unary<fn::Unary::RsubScalar>("rsub_scalar", x, s);
  record(y, "rsub_scalar", {x}, [](const Tensor& g, const std::vector<bool>&) { return Grads{neg(g)}; });  // dy/dx = -1
  return y;
}

Tensor mul(const Tensor& x, double s) {
  Tensor y = cpu::map_unary<fn::Unary::MulScalar>("mul_scalar", x, s);
  record(y, "mul_scalar", {x},
         [s](const Tensor& g, const std::vector<bool>&) { return Grads{mul(g, s)}; });  // dy/dx = s
  return y;
}

Tensor div(const Tensor& x, double s) {
  Tensor y = cpu::map_unary<fn::Unary::DivScalar>("div_scalar", x, s);
  record(y, "div_scalar", {x},
         [s](const Tensor& g, const std::vector<bool>&) { return Grads{div(g, s)}; });  // dy/dx = 1/s
  return y;
}

Tensor rdiv(const Tensor& x, double s) {
  Tensor y = cpu::map_unary<fn::Unary::RdivScalar>("rdiv_scalar", x, s);
  // y = s/x, dy/dx = -s/x^2 = -y/x
  record(y, "rdiv_scalar", {x}, [x = x.detach(), y = y.detach()](const Tensor& g, const std::vector<bool>&) {
    return Grads{cpu::zero_safe_mul(g, neg(div(y, x)))};
  });
  return y;
}

Tensor pow(const Tensor& x, double p) {
  Tensor y = cpu::map_unary<fn::Unary::Pow>("pow", x, p);
  // dy/dx = p x^(p-1); for p = 0 the derivative is 0 everywhere (avoids 0 * inf at x = 0)
  record(y, "pow", {x}, [x = x.detach(), p](const Tensor& g, const std::vector<bool>&) {
    if (p == 0.0) return Grads{mul(g, 0.0)};
    return Grads{cpu::zero_safe_mul(g, mul(pow(x, p - 1.0), p))};
  });
  return y;
}

Tensor operator+(const Tensor& x, double s) { return add(x, s); }
Tensor operator-(const Tensor& x, double s) { return sub(x, s); }
Tensor operator*(const Tensor& x, double s) { return mul(x, s); }
Tensor operator/(const Tensor& x, double s) { return div(x, s); }
Tensor operator+(double s, const Tensor& x) { return add(x, s); }
Tensor operator-(double s, const Tensor& x) { return rsub(x, s); }
Tensor operator*(double s, const Tensor& x) { return mul(x, s); }
Tensor operator/(double s, const Tensor& x) { return rdiv(x, s); }
Tensor operator-(const Tensor& x) { return neg(x); }

}  // namespace hkt
