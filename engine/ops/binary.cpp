// binary.cpp: add, sub, mul, div with numpy broadcasting, forward and backward.
//
// Backward of z = f(a, b) with broadcasting: compute dz/da * g at the broadcast shape,
// then sum_to(a.shape()) adds up the copies that broadcasting made (and likewise for b).
#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor z = cpu::map_binary<fn::Binary::Add>("add", a, b);
  // d(a+b)/da = 1, d(a+b)/db = 1
  record(z, "add", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<bool>& needs) {
    return Grads{needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(g, sb) : Tensor()};
  });
  return z;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor z = cpu::map_binary<fn::Binary::Sub>("sub", a, b);
  // d(a-b)/da = 1, d(a-b)/db = -1
  record(z, "sub", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<bool>& needs) {
    return Grads{needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(neg(g), sb) : Tensor()};
  });
  return z;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor z = cpu::map_binary<fn::Binary::Mul>("mul", a, b);
  // d(ab)/da = b, d(ab)/db = a (zero_safe_mul: a zero g stays zero even against inf)
  record(z, "mul", {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g, const std::vector<bool>& needs) {
    return Grads{needs[0] ? sum_to(cpu::zero_safe_mul(g, b), a.shape()) : Tensor(),
                 needs[1] ? sum_to(cpu::zero_safe_mul(g, a), b.shape()) : Tensor()};
  });
  return z;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor z = cpu::map_binary<fn::Binary::Div>("div", a, b);
  // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -z/b
  record(z, "div", {a, b},
         [b = b.detach(), z = z.detach(), sa = a.shape()](const Tensor& g, const std::vector<bool>& needs) {
           return Grads{needs[0] ? sum_to(cpu::zero_safe_div(g, b), sa) : Tensor(),
                        needs[1] ? sum_to(cpu::zero_safe_mul(g, neg(div(z, b))), b.shape()) : Tensor()};
         });
  return z;
}

void add_(Tensor& dst, const Tensor& src) {
  cpu::check_defined("add_", dst);
  cpu::check_defined("add_", src);
  cpu::check_same_kind("add_", dst, src);
  check(dst.shape() == src.shape(),
        "add_: shapes " + shape_str(dst.shape()) + " and " + shape_str(src.shape()) + " differ");
  dispatch_floating(dst.dtype(), "add_", [&](auto tag) {
    using E = decltype(tag);
    if (cpu::on_cuda(dst)) {  // in place: each output element reads only its own inputs
      cuda::binary(fn::Binary::Add, dst.raw_data(), src.raw_data(), dst.raw_data(),
                   cpu::broadcast_view(dst.shape(), src.shape(), dst.shape()), 0.0, dst.dtype());
      return;
    }
    E* pd = dst.data<E>();
    const E* ps = src.data<E>();
    cpu::parallel_for(dst.numel(), 1, [&](std::int64_t i) { pd[i] += ps[i]; });
  });
}

Tensor eq(const Tensor& a, const Tensor& b) {
  NoGradGuard constant;  // a comparison has no gradient
  return cpu::map_binary<fn::Binary::Eq>("eq", a, b);
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }

}  // namespace hkt
