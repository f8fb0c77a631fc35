// test_ops_conventions.cpp: the choices of docs/engine.md "Conventions",
// each checked with values worked out by hand.
#include <algorithm>
#include <cmath>
#include <limits>

#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

namespace {
const double inf = std::numeric_limits<double>::infinity();
Tensor param(const std::vector<double>& v, const Shape& s) { return f64_param(v, s); }
}  // namespace

TEST_CASE("convention 1: max splits the gradient evenly among ties", "[ops][conventions]") {
  // Row [3, 1, 3, 2]: two elements tie at 3, each gets half of the upstream 1.
  Tensor x = param({3, 1, 3, 2, 0, 5, 5, 5}, {2, 4});
  Tensor m = max(x, {1});
  CHECK(m.to_vector() == std::vector<double>{3, 5});
  sum(m).backward();
  require_close(x.grad(), {0.5, 0, 0.5, 0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3});
  // Over several axes at once the split is over all tied elements together, not per axis:
  // [[1, 4], [4, 4]] has three 4s, each gets 1/3.
  Tensor y = param({1, 4, 4, 4}, {2, 2});
  max(y).backward();
  require_close(y.grad(), {0, 1.0 / 3, 1.0 / 3, 1.0 / 3});
}

TEST_CASE("convention 2: a row of all -inf gives softmax 0 and log_softmax -inf and zero gradient",
          "[ops][conventions]") {
  Tensor x = param({1, 2, 3, 0, 0, 0}, {2, 3});
  Tensor mask = f64({0, 0, -inf, -inf, -inf, -inf}, {2, 3});
  Tensor p = softmax(x, mask);
  // Row 0: softmax of [1, 2] = [1/(1+e), e/(1+e)], third entry masked.
  const double e = std::exp(1.0);
  require_close(p, {1 / (1 + e), e / (1 + e), 0, 0, 0, 0});
  sum(p * f64({1, 2, 3, 4, 5, 6}, {2, 3})).backward();
  const auto g = x.grad().to_vector();
  CHECK(g[3] == 0.0);
  CHECK(g[4] == 0.0);
  CHECK(g[5] == 0.0);
  CHECK(g[2] == 0.0);  // masked entry of a live row
  for (double v : g) CHECK(std::isfinite(v));

  Tensor x2 = param({1, 2, 3, 0, 0, 0}, {2, 3});
  Tensor lp = log_softmax(x2, mask);
  const auto lv = lp.to_vector();
  CHECK(lv[0] == Approx(1 - std::log(e + std::exp(2.0)) + 0).epsilon(1e-14));  // 1 - log(e^1 + e^2)
  CHECK(lv[2] == -inf);
  CHECK(lv[3] == -inf);
  CHECK(lv[5] == -inf);
  lp.backward(f64({1, 1, 1, 1, 1, 1}, {2, 3}));
  const auto g2 = x2.grad().to_vector();
  CHECK(g2[3] == 0.0);
  CHECK(g2[5] == 0.0);
  for (double v : g2) CHECK(std::isfinite(v));
}

TEST_CASE("convention 3: a zero upstream gradient gives zero even where the derivative is infinite",
          "[ops][conventions]") {
  // sqrt'(0) = inf, log'(0) = inf, (1/x)' at 0 = -inf: with g = 0 the result is 0, not nan.
  for (int which = 0; which < 4; ++which) {
    Tensor x = param({0.0, 4.0}, {2});
    Tensor y = which == 0 ? sqrt(x) : which == 1 ? log(x) : which == 2 ? rdiv(x, 1.0) : div(f64({1, 1}, {2}), x);
    y.backward(f64({0.0, 1.0}, {2}));
    INFO("case " << which);
    CHECK(x.grad().to_vector()[0] == 0.0);
    CHECK(std::isfinite(x.grad().to_vector()[1]));
  }
  // masked_fill with -inf upstream of a multiply: gradient at filled positions stays 0.
  Tensor a = param({1, 2}, {2});
  Tensor filled = masked_fill(a, Tensor::from_indices({1, 0}, {2}), -inf);
  sum(softmax(filled)).backward();
  CHECK(a.grad().to_vector()[0] == 0.0);
}

TEST_CASE("convention 4: cross_entropy with every target ignored is 0 with zero gradient", "[ops][conventions]") {
  Tensor logits = param({1, 2, 3, 4}, {2, 2});
  Tensor loss = cross_entropy(logits, Tensor::from_indices({-100, -100}, {2}));
  CHECK(loss.item() == 0.0);
  loss.backward();
  CHECK(logits.grad().to_vector() == std::vector<double>{0, 0, 0, 0});
}

