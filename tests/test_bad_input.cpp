// test_bad_input.cpp: inputs that once crashed, gave wrong numbers or unclear messages
// (found by a review that attacked the engine); each stays fixed.
#include <limits>

#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

TEST_CASE("bad input: zero_grad on an undefined tensor throws instead of crashing", "[errors]") {
  Tensor t;
  require_error([&] { t.zero_grad(); }, "zero_grad: the tensor is undefined");
}

TEST_CASE("bad input: shapes whose element count overflows are refused", "[errors]") {
  require_error([] { Tensor::zeros({std::int64_t{1} << 61}, DType::Float64); }, "has more than 2^60 elements");
  require_error([] { Tensor::zeros({std::int64_t{1} << 32, std::int64_t{1} << 32}); }, "has more than 2^60 elements");
  require_error([] { repeat_interleave(Tensor::zeros({4}), std::int64_t{1} << 62, 0); }, "repeat_interleave: 4 x");
  require_error([] { Tensor::arange(0, std::numeric_limits<double>::infinity()); },
                "arange: start, end and step must be finite");
  // A stride larger than T is fine: one output step.
  CHECK(causal_conv1d(Tensor::ones({1, 3, 1}), Tensor::ones({1, 1}), Tensor(), std::numeric_limits<std::int64_t>::max())
            .shape() == Shape{1, 1, 1});
}

TEST_CASE("bad input: float32 sums accumulate in double", "[ops]") {
  // 2^24 + 1000 ones: a float32 running sum stops at 2^24 = 16777216.
  CHECK(sum(Tensor::ones({(1 << 24) + 1000})).item() == 16778216.0);
  // mean of 1e6 copies of 0.1f is 0.1f to float32 rounding (naive float sums drift by 1 %).
  CHECK(mean(Tensor::full({1000000}, 0.1)).item() == Approx(0.1).epsilon(1e-6));
  // layer_norm of large-offset float32 rows matches the float64 result.
  Generator gen(1);
  const Tensor x = add(Tensor::normal({2, 4096}, gen, 0, 1, DType::Float64), 1000.0);
  const auto y64 = layer_norm(x, Tensor(), Tensor()).to_vector();
  require_close(layer_norm(x.to(DType::Float32), Tensor(), Tensor()), y64,
                Tolerance{2e-4, 0, "float32 xhat of 1000 +- 1 inputs"});
}

TEST_CASE("bad input: NaN is not hidden by relu and max sends its gradient to the NaN", "[ops][conventions]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(std::isnan(relu(f64({nan}, {1})).item()));
  Tensor x = f64({1, nan, 3}, {3});
  x.set_requires_grad();
  Tensor m = max(x);
  CHECK(std::isnan(m.item()));
  m.backward();
  const auto g = x.grad().to_vector();
  CHECK(g == std::vector<double>{0, 1, 0});
}

TEST_CASE("bad input: conversions to int64 refuse non-finite and out-of-range values", "[errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  require_error(
      [&] {
        Tensor::from_vector({1, nan}, {2}, DType::Int64);
      },
      "from_vector: value nan at position 1 cannot be converted to int64");
  require_error([] { f64({1e300}, {1}).to(DType::Int64); }, "to(dtype): value");
  CHECK(Tensor::from_indices({(std::int64_t{1} << 53) + 1}, {1}).to_string() ==
        "tensor([9007199254740993], shape=[1], dtype=int64)");
  CHECK(Tensor::from_indices({}, {0}).numel() == 0);
}

TEST_CASE("bad input: integer tensors into float ops name the op", "[errors]") {
  const Tensor i = Tensor::from_indices({0, 1}, {2, 1});
  require_error(
      [&] {
        matmul(Tensor::from_indices({}, {2, 0}), Tensor::from_indices({}, {0, 3}));
      },
      "matmul: expected float32 or float64 tensors, got int64");
  require_error([&] { sum(Tensor::from_indices({3}, {})); }, "sum: expected a float32 or float64 tensor, got int64");
  Generator gen(0);
  require_error([&] { dropout(i, 0.5, gen); }, "dropout: expected a float32 or float64 tensor");
  CHECK(gen.offset() == 0);  // a refused call draws nothing
}

TEST_CASE("bad input: messages name the op and the values the caller gave", "[errors]") {
  require_error(
      [] {
        softmax(f64({1, 2}, {2}), Tensor::zeros({2}));
      },
      "softmax: mask dtype float32 differs from input dtype float64");
  require_error(
      [] {
        log_softmax(f64({1, 2}, {2}), Tensor::from_indices({0, 0}, {2}));
      },
      "log_softmax: mask dtype int64");
  require_error([] { slice(Tensor::zeros({5}), 0, -100, 5); }, "slice: range [-100, 5) is outside axis 0 of size 5");
}
