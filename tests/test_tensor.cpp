// test_tensor.cpp: creation, properties, views, conversion and printing.
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

TEST_CASE("tensor: creation functions give the documented values", "[tensor]") {
  CHECK(Tensor::zeros({2, 3}).to_vector() == std::vector<double>(6, 0.0));
  CHECK(Tensor::ones({4}, DType::Float64).to_vector() == std::vector<double>(4, 1.0));
  CHECK(Tensor::full({2}, 2.5).to_vector() == std::vector<double>{2.5, 2.5});
  CHECK(Tensor::arange(0, 5).to_vector() == std::vector<double>{0, 1, 2, 3, 4});
  CHECK(Tensor::arange(1, 2, 0.25, DType::Float64).to_vector() == std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(Tensor::arange(5, 0, -2).to_vector() == std::vector<double>{5, 3, 1});
  CHECK(Tensor::arange(3, 3).numel() == 0);
  CHECK(Tensor::scalar(7.0).dim() == 0);
  CHECK(Tensor::scalar(7.0).item() == 7.0);
  const Tensor idx = Tensor::from_indices({3, -1, 9000000000}, {3});
  CHECK(idx.dtype() == DType::Int64);
  CHECK(idx.data<std::int64_t>()[2] == 9000000000);
}

TEST_CASE("tensor: shape and rank and sizes (ranks 0 to 5)", "[tensor]") {
  const Tensor t = Tensor::zeros({2, 3, 4, 5, 1}, DType::Float64);
  CHECK(t.dim() == 5);
  CHECK(t.numel() == 120);
  CHECK(t.size(-1) == 1);
  CHECK(t.size(2) == 4);
  CHECK(t.nbytes() == 960);
  CHECK(Tensor::zeros({}).numel() == 1);
  CHECK(Tensor::zeros({0, 3}).numel() == 0);
  require_error([&] { (void)t.size(5); }, "axis 5 is out of range for a tensor of rank 5");
  require_error([] { Tensor::zeros({2, -1}); }, "negative size");
  require_error([] { Tensor::zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}); }, "exceeds the maximum rank 8");
}

TEST_CASE("tensor: from_vector checks the element count", "[tensor][errors]") {
  require_error([] { Tensor::from_vector({1, 2, 3}, {2, 2}); }, "3 values do not fill shape [2,2] (4 elements)");
}

TEST_CASE("tensor: reshape is a view sharing storage and with one inferred size", "[tensor]") {
  Tensor a = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = a.reshape({3, -1});
  CHECK(b.shape() == Shape{3, 2});
  b.data<double>()[0] = 42.0;  // writes through to a
  CHECK(a.data<double>()[0] == 42.0);
  require_error([&] { a.reshape({4, -1}); }, "cannot reshape [2,3] into [4,-1]");
  require_error([&] { a.reshape({-1, -1}); }, "only one size may be -1");
  require_error([&] { a.reshape({5}); }, "cannot reshape [2,3] (6 elements) into [5]");
}

TEST_CASE("tensor: to(dtype) rounds and converts and item on a one-element tensor", "[tensor]") {
  Tensor a = f64({0.1, -2.75}, {2});
  Tensor b = a.to(DType::Float32);
  CHECK(b.dtype() == DType::Float32);
  CHECK(b.to_vector()[0] == static_cast<double>(0.1f));  // float32 rounding of 0.1
  CHECK(b.to_vector()[1] == -2.75);
  CHECK(a.to(DType::Int64).to_vector() == std::vector<double>{0, -2});  // truncation toward 0, as a C++ cast
  require_error([&] { (void)a.item(); }, "has 2 elements, not 1");
}

TEST_CASE("tensor: data<E>() refuses the wrong type", "[tensor][errors]") {
  Tensor a = Tensor::zeros({2});
  require_error([&] { (void)a.data<double>(); }, "tensor has dtype float32, asked for float64");
}

TEST_CASE("tensor: printing in PyTorch's style", "[tensor]") {
  CHECK(f64({1, 2.5, -3, 4}, {2, 2}).to_string() ==
        "tensor([[1.0000, 2.5000],\n        [-3.0000, 4.0000]], shape=[2,2], dtype=float64)");
  CHECK(Tensor::from_indices({1, 2}, {2}).to_string() == "tensor([1, 2], shape=[2], dtype=int64)");
  CHECK(Tensor::scalar(0.5).to_string() == "tensor(0.5000, shape=[], dtype=float32)");
  Tensor p = Tensor::ones({1});
  p.set_requires_grad();
  CHECK(p.to_string() == "tensor([1.0000], shape=[1], dtype=float32, requires_grad=true)");
  const std::string longer = Tensor::arange(0, 10).to_string();
  CHECK(longer == "tensor([0.0000, 1.0000, 2.0000, ..., 7.0000, 8.0000, 9.0000], shape=[10], dtype=float32)");
  CHECK(f64({1e-6, 2}, {2}).to_string() == "tensor([1.0000e-06, 2.0000e+00], shape=[2], dtype=float64)");
  CHECK(Tensor().to_string() == "tensor(undefined)");
}

TEST_CASE("tensor: an undefined tensor names itself in errors", "[tensor][errors]") {
  Tensor t;
  CHECK_FALSE(t.defined());
  require_error([&] { (void)t.shape(); }, "the tensor is undefined");
}