TEST_CASE("cross_entropy by hand and with ignore_index and label smoothing", "[ops]") {
  // logits [0, ln 3] -> p = [1/4, 3/4]. Target 1: loss = -ln(3/4). Row 2 ignored.
  Tensor logits = param({0, std::log(3.0), 5, 5}, {2, 2});
  Tensor loss = cross_entropy(logits, Tensor::from_indices({1, 7}, {2}), /*ignore_index=*/7);
  CHECK(loss.item() == Approx(-std::log(0.75)).epsilon(1e-14));
  loss.backward();
  require_close(logits.grad(), {0.25, -0.25, 0, 0});  // p - onehot, mean over 1 row
  // Smoothing eps = 0.2 over C = 2: q = [0.1, 0.9]; loss = -(0.1 ln 1/4 + 0.9 ln 3/4).
  Tensor l2 = param({0, std::log(3.0)}, {1, 2});
  Tensor s = cross_entropy(l2, Tensor::from_indices({1}, {1}), -100, 0.2);
  CHECK(s.item() == Approx(-(0.1 * std::log(0.25) + 0.9 * std::log(0.75))).epsilon(1e-14));
  s.backward();
  require_close(l2.grad(), {0.25 - 0.1, 0.75 - 0.9});
  require_error(
      [] {
        cross_entropy(f64({1, 2}, {1, 2}), Tensor::from_indices({2}, {1}));
      },
      "cross_entropy: target 2 at position 0 is outside [0, 2)");
  require_error(
      [] {
        cross_entropy(f64({1, 2}, {1, 2}), Tensor::from_indices({0, 1}, {2}));
      },
      "need targets of shape [1], got [2]");
}

TEST_CASE("broadcasting: numpy rules for shapes and gradients", "[ops][broadcast]") {
  Tensor a = param({1, 2, 3}, {3});    // [3]
  Tensor b = param({10, 20}, {2, 1});  // [2,1]
  Tensor c = a + b;                    // [2,3]
  CHECK(c.shape() == Shape{2, 3});
  CHECK(c.to_vector() == std::vector<double>{11, 12, 13, 21, 22, 23});
  sum(c * f64({1, 2, 3, 4, 5, 6}, {2, 3})).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{5, 7, 9});  // column sums
  CHECK(b.grad().to_vector() == std::vector<double>{6, 15});    // row sums
  CHECK(broadcast_shapes("t", {4, 1, 3}, {2, 1}) == Shape{4, 2, 3});
  CHECK(broadcast_shapes("t", {}, {2, 3}) == Shape{2, 3});
  CHECK(broadcast_shapes("t", {0, 1}, {1, 5}) == Shape{0, 5});
  require_error([] { broadcast_shapes("add", {2, 3}, {4}); }, "add: shapes [2,3] and [4] cannot be broadcast");
  require_error(
      [] {
        mul(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}));
      },
      "mul: shapes [2,3] and [3,2] cannot be broadcast");
  require_error([] { add(Tensor::zeros({2}), Tensor::zeros({2}, DType::Float64)); },
                "add: dtypes differ (float32 and float64)");
  require_error([] { exp(Tensor::from_indices({1}, {1})); }, "exp: expected a float32 or float64 tensor, got int64");
}

TEST_CASE("matmul: values by hand and the shape errors", "[ops]") {
  Tensor a = f64({1, 2, 3, 4, 5, 6}, {2, 3}), b = f64({1, 0, 0, 1, 1, 1}, {3, 2});
  CHECK(matmul(a, b).to_vector() == std::vector<double>{4, 5, 10, 11});
  require_error(
      [] {
        matmul(Tensor::zeros({2, 3}), Tensor::zeros({4, 5}));
      },
      "matmul: [2,3] x [4,5]: inner sizes 3 and 4 differ");
  require_error(
      [] {
        matmul(Tensor::zeros({3}), Tensor::zeros({3, 1}));
      },
      "matmul: [3] x [3,1]: both inputs need rank >= 2");
  require_error(
      [] {
        matmul(Tensor::zeros({2, 1, 3}), Tensor::zeros({4, 3, 2}));
      },
      "batch dimensions [2] and [4] cannot be broadcast");
  // An empty inner dimension gives zeros.
  CHECK(matmul(Tensor::zeros({2, 0}), Tensor::zeros({0, 3})).to_vector() == std::vector<double>(6, 0.0));
}

