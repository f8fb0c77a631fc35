// test_autograd.cpp: the semantics of backward(): accumulation, zero_grad, no-grad
// scopes, diamonds, reuse, freeing the graph, and the errors.
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

namespace {
Tensor param(const std::vector<double>& v, const Shape& s) { return f64_param(v, s); }
}  // namespace

TEST_CASE("autograd: a small expression by hand", "[autograd]") {
  // L = sum((a * b + a)^2) with a = [1, 2], b = [3, -1]:
  // u = a*b + a = [4, 0];  dL/du = 2u = [8, 0];  dL/da = 2u (b + 1) = [32, 0];  dL/db = 2u a = [8, 0].
  Tensor a = param({1, 2}, {2}), b = param({3, -1}, {2});
  Tensor loss = sum(pow(a * b + a, 2.0));
  CHECK(loss.item() == 16.0);
  loss.backward();
  CHECK(a.grad().to_vector() == std::vector<double>{32, 0});
  CHECK(b.grad().to_vector() == std::vector<double>{8, 0});
}

TEST_CASE("autograd: gradients accumulate over backward calls until zero_grad", "[autograd]") {
  Tensor w = param({2.0}, {1});
  sum(w * 3.0).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{3});
  sum(w * w).backward();  // d(w^2)/dw = 2w = 4, added to 3
  CHECK(w.grad().to_vector() == std::vector<double>{7});
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
  sum(w * 5.0).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{5});
}

TEST_CASE("autograd: a diamond graph and a tensor used twice", "[autograd]") {
  // x -> (y = x^2, z = 3x) -> L = sum(y * z) = sum(3 x^3), dL/dx = 9 x^2.
  Tensor x = param({1, -2, 0.5}, {3});
  Tensor y = x * x, z = x * 3.0;
  sum(y * z).backward();
  require_close(x.grad(), {9, 36, 2.25});
  // The same intermediate feeding one op twice: L = sum(h * h), h = x + 1: dL/dx = 2(x + 1).
  Tensor x2 = param({1, -2}, {2});
  Tensor h = x2 + 1.0;
  sum(h * h).backward();
  require_close(x2.grad(), {4, -2});
}

TEST_CASE("autograd: no-grad scope records nothing", "[autograd]") {
  Tensor w = param({1, 2}, {2});
  Tensor y;
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_mode_enabled());
    y = w * 2.0;
  }
  CHECK(grad_mode_enabled());
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
  require_error([&] { sum(y).backward(); }, "does not require grad");
}

TEST_CASE("autograd: backward with a given output gradient", "[autograd]") {
  Tensor x = param({1, 2, 3}, {3});
  Tensor y = x * x;  // dy/dx = 2x
  y.backward(f64({1, 0, -1}, {3}));
  CHECK(x.grad().to_vector() == std::vector<double>{2, 0, -6});
  Tensor x2 = param({1, 2, 3}, {3});
  require_error([&] { (x2 * x2).backward(); }, "a gradient must be given for a non-scalar output of shape [3]");
  require_error([&] { (x2 * x2).backward(f64({1, 2}, {2})); }, "gradient shape [2] differs from output shape [3]");
}

TEST_CASE("autograd: the graph is freed after backward unless retained", "[autograd]") {
  Tensor x = param({1, 2}, {2});
  Tensor loss = sum(exp(x));
  loss.backward(Tensor(), /*retain_graph=*/true);
  loss.backward();  // allowed: retained the first time
  require_close(x.grad(), {2 * std::exp(1.0), 2 * std::exp(2.0)});
  require_error([&] { loss.backward(); }, "was already freed by an earlier backward()");
}

TEST_CASE("autograd: freeing the graph releases saved tensors", "[autograd]") {
  Tensor x = param({1, 2}, {2});
  std::weak_ptr<TensorImpl> saved;
  Tensor loss;
  {
    Tensor e = exp(x);  // exp saves its output for backward
    saved = e.impl_ptr();
    loss = sum(e * 2.0);
  }
  // The intermediate e itself is not kept alive by the graph (only a detached view of
  // its storage is), so its handle is already gone; backward still works.
  CHECK(saved.expired());
  loss.backward();
  require_close(x.grad(), {2 * std::exp(1.0), 2 * std::exp(2.0)});
  CHECK(loss.grad_fn()->backward == nullptr);
}

TEST_CASE("autograd: requires_grad only on float leaves", "[autograd][errors]") {
  Tensor i = Tensor::from_indices({1}, {1});
  require_error([&] { i.set_requires_grad(); }, "only float32/float64 tensors can require grad");
  Tensor x = param({1}, {1});
  Tensor y = x * 2.0;
  CHECK_FALSE(y.is_leaf());
  require_error([&] { y.set_requires_grad(); }, "only leaf tensors");
}

TEST_CASE("autograd: inputs that do not require grad get none", "[autograd]") {
  Tensor w = param({1, 2}, {1, 2});
  Tensor c = f64({3, 4}, {2, 1});  // a constant
  sum(matmul(w, c)).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{3, 4});
  CHECK_FALSE(c.grad().defined());
}

TEST_CASE("autograd: a deep chain does not overflow the stack", "[autograd]") {
  Tensor x = param({1.0}, {1});
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y * 1.0;
  sum(y).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{1.0});
}

TEST_CASE("autograd: to(dtype) and clone pass gradients through", "[autograd]") {
  Tensor x = param({1.5, -2}, {2});
  sum(x.to(DType::Float32).clone() * 2.0).backward();
  CHECK(x.grad().dtype() == DType::Float64);
  CHECK(x.grad().to_vector() == std::vector<double>{2, 2});
}
