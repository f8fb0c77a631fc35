// test_readme_example.cpp: the code example of README.md compiles, runs and gives the
// gradient worked out by hand, so the README cannot drift from the API.
#include <sstream>

#include "test_helpers.h"

using namespace hkt;

TEST_CASE("readme: the engine example runs and its gradient is right", "[readme]") {
  // --- as in README.md ---
  Generator gen(0);
  Tensor w = Tensor::normal({3, 2}, gen, 0.0, 0.1).set_requires_grad();
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor loss = cross_entropy(matmul(x, w), Tensor::from_indices({0, 1}, {2}));
  loss.backward();
  std::ostringstream printed;
  printed << w.grad() << "\n";
  // --- check: dL/dw = x^T (softmax(x w) - onehot) / 2, computed here in double ---
  const auto wv = w.to_vector(), xv = x.to_vector();
  std::vector<double> expected(6, 0.0);
  for (int n = 0; n < 2; ++n) {
    double z[2];
    for (int c = 0; c < 2; ++c) z[c] = xv[n * 3] * wv[c] + xv[n * 3 + 1] * wv[2 + c] + xv[n * 3 + 2] * wv[4 + c];
    const double m = std::max(z[0], z[1]), s = std::exp(z[0] - m) + std::exp(z[1] - m);
    for (int c = 0; c < 2; ++c) {
      const double d = (std::exp(z[c] - m) / s - (c == n ? 1.0 : 0.0)) / 2.0;
      for (int k = 0; k < 3; ++k) expected[k * 2 + c] += xv[n * 3 + k] * d;
    }
  }
  hkt::test::require_close(w.grad(), expected, hkt::test::kFloat32VsFloat64);
  CHECK(printed.str().rfind("tensor([[", 0) == 0);
}