TEST_CASE("sum and mean and max: keepdim shapes and negative axes and errors", "[ops]") {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(sum(x).dim() == 0);
  CHECK(sum(x).item() == 21);
  CHECK(sum(x, {0}).to_vector() == std::vector<double>{5, 7, 9});
  CHECK(sum(x, {-1}, true).shape() == Shape{2, 1});
  CHECK(mean(x, {1}).to_vector() == std::vector<double>{2, 5});
  CHECK(max(x, {0}).to_vector() == std::vector<double>{4, 5, 6});
  CHECK(std::isnan(mean(Tensor::zeros({0})).item()));
  require_error([&] { sum(x, {2}); }, "sum: axis 2 is out of range for a tensor of rank 2");
  require_error([&] { sum(x, {1, -1}); }, "sum: an axis is repeated");
  require_error([] { max(Tensor::zeros({0, 2}), {0}); }, "max: cannot reduce axis 0 of size 0");
}

TEST_CASE("layout ops: permute over many row blocks matches the index formula", "[ops]") {
  // Shapes whose output rows (the product of all but the last output size) span several
  // of permute's 64-row blocks and start blocks mid-way through every coordinate, so the
  // odometer's carries are exercised; the reference is the index formula, element by
  // element.
  struct Case {
    Shape shape;
    std::vector<int> dims;
  };
  for (const Case& c : {Case{{3, 70, 5, 7}, {1, 0, 3, 2}}, Case{{2, 65, 3, 4}, {0, 2, 1, 3}},
                        Case{{5, 9, 31}, {2, 0, 1}}, Case{{130, 3}, {0, 1}}, Case{{4, 3, 2, 33}, {3, 2, 1, 0}}}) {
    std::vector<double> v(static_cast<std::size_t>(numel(c.shape)));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
    const Tensor y = permute(f64(v, c.shape), c.dims);
    const auto got = y.to_vector();
    const int rank = static_cast<int>(c.shape.size());
    std::vector<std::int64_t> in_stride(static_cast<std::size_t>(rank), 1);
    for (int d = rank - 2; d >= 0; --d)
      in_stride[static_cast<std::size_t>(d)] = in_stride[static_cast<std::size_t>(d + 1)] * c.shape[d + 1];
    bool all_equal = true;
    for (std::int64_t flat = 0; flat < static_cast<std::int64_t>(got.size()); ++flat) {
      std::int64_t rest = flat, src = 0;
      for (int d = rank - 1; d >= 0; --d) {  // output coordinate d runs along input axis dims[d]
        const std::int64_t size = y.shape()[d];
        src += (rest % size) * in_stride[static_cast<std::size_t>(c.dims[static_cast<std::size_t>(d)])];
        rest /= size;
      }
      all_equal = all_equal && got[static_cast<std::size_t>(flat)] == static_cast<double>(src);
    }
    CHECK(all_equal);
  }
}

TEST_CASE("layout ops: permute and slice and concat by hand", "[ops]") {
  Tensor x = f64({0, 1, 2, 3, 4, 5}, {1, 2, 3});
  CHECK(permute(x, {2, 0, 1}).shape() == Shape{3, 1, 2});
  CHECK(permute(x, {2, 0, 1}).to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(transpose(x, 1, 2).to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(slice(x, 2, 1, 3).to_vector() == std::vector<double>{1, 2, 4, 5});
  CHECK(slice(x, -1, -1, 3).to_vector() == std::vector<double>{2, 5});
  CHECK(concat({f64({1, 2}, {2, 1}), f64({3, 4, 5, 6}, {2, 2})}, 1).to_vector() ==
        std::vector<double>{1, 3, 4, 2, 5, 6});
  require_error([&] { permute(x, {0, 0, 1}); }, "permute: dims are not a permutation of 0..2");
  require_error([&] { slice(x, 2, 2, 5); }, "slice: range [2, 5) is outside axis 2 of size 3");
  require_error(
      [] {
        concat({Tensor::zeros({2, 2}), Tensor::zeros({3, 3})}, 0);
      },
      "concat: tensor 1 has shape [3,3], which does not match [2,2] outside axis 0");
}

TEST_CASE("repeat_interleave is the lift of the HKT spec and gather picks along an axis", "[ops]") {
  // Lift_1 of a coarse row [a, b] to 4 fine positions: [a, a, b, b].
  CHECK(repeat_interleave(f64({7, 9}, {2}), 2, 0).to_vector() == std::vector<double>{7, 7, 9, 9});
  CHECK(repeat_interleave(f64({1, 2, 3, 4}, {2, 2}), 2, 1).to_vector() == std::vector<double>{1, 1, 2, 2, 3, 3, 4, 4});
  Tensor x = f64({10, 11, 12, 20, 21, 22}, {2, 3});
  CHECK(gather(x, 1, Tensor::from_indices({2, 0, 1, 1}, {2, 2})).to_vector() == std::vector<double>{12, 10, 21, 21});
  require_error(
      [&] {
        gather(x, 1, Tensor::from_indices({3, 0}, {2, 1}));
      },
      "gather: index 3 at position 0 is outside [0, 3)");
  require_error([] { repeat_interleave(Tensor::zeros({2}), 0, 0); }, "repeats must be >= 1");
}

TEST_CASE("embedding: rows by index and scatter-add backward and index errors", "[ops]") {
  Tensor w = param({0, 1, 10, 11, 20, 21}, {3, 2});
  Tensor y = embedding(w, Tensor::from_indices({2, 0, 2}, {3}));
  CHECK(y.to_vector() == std::vector<double>{20, 21, 0, 1, 20, 21});
  sum(y).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{1, 1, 0, 0, 2, 2});  // row 2 used twice
  require_error([&] { embedding(w, Tensor::from_indices({3}, {1})); },
                "embedding: index 3 at position 0 is outside [0, 3)");
  require_error([&] { embedding(w, f64({0}, {1})); }, "embedding: indices must be an int64 tensor, got float64");
}

TEST_CASE("layer_norm by hand", "[ops]") {
  // Row [1, 3]: mean 2, biased variance 1, eps 0 -> xhat = [-1, 1]; y = xhat * w + b.
  Tensor y = layer_norm(f64({1, 3}, {1, 2}), f64({2, 3}, {2}), f64({0.5, -0.5}, {2}), 0.0);
  require_close(y, {-1.5, 2.5});
  require_error(
      [] {
        layer_norm(Tensor::zeros({2, 3}), Tensor::zeros({2}), Tensor());
      },
      "layer_norm: weight has shape [2], expected [3] for input [2,3]");
}

TEST_CASE("layer_norm backward by hand", "[ops]") {
  // Row x = [0, 0, 3], eps 0: mean 1, biased variance 2, rstd = 1/sqrt(2),
  // xhat = [-1, -1, 2] / sqrt(2). Upstream g = [1, 0, 0], w = 1: dxhat = g,
  // mean(dxhat) = 1/3, mean(dxhat xhat) = -1 / (3 sqrt(2)), so
  // dx = rstd (g - 1/3 + xhat / (3 sqrt(2))) = rstd [1/2, -1/2, 0] = [1, -1, 0] / (2 sqrt(2));
  // dw = g xhat = [-1/sqrt(2), 0, 0]; db = g.
  Tensor x = f64({0, 0, 3}, {1, 3}).set_requires_grad();
  Tensor w = f64({1, 1, 1}, {3}).set_requires_grad();
  Tensor b = f64({0, 0, 0}, {3}).set_requires_grad();
  layer_norm(x, w, b, 0.0).backward(f64({1, 0, 0}, {1, 3}));
  const double r = 1.0 / std::sqrt(2.0);
  require_close(x.grad(), {r / 2, -r / 2, 0.0});
  require_close(w.grad(), {-r, 0.0, 0.0});
  require_close(b.grad(), {1.0, 0.0, 0.0});
}

TEST_CASE("causal_conv1d by hand: the average downsampler", "[ops]") {
  // k = 2, w = 1/2 (average initialisation), stride 2: y[t] = (x[2t] + x[2t-1]) / 2,
  // x[-1] = 0. x = [1, 2, 3, 4, 5] -> T_out = 3: [1/2, (3+2)/2, (5+4)/2].
  Tensor x = f64({1, 2, 3, 4, 5}, {1, 5, 1});
  Tensor y = causal_conv1d(x, f64({0.5, 0.5}, {1, 2}), Tensor(), 2);
  CHECK(y.shape() == Shape{1, 3, 1});
  require_close(y, {0.5, 2.5, 4.5});
  // Causality: y[t] depends only on x[p] with p <= 2t. Changing x[4] changes only y[2].
  Tensor x2 = f64({1, 2, 3, 4, 100}, {1, 5, 1});
  const auto y2 = causal_conv1d(x2, f64({0.5, 0.5}, {1, 2}), Tensor(), 2).to_vector();
  CHECK(y2[0] == 0.5);
  CHECK(y2[1] == 2.5);
  require_error(
      [] {
        causal_conv1d(Tensor::zeros({1, 5, 2}), Tensor::zeros({3, 2}), Tensor(), 2);
      },
      "causal_conv1d: weight must be [C, k] = [2, k >= 1]");
}

TEST_CASE("masked_fill and dropout", "[ops]") {
  Tensor x = f64({1, 2, 3, 4}, {2, 2});
  CHECK(masked_fill(x, Tensor::from_indices({0, 1}, {2}), -7).to_vector() == std::vector<double>{1, -7, 3, -7});
  require_error([&] { masked_fill(x, Tensor::from_indices({0, 1, 1}, {3}), 0); }, "cannot be broadcast");
  // dropout: kept elements scaled by 1/(1-p), the kept fraction near 1-p, same seed same mask.
  Generator g1(5), g2(5);
  const auto a = dropout(Tensor::ones({20000}, DType::Float64), 0.25, g1).to_vector();
  const auto b = dropout(Tensor::ones({20000}, DType::Float64), 0.25, g2).to_vector();
  CHECK(a == b);
  double kept = 0;
  for (double v : a) {
    CHECK((v == 0.0 || v == Approx(4.0 / 3.0).epsilon(1e-15)));
    kept += v != 0.0;
  }
  // Binomial(20000, 0.75): sd = sqrt(20000 * 0.75 * 0.25) = 61; allow 5 sd.
  CHECK(std::fabs(kept - 15000) < 5 * 61.3);
  // The mask is the stream of engine/random.h: element i kept when word i % 4 of Philox
  // block (first + i / 4) gives a uniform >= p; 4099 elements end in a partial block.
  // Reference: the Philox words by hand through philox_at, not uniform24_at.
  Generator g4(11);
  g4.advance(3);  // the draw starts at counter 3
  const std::int64_t n = 4099;
  const auto mask = dropout(Tensor::ones({n}, DType::Float32), 0.3, g4).to_vector();
  CHECK(g4.offset() == 3 + (n + 3) / 4);
  std::int64_t mismatches = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t word = philox_at(11, 3 + static_cast<std::uint64_t>(i / 4)).out[i % 4];
    const double u = static_cast<double>(word >> 8) / 16777216.0;
    mismatches +=
        mask[static_cast<std::size_t>(i)] != (u < 0.3 ? 0.0 : static_cast<double>(static_cast<float>(1.0 / 0.7)));
  }
  CHECK(mismatches == 0);
  Generator g3(5);
  Tensor same = dropout(x, 0.5, g3, /*training=*/false);
  CHECK(same.to_vector() == x.to_vector());
  require_error([&] { dropout(x, 1.0, g3); }, "dropout: p must be in [0, 1), got 1");
}

TEST_CASE("gelu and sigmoid and relu: values by hand", "[ops]") {
  // gelu(1) = Phi(1) = 0.841344746068543 (erf form); tanh form: 0.5 (1 + tanh(sqrt(2/pi) 1.044715)).
  CHECK(gelu(f64({1}, {1})).item() == Approx(0.8413447460685429).epsilon(1e-14));
  CHECK(gelu(f64({1}, {1}), GeluApproximation::Tanh).item() ==
        Approx(0.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * 1.044715))).epsilon(1e-14));
  CHECK(sigmoid(f64({0, -1000, 1000}, {3})).to_vector() == std::vector<double>{0.5, 0.0, 1.0});  // no overflow
  Tensor r = param({-1, 0, 2}, {3});
  sum(relu(r)).backward();
  CHECK(r.grad().to_vector() == std::vector<double>{0, 0, 1});  // relu'(0) = 0, as PyTorch
}

TEST_CASE(
    "gelu float32 on the CPU (vectorised erfc): value and gradient within (6e-7 + 1.2e-7 x^2) of a float64 "
    "erfc reference",
    "[ops]") {
  // Reference in double from the definition: GELU(x) = x/2 erfc(-x/sqrt 2), GELU'(x) =
  // erfc(-x/sqrt 2)/2 + x exp(-x^2/2)/sqrt(2 pi). The bound is fast_erfc's at z = x/sqrt 2
  // (tests/test_attention_tiles.cpp) plus float roundings; rounding z = x/sqrt 2 itself
  // (relative 6e-8) moves erfc by 2 z^2 that much, hence 1.2e-7 x^2 in all: 6e-7 relative
  // where GELU matters (|x| < 2), 1e-5 at x = -9 where GELU is 1e-18 (a float 1 + erf(x)
  // would have lost every digit there). The gradient's error is relative to the sum of the two
  // terms' magnitudes (they cancel near x = -0.75).
  std::vector<double> xs;
  for (double x = -9.0; x <= 9.0; x += 1.0 / 512.0 + 1e-6) xs.push_back(static_cast<double>(static_cast<float>(x)));
  const auto n = static_cast<std::int64_t>(xs.size());
  Tensor x = Tensor::from_vector(xs, {n}, DType::Float32);
  x.set_requires_grad();
  Tensor y = gelu(x);
  sum(y).backward();
  const auto value = y.to_vector(), grad = x.grad().to_vector();
  double worst_value = 0, worst_grad = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double v = xs[i], cdf = 0.5 * std::erfc(-v / std::sqrt(2.0)),
                 v_pdf = v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
    const double bound = 6e-7 + 1.2e-7 * v * v;
    worst_value = std::max(worst_value, std::fabs(value[i] - v * cdf) / std::max(std::fabs(v * cdf), 1e-300) / bound);
    worst_grad = std::max(worst_grad, std::fabs(grad[i] - (cdf + v_pdf)) / (cdf + std::fabs(v_pdf)) / bound);
  }
  INFO("worst error as a fraction of the bound: value " << worst_value << ", gradient " << worst_grad);
  CHECK(worst_value <= 1.0);
  CHECK(worst_grad <= 1.0);
  CHECK(gelu(Tensor::from_vector({0.0}, {1}, DType::Float32)).item() == 0.0);
}

TEST_CASE("float32 backward sums over a million rows are exact to float32 (double accumulators)",
          "[ops][reliability]") {
  // Upstream gradient 0.1 (float32: 0.100000001490116...) on 2^20 rows: the exact sum
  // 104857.6015625 is a float32 value; a float32 running total gave 105891.8.
  const std::int64_t N = std::int64_t{1} << 20;
  const double exact = static_cast<double>(0.1f) * static_cast<double>(N);
  REQUIRE(static_cast<double>(static_cast<float>(exact)) == exact);
  std::vector<Device> devices{Device::CPU};
  std::string why;
  if (cuda::device_count(&why) > 0) devices.push_back(Device::CUDA);
  for (Device device : devices) {
    INFO(device_name(device));
    {  // layer_norm's weight and bias gradients: columns summed over N rows
      Generator gen(3);
      Tensor x = Tensor::normal({N, 2}, gen, 0, 1).to(device);
      Tensor w = Tensor::ones({2}).to(device).detach().set_requires_grad();
      Tensor b = Tensor::zeros({2}).to(device).detach().set_requires_grad();
      layer_norm(x, w, b).backward(Tensor::full({N, 2}, 0.1).to(device));
      for (double v : b.grad().to_vector()) CHECK(v == exact);
    }
    {  // embedding: every index 0, so dW[0] sums N rows
      Tensor weight = Tensor::zeros({3, 2}).to(device).detach().set_requires_grad();
      Tensor idx = Tensor::from_indices(std::vector<std::int64_t>(static_cast<std::size_t>(N), 0), {N});
      embedding(weight, idx).backward(Tensor::full({N, 2}, 0.1).to(device));
      const auto dw = weight.grad().to_vector();
      CHECK(dw[0] == exact);
      CHECK(dw[1] == exact);
      CHECK(dw[2] == 0.0);
    }
    {  // causal_conv1d: the bias sums N positions; the weight's tap 0 too (x = 1)
      Tensor x = Tensor::ones({1, N, 1}).to(device);
      Tensor w = Tensor::zeros({1, 2}).to(device).detach().set_requires_grad();
      Tensor bias = Tensor::zeros({1}).to(device).detach().set_requires_grad();
      causal_conv1d(x, w, bias, 1).backward(Tensor::full({1, N, 1}, 0.1).to(device));
      CHECK(bias.grad().item() == exact);
      CHECK(w.grad().to_vector()[0] == exact);
    }
  }
}
