// test_theory.cpp: the theory checks of models/theory/theory.h (docs/theory.md). Every expected
// value is known independently: by hand (small matrices), by a formula (Gaussian Mardia
// kurtosis, relative lambda_min of a negative semidefinite matrix, IEEE identities), or by
// another method (power iteration against Jacobi, the module's own forward against the
// truncated output at L' = L).
#include <algorithm>
#include <cmath>

#include "test_helpers.h"
#include "theory.h"

using namespace hkt;
using namespace hkt::theory;
using hkt::test::require_error;

namespace {

Matrix from_rows(const std::vector<std::vector<double>>& rows) {
  Matrix m(static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(rows[0].size()));
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t j = 0; j < rows[i].size(); ++j)
      m(static_cast<std::int64_t>(i), static_cast<std::int64_t>(j)) = rows[i][j];
  return m;
}

// A random symmetric n x n matrix (entries normal, then symmetrised).
Matrix random_symmetric(std::int64_t n, std::uint64_t seed) {
  Generator gen(seed);
  const Matrix a = to_matrix(Tensor::normal({n, n}, gen, 0.0, 1.0, DType::Float64));
  return split_sym_anti(a).sym;
}

// The largest eigenvalue of a symmetric PSD matrix by power iteration (independent of Jacobi).
double power_iteration(const Matrix& a, int iterations = 3000) {
  std::vector<double> v(static_cast<std::size_t>(a.rows), 1.0), w(v.size());
  double lambda = 0;
  for (int it = 0; it < iterations; ++it) {
    double norm = 0;
    for (std::int64_t i = 0; i < a.rows; ++i) {
      double s = 0;
      for (std::int64_t j = 0; j < a.cols; ++j) s += a(i, j) * v[static_cast<std::size_t>(j)];
      w[static_cast<std::size_t>(i)] = s;
      norm += s * s;
    }
    norm = std::sqrt(norm);
    double vnorm = 0;
    for (double x : v) vnorm += x * x;
    lambda = norm / std::sqrt(vnorm);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = w[i] / norm;
  }
  return lambda;
}

// The eigenvalues of a symmetric 3x3 matrix in ascending order by the trigonometric
// closed form (O. K. Smith, "Eigenvalues of a symmetric 3 x 3 matrix", CACM 4(4), 1961):
// with q = tr(A)/3, p = sqrt(||A - qI||_F^2 / 6), B = (A - qI)/p and phi = acos(det(B)/2)/3,
// the eigenvalues are q + 2p cos(phi + 2 pi k / 3), k = 0, 1, 2. Independent of Jacobi.
std::vector<double> eigenvalues_3x3(const Matrix& a) {
  const double q = (a(0, 0) + a(1, 1) + a(2, 2)) / 3;
  const double off = a(0, 1) * a(0, 1) + a(0, 2) * a(0, 2) + a(1, 2) * a(1, 2);
  const double p = std::sqrt(
      ((a(0, 0) - q) * (a(0, 0) - q) + (a(1, 1) - q) * (a(1, 1) - q) + (a(2, 2) - q) * (a(2, 2) - q) + 2 * off) / 6);
  Matrix b(3, 3);
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 3; ++j) b(i, j) = (a(i, j) - (i == j ? q : 0.0)) / p;
  const double det = b(0, 0) * (b(1, 1) * b(2, 2) - b(1, 2) * b(2, 1)) -
                     b(0, 1) * (b(1, 0) * b(2, 2) - b(1, 2) * b(2, 0)) +
                     b(0, 2) * (b(1, 0) * b(2, 1) - b(1, 1) * b(2, 0));
  const double phi = std::acos(std::clamp(det / 2, -1.0, 1.0)) / 3, pi = std::acos(-1.0);
  std::vector<double> e{q + 2 * p * std::cos(phi), q + 2 * p * std::cos(phi + 2 * pi / 3),
                        q + 2 * p * std::cos(phi + 4 * pi / 3)};
  std::sort(e.begin(), e.end());
  return e;
}

// Softmax of row i of s over its first `seen` entries (float64).
std::vector<double> softmax_row(const Matrix& s, std::int64_t i, std::int64_t seen) {
  double top = s(i, 0);
  for (std::int64_t j = 1; j < seen; ++j) top = std::max(top, s(i, j));
  std::vector<double> w(static_cast<std::size_t>(seen));
  double total = 0;
  for (std::int64_t j = 0; j < seen; ++j) total += w[static_cast<std::size_t>(j)] = std::exp(s(i, j) - top);
  for (double& v : w) v /= total;
  return w;
}

// A float64 attention module with randomised downsampler weights and biases (so the
// levels are not plain averages).
AttentionConfig small_attention(int levels, Fusion fusion = Fusion::Scores, bool causal = false) {
  AttentionConfig c;
  c.d_model = 16;
  c.n_heads = 2;
  c.levels = levels;
  c.fusion = fusion;
  c.causal = causal;
  return c;
}
void randomise(const HierarchicalAttention& attn, std::uint64_t seed) {
  Generator gen(seed);
  for (const auto& [name, p] : attn.named_parameters())
    if (name.rfind("downsample.", 0) == 0 || name == "level_logits") {
      const auto r = Tensor::normal(p.shape(), gen, 0.0, 0.5, DType::Float64).to_vector();
      double* d = p.data<double>();
      for (std::size_t i = 0; i < r.size(); ++i) d[i] += r[i];
    }
}

}  // namespace

// ---- linear algebra -------------------------------------------------------------------------

TEST_CASE("theory: Jacobi eigenvalues of hand-computed 2x2 and 3x3 matrices", "[theory]") {
  // [[2, 1], [1, 2]]: eigenvalues 2 -+ 1.
  auto e2 = symmetric_eigenvalues(from_rows({{2, 1}, {1, 2}}));
  REQUIRE(e2.size() == 2);
  CHECK(e2[0] == Approx(1.0).epsilon(1e-14));
  CHECK(e2[1] == Approx(3.0).epsilon(1e-14));
  // The 1-D Laplacian [[2, -1, 0], [-1, 2, -1], [0, -1, 2]]: 2 - 2 cos(k pi / 4), k = 1, 2, 3.
  auto e3 = symmetric_eigenvalues(from_rows({{2, -1, 0}, {-1, 2, -1}, {0, -1, 2}}));
  REQUIRE(e3.size() == 3);
  CHECK(e3[0] == Approx(2 - std::sqrt(2.0)).epsilon(1e-14));
  CHECK(e3[1] == Approx(2.0).epsilon(1e-14));
  CHECK(e3[2] == Approx(2 + std::sqrt(2.0)).epsilon(1e-14));
  // [[0, 1], [1, 0]] is indefinite: -1 and 1. A diagonal matrix is its own answer, sorted.
  auto ei = symmetric_eigenvalues(from_rows({{0, 1}, {1, 0}}));
  CHECK(ei[0] == Approx(-1.0).epsilon(1e-14));
  CHECK(ei[1] == Approx(1.0).epsilon(1e-14));
  CHECK(symmetric_eigenvalues(from_rows({{3, 0, 0}, {0, -5, 0}, {0, 0, 0}})) == std::vector<double>{-5, 0, 3});
}

TEST_CASE("theory: Jacobi eigenvalues keep the trace and the Frobenius norm of a random matrix", "[theory]") {
  const Matrix a = random_symmetric(60, 3);
  const auto e = symmetric_eigenvalues(a);
  double trace = 0, sum = 0, sum_sq = 0;
  for (std::int64_t i = 0; i < a.rows; ++i) trace += a(i, i);
  for (double v : e) sum += v, sum_sq += v * v;
  CHECK(std::is_sorted(e.begin(), e.end()));
  CHECK(sum == Approx(trace).margin(1e-11));                          // trace = sum of eigenvalues
  CHECK(sum_sq == Approx(std::pow(frobenius(a), 2)).epsilon(1e-12));  // ||A||_F^2 = sum of squares
  // The largest eigenvalue of A^T A (PSD) by power iteration against Jacobi.
  Matrix ata(a.rows, a.cols);
  for (std::int64_t i = 0; i < a.rows; ++i)
    for (std::int64_t j = 0; j < a.cols; ++j)
      for (std::int64_t k = 0; k < a.rows; ++k) ata(i, j) += a(k, i) * a(k, j);
  const double top = std::max(e.front() * e.front(), e.back() * e.back());
  CHECK(power_iteration(ata) == Approx(top).epsilon(1e-8));
}

TEST_CASE("theory: Jacobi rejects non-square non-symmetric and non-finite input", "[theory]") {
  require_error([] { symmetric_eigenvalues(Matrix(2, 3)); }, "must be square");
  require_error([] { symmetric_eigenvalues(from_rows({{1, 2}, {0, 1}})); }, "not symmetric");
  require_error([] { symmetric_eigenvalues(from_rows({{1, NAN}, {NAN, 1}})); }, "not finite");
}

// ---- Mardia's kurtosis -------------------------------------------------------------------------

TEST_CASE("theory: Mardia kurtosis of Gaussian samples is within 3 standard errors of p(p+2)", "[theory]") {
  const std::int64_t n = 20000, p = 4;
  Generator gen(11);
  Matrix x = to_matrix(Tensor::normal({n, p}, gen, 0.0, 1.0, DType::Float64));
  for (std::int64_t i = 0; i < n; ++i)
    x(i, 1) += 0.5 * x(i, 0) + 3.0;  // correlated and shifted: b2 is affine invariant
  const double b2 = mardia_kurtosis(x), expected = p * (p + 2.0), se = std::sqrt(8.0 * p * (p + 2) / n);
  INFO("b2 = " << b2 << ", expected " << expected << " +- " << se);
  CHECK(std::fabs(b2 - expected) <= 3 * se);
}

TEST_CASE("theory: Mardia kurtosis of Student-t(5) samples is clearly above p(p+2)", "[theory]") {
  // Multivariate t with 5 degrees of freedom: t = z / sqrt(chi2_5 / 5), one chi2 per row;
  // its population value is p(p+2) (nu-2)/(nu-4) = 72 for p = 4.
  const std::int64_t n = 20000, p = 4, nu = 5;
  Generator gen(12);
  const Matrix z = to_matrix(Tensor::normal({n, p}, gen, 0.0, 1.0, DType::Float64));
  const Matrix g = to_matrix(Tensor::normal({n, nu}, gen, 0.0, 1.0, DType::Float64));
  Matrix t(n, p);
  for (std::int64_t i = 0; i < n; ++i) {
    double chi2 = 0;
    for (std::int64_t k = 0; k < nu; ++k) chi2 += g(i, k) * g(i, k);
    for (std::int64_t j = 0; j < p; ++j) t(i, j) = z(i, j) / std::sqrt(chi2 / static_cast<double>(nu));
  }
  const double b2 = mardia_kurtosis(t), se = std::sqrt(8.0 * p * (p + 2) / n);
  INFO("b2 = " << b2);
  CHECK(b2 > 24 + 20 * se);
}

TEST_CASE("theory: Mardia kurtosis needs more rows than columns and a regular covariance", "[theory]") {
  require_error([] { mardia_kurtosis(Matrix(3, 4)); }, "more rows than columns");
  Matrix x(10, 2);
  for (std::int64_t i = 0; i < 10; ++i) x(i, 0) = x(i, 1) = static_cast<double>(i);  // column 1 = column 0
  require_error([&] { mardia_kurtosis(x); }, "singular");
}

// ---- decomposition (Props. 3.5-3.6) ---------------------------------------------------------

TEST_CASE("theory: symmetric and antisymmetric shares of a hand-computed matrix", "[theory]") {
  // [[1, 2], [0, 1]] = [[1, 1], [1, 1]] + [[0, 1], [-1, 0]]: norms 2 and sqrt 2 of sqrt 6.
  const Decomposition d = decompose(from_rows({{1, 2}, {0, 1}}));
  CHECK(d.sym_share == Approx(2 / std::sqrt(6.0)).epsilon(1e-15));
  CHECK(d.anti_share == Approx(std::sqrt(2.0) / std::sqrt(6.0)).epsilon(1e-15));
  CHECK(d.reconstruction_error == 0.0);
  const SymAnti parts = split_sym_anti(from_rows({{1, 2}, {0, 1}}));
  CHECK(parts.sym.values == std::vector<double>{1, 1, 1, 1});
  CHECK(parts.anti.values == std::vector<double>{0, 1, -1, 0});
}

TEST_CASE("theory: decomposition identities hold exactly on random and real level scores", "[theory]") {
  Generator gen(5);
  const Matrix a = to_matrix(Tensor::normal({50, 50}, gen, 0.0, 1.0, DType::Float64));
  const SymAnti parts = split_sym_anti(a);
  for (std::int64_t i = 0; i < 50; ++i)
    for (std::int64_t j = 0; j < 50; ++j) {
      REQUIRE(parts.sym(i, j) == parts.sym(j, i));     // bitwise
      REQUIRE(parts.anti(i, j) == -parts.anti(j, i));  // bitwise
      // (a + b)/2 + (a - b)/2 = a up to one rounding of each term: 1 ulp of the largest.
      REQUIRE(std::fabs(parts.sym(i, j) + parts.anti(i, j) - a(i, j)) <=
              2.3e-16 * std::max(std::fabs(a(i, j)), std::fabs(a(j, i))));
    }
  const Decomposition d = decompose(a);
  CHECK(d.sym_share * d.sym_share + d.anti_share * d.anti_share == Approx(1.0).epsilon(1e-14));  // orthogonal parts

  // The level scores of a float64 module on a random input.
  Generator g(6);
  HierarchicalAttention attn(small_attention(3), g, DType::Float64);
  randomise(attn, 7);
  const Tensor x = Tensor::normal({1, 23, 16}, g, 0.0, 1.0, DType::Float64);
  for (std::int64_t h = 0; h < 2; ++h) {
    const auto scores = head_level_scores(attn, x, h);
    REQUIRE(scores.size() == 3);
    CHECK(scores[2].rows == 6);  // ceil(23 / 4)
    for (const Matrix& s : scores) {
      const Decomposition ds = decompose(s);
      CHECK(ds.reconstruction_error <= 1e-15);
      CHECK(ds.sym_asymmetry == 0.0);
      CHECK(ds.anti_symmetry_error == 0.0);
    }
  }
}

// ---- PSD (Prop. 3.1) ---------------------------------------------------------------------------

TEST_CASE("theory: lift and fused scores follow the definition", "[theory]") {
  // Lift_1 of [[a, b], [c, d]] to T = 3: [[a, a, b], [a, a, b], [c, c, d]].
  const Matrix lifted = lift(from_rows({{1, 2}, {3, 4}}), 1, 3);
  CHECK(lifted.values == std::vector<double>{1, 1, 2, 1, 1, 2, 3, 3, 4});
  // 0.5 S0 + 0.5 Lift_1(S1), T = 2.
  const Matrix s = fused_scores({from_rows({{2, 0}, {0, 2}}), from_rows({{4}})}, {0.5, 0.5}, 2);
  CHECK(s.values == std::vector<double>{3, 2, 2, 3});
}

TEST_CASE("theory: row centring of hand-computed matrices", "[theory]") {
  // S = m 1^T + C with m = (1, 2, 3) and C = 3I - J (rows summing to 0, eigenvalues 0, 3, 3):
  // the row means are m, S_c = C exactly, and ||S||_F^2 = ||C||_F^2 + 3 ||m||^2 = 18 + 42.
  const RowCentred a = centre_rows(from_rows({{3, 0, 0}, {1, 4, 1}, {2, 2, 5}}), false);
  CHECK(a.row_means == std::vector<double>{1, 2, 3});
  CHECK(a.centred.values == std::vector<double>{2, -1, -1, -1, 2, -1, -1, -1, 2});
  CHECK(a.row_mean_share == Approx(std::sqrt(42.0 / 60.0)).epsilon(1e-15));
  const Spectrum sa = spectrum(split_sym_anti(a.centred).sym);
  CHECK(sa.lambda_min == Approx(0.0).margin(1e-14));
  CHECK(sa.lambda_max == Approx(3.0).epsilon(1e-14));

  // 2x2: [[1, 5], [2, 0]] has row means 3 and 1, S_c = [[-2, 2], [1, -1]] and
  // S_c^sym = [[-2, 1.5], [1.5, -1]] with eigenvalues -1.5 -+ sqrt(0.5^2 + 1.5^2).
  // ||S||_F^2 = 30, the means carry 2 (3^2 + 1^2) = 20 of it.
  const RowCentred b = centre_rows(from_rows({{1, 5}, {2, 0}}), false);
  CHECK(b.centred.values == std::vector<double>{-2, 2, 1, -1});
  CHECK(b.row_mean_share == Approx(std::sqrt(20.0 / 30.0)).epsilon(1e-15));
  const Spectrum sb = spectrum(split_sym_anti(b.centred).sym);
  CHECK(sb.lambda_min == Approx(-1.5 - std::sqrt(2.5)).epsilon(1e-14));
  CHECK(sb.lambda_max == Approx(-1.5 + std::sqrt(2.5)).epsilon(1e-14));
  CHECK(sb.relative_min == Approx(-1.0).epsilon(1e-14));

  // Causal 3x3: row i sees keys 0..i, so the means are 4, (1 + 3)/2 = 2, (0 + 3 + 6)/3 = 3,
  // and the whole row (masked entries too) is shifted: S_c = [[0, 5, 5], [-1, 1, 7],
  // [-3, 0, 3]]. The seen entries' squares sum to 71, the means' part to
  // 1 * 16 + 2 * 4 + 3 * 9 = 51.
  const Matrix s = from_rows({{4, 9, 9}, {1, 3, 9}, {0, 3, 6}});
  const RowCentred c = centre_rows(s, true);
  CHECK(c.row_means == std::vector<double>{4, 2, 3});
  CHECK(c.centred.values == std::vector<double>{0, 5, 5, -1, 1, 7, -3, 0, 3});
  CHECK(c.row_mean_share == Approx(std::sqrt(51.0 / 71.0)).epsilon(1e-15));
  const Spectrum sc = spectrum(split_sym_anti(c.centred).sym);  // [[0, 2, 1], [2, 1, 3.5], [1, 3.5, 3]]
  const auto expected = eigenvalues_3x3(from_rows({{0, 2, 1}, {2, 1, 3.5}, {1, 3.5, 3}}));
  REQUIRE(sc.eigenvalues.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(sc.eigenvalues[i] == Approx(expected[i]).epsilon(1e-13));
  CHECK(expected[0] + expected[1] + expected[2] == Approx(4.0).epsilon(1e-14));  // the trace
  // The softmax of each row over the keys it sees is unchanged.
  for (std::int64_t i = 0; i < 3; ++i) {
    const auto w = softmax_row(s, i, i + 1), wc = softmax_row(c.centred, i, i + 1);
    for (std::size_t j = 0; j < w.size(); ++j) CHECK(wc[j] == Approx(w[j]).epsilon(1e-15));
  }

  // Rows that are constant (S = m 1^T) are all row mean: S_c = 0, share 1. Their symmetric
  // part (m 1^T + 1 m^T) / 2 has rank 2 with eigenvalues (1.m -+ sqrt(n) ||m||) / 2: a
  // negative one unless m is a multiple of 1. m = (1, -2, 4): (3 -+ sqrt(63)) / 2.
  const Matrix shift = from_rows({{1, 1, 1}, {-2, -2, -2}, {4, 4, 4}});
  const RowCentred d = centre_rows(shift, false);
  CHECK(d.centred.values == std::vector<double>(9, 0.0));
  CHECK(d.row_mean_share == Approx(1.0).epsilon(1e-15));
  const Spectrum sd = spectrum(split_sym_anti(shift).sym);
  CHECK(sd.lambda_min == Approx((3 - std::sqrt(63.0)) / 2).epsilon(1e-14));
  CHECK(sd.lambda_max == Approx((3 + std::sqrt(63.0)) / 2).epsilon(1e-14));
  CHECK(sd.eigenvalues[1] == Approx(0.0).margin(1e-14));

  CHECK(centre_rows(Matrix(2, 2), false).row_mean_share == 0.0);  // the zero matrix
  require_error([] { centre_rows(Matrix(2, 3), false); }, "must be square");
}

TEST_CASE("theory: fused score spectra centre each row over the keys its softmax sees", "[theory]") {
  for (const bool causal : {false, true}) {
    Generator g(20);
    HierarchicalAttention attn(small_attention(3, Fusion::Scores, causal), g, DType::Float64);
    randomise(attn, 21);
    const std::int64_t T = 21, n = 13;  // spectra of the leading 13 x 13 block, means over all 21 keys
    const Tensor x = Tensor::normal({1, T, 16}, g, 0.0, 1.0, DType::Float64);
    for (std::int64_t h = 0; h < 2; ++h) {
      INFO((causal ? "causal" : "unmasked") << ", head " << h);
      const FusedSpectra f = fused_score_spectra(attn, x, h, n);
      CHECK(f.positions == n);
      // The raw spectrum is fused_score_spectrum's.
      CHECK(f.raw.eigenvalues == fused_score_spectrum(attn, x, h, n).eigenvalues);
      // S from the level scores, each row's mean over its seen keys removed here, by
      // sums in the other order (j descending) and a separate count.
      const Matrix s = fused_scores(head_level_scores(attn, x, h), level_weights(attn)[static_cast<std::size_t>(h)], T);
      Matrix block(n, n);
      double seen_sq = 0, mean_sq = 0;
      for (std::int64_t i = 0; i < T; ++i) {
        double sum = 0, count = 0;
        for (std::int64_t j = T - 1; j >= 0; --j)
          if (!causal || j <= i) sum += s(i, j), count += 1, seen_sq += s(i, j) * s(i, j);
        mean_sq += count * (sum / count) * (sum / count);
        if (i < n)
          for (std::int64_t j = 0; j < n; ++j) block(i, j) = s(i, j) - sum / count;
      }
      CHECK(f.row_mean_share == Approx(std::sqrt(mean_sq / seen_sq)).epsilon(1e-12));
      Matrix sym(n, n);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j) sym(i, j) = 0.5 * block(i, j) + 0.5 * block(j, i);
      const auto expected = symmetric_eigenvalues(sym);
      REQUIRE(f.centred.eigenvalues.size() == static_cast<std::size_t>(n));
      const double scale = std::max(std::fabs(expected.front()), std::fabs(expected.back()));
      for (std::size_t i = 0; i < expected.size(); ++i)
        CHECK(f.centred.eigenvalues[i] == Approx(expected[i]).margin(1e-12 * scale));
      // Centring changes the scores but not the softmax of any row over its seen keys.
      const RowCentred c = centre_rows(s, causal);
      for (std::int64_t i = 0; i < T; ++i) {
        const std::int64_t seen = causal ? i + 1 : T;
        const auto w = softmax_row(s, i, seen), wc = softmax_row(c.centred, i, seen);
        for (std::size_t j = 0; j < w.size(); ++j) CHECK(wc[j] == Approx(w[j]).epsilon(1e-12).margin(1e-300));
      }
    }
  }
  Generator g(22);
  HierarchicalAttention attn(small_attention(2), g, DType::Float64);
  require_error(
      [&] {
        fused_score_spectra(attn, Tensor::normal({1, 5, 16}, g, 0.0, 1.0, DType::Float64), 0, 0);
      },
      "max_positions must be >= 1");
  require_error(
      [&] {
        fused_score_spectra(attn, Tensor::normal({5, 16}, g, 0.0, 1.0, DType::Float64), 0);
      },
      "one example");
}

TEST_CASE("theory: constructed PSD case with W_K = W_Q gives a PSD S^sym to rounding", "[theory]") {
  const ConstructedPsd c = constructed_psd_case(true);
  // M = W_Q,h^T W_Q,h has rank d_h = 8 < d = 16 and S^sym rank <= 24 < T = 37: lambda_min = 0.
  INFO("M: " << c.worst_m.relative_min << ", S: " << c.worst_s.relative_min);
  CHECK(c.worst_m.relative_min >= -1e-10);
  CHECK(c.worst_m.relative_min <= 1e-10);
  CHECK(c.worst_s.relative_min >= -1e-10);
  CHECK(c.worst_s.relative_min <= 1e-10);
  CHECK(c.worst_s.lambda_max > 0);
}

TEST_CASE("theory: constructed PSD case with W_K = -W_Q is clearly negative", "[theory]") {
  // M^sym = -W_Q,h^T W_Q,h and S^sym are negative semidefinite and nonzero, so lambda_min =
  // -max|lambda|: relative_min = -1 exactly up to rounding.
  const ConstructedPsd c = constructed_psd_case(false);
  CHECK(c.worst_m.relative_min == Approx(-1.0).epsilon(1e-12));
  CHECK(c.worst_s.relative_min == Approx(-1.0).epsilon(1e-12));
  CHECK(c.worst_s.lambda_min < -1.0);  // sums of squares of ~30 normal projections: far from 0

  // lambda_min(M^sym) = -sigma_max(W_Q,h)^2, by power iteration on W_Q,h W_Q,h^T [d_h, d_h].
  AttentionConfig cfg = small_attention(1);
  Generator gen(3);
  HierarchicalAttention attn(cfg, gen, DType::Float64);
  Tensor wq, wk;
  for (const auto& [name, p] : attn.named_parameters()) {
    if (name == "w_q.0.weight") wq = p;
    if (name == "w_k.0.weight") wk = p;
  }
  const Matrix q = to_matrix(wq);
  for (std::size_t i = 0; i < q.values.size(); ++i) wk.data<double>()[i] = -q.values[i];
  for (std::int64_t h = 0; h < 2; ++h) {
    Matrix gram(8, 8);  // rows h*8.. of W_Q: W_h W_h^T
    for (std::int64_t i = 0; i < 8; ++i)
      for (std::int64_t j = 0; j < 8; ++j)
        for (std::int64_t k = 0; k < 16; ++k) gram(i, j) += q(h * 8 + i, k) * q(h * 8 + j, k);
    const Spectrum s = bilinear_form_spectrum(attn, 0, h);
    CHECK(s.lambda_min == Approx(-power_iteration(gram)).epsilon(1e-10));
    CHECK(std::fabs(s.lambda_max) <= 1e-13);  // the other 8 eigenvalues are 0
  }
}

TEST_CASE("theory: bilinear form reproduces the level scores", "[theory]") {
  // S^(l)_h = scale X^(l) M_l,h X^(l)T, with M from the weights and X^(l) from downsample.
  Generator g(8);
  HierarchicalAttention attn(small_attention(2), g, DType::Float64);
  randomise(attn, 9);
  const Tensor x = Tensor::normal({1, 9, 16}, g, 0.0, 1.0, DType::Float64);
  const auto xs = attn.downsample(x, Tensor());
  for (int l = 0; l < 2; ++l)
    for (std::int64_t h = 0; h < 2; ++h) {
      const Matrix m = bilinear_form(attn, l, h);
      const Matrix xl =
          to_matrix(reshape(xs[static_cast<std::size_t>(l)], {xs[static_cast<std::size_t>(l)].shape()[1], 16}));
      const Matrix s = head_level_scores(attn, x, h)[static_cast<std::size_t>(l)];
      for (std::int64_t i = 0; i < xl.rows; ++i)
        for (std::int64_t j = 0; j < xl.rows; ++j) {
          double v = 0;
          for (std::int64_t a = 0; a < 16; ++a)
            for (std::int64_t b = 0; b < 16; ++b) v += xl(i, a) * m(a, b) * xl(j, b);
          CHECK(s(i, j) == Approx(v / std::sqrt(8.0)).margin(1e-12));
        }
    }
}

// ---- subsumption (Prop. 3.4) -----------------------------------------------------------------

TEST_CASE("theory: subsume construction a equals standard attention exactly", "[theory]") {
  Generator g(10);
  for (int source_levels : {1, 3}) {
    HierarchicalAttention source(small_attention(source_levels), g, DType::Float64);
    const Tensor x = Tensor::normal({1, 29, 16}, g, 0.0, 1.0, DType::Float64);
    for (int levels : {2, 3, 4}) {
      const SubsumeStandard r = subsume_standard(source, x, levels);
      INFO("source L = " << source_levels << ", levels " << levels);
      CHECK(r.max_abs_error == 0.0);
      CHECK(r.relative_error == 0.0);
    }
  }
}

TEST_CASE("theory: subsume construction b approaches the lifted causal convolution", "[theory]") {
  Generator g(13);
  HierarchicalAttention source(small_attention(3), g, DType::Float64);
  randomise(source, 14);  // a non-trivial downsampler (taps and bias)
  const std::vector<double> scales{1, 10, 100, 1000};
  for (int level = 0; level < 3; ++level) {
    const ConvolutionLimit limit = subsume_convolution(source, level, scales);
    const auto& errors = limit.errors;
    REQUIRE(errors.size() == 4);
    INFO("level " << level << ": " << errors[0].relative_error << " " << errors[1].relative_error << " "
                  << errors[2].relative_error << " " << errors[3].relative_error);
    CHECK(errors[0].relative_error > 1e-3);  // scale 1 is far from diagonal
    for (std::size_t i = 1; i < errors.size(); ++i) CHECK(errors[i].relative_error <= errors[i - 1].relative_error);
    CHECK(errors.back().relative_error < 1e-6);
  }
  require_error([&] { subsume_convolution(source, 3, scales); }, "level 3 is outside 0..2");
}

// ---- truncation ------------------------------------------------------------------------------

TEST_CASE("theory: truncated output at L equals the module forward and has zero error", "[theory]") {
  for (const Fusion fusion : {Fusion::Scores, Fusion::Outputs})
    for (const bool causal : {false, true}) {
      Generator g(15);
      HierarchicalAttention attn(small_attention(3, fusion, causal), g, DType::Float64);
      randomise(attn, 16);
      const Tensor x = Tensor::normal({1, 21, 16}, g, 0.0, 1.0, DType::Float64);
      NoGradGuard no_grad;
      const Matrix forward = to_matrix(reshape(attn.forward(x, Tensor()), {21, 16}));
      const Matrix full = truncated_output(attn, x, 3);
      double err = 0;
      for (std::size_t i = 0; i < full.values.size(); ++i)
        err = std::max(err, std::fabs(full.values[i] - forward.values[i]));
      INFO(enum_name(fusion) << (causal ? " causal" : ""));
      CHECK(err <= hkt::test::kFusedVsCompositeFloat64);
      const Truncation t = truncation_errors(attn, {x, Tensor::normal({1, 12, 16}, g, 0.0, 1.0, DType::Float64)});
      REQUIRE(t.errors.size() == 3);
      CHECK(t.errors[2] == 0.0);
      CHECK(t.errors[0] > 0.0);
    }
}

TEST_CASE("theory: truncating to one level is standard attention", "[theory]") {
  // L' = 1 keeps alpha' = (1): the standard attention of W_Q^(0), W_K^(0), W_V, W_O.
  Generator g(17);
  HierarchicalAttention attn(small_attention(3), g, DType::Float64);
  randomise(attn, 18);
  AttentionConfig one = small_attention(1);
  HierarchicalAttention mha(one, g, DType::Float64);
  copy_parameters(attn, mha);
  const Tensor x = Tensor::normal({1, 14, 16}, g, 0.0, 1.0, DType::Float64);
  NoGradGuard no_grad;
  const Matrix expected = to_matrix(reshape(mha.forward(x, Tensor()), {14, 16}));
  const Matrix got = truncated_output(attn, x, 1);
  for (std::size_t i = 0; i < got.values.size(); ++i) CHECK(got.values[i] == Approx(expected.values[i]).margin(1e-12));
  require_error([&] { truncated_output(attn, x, 4); }, "outside 1..3");
}

TEST_CASE("theory: geometric rate of an exact geometric sequence", "[theory]") {
  CHECK(geometric_rate({1, 2, 3}, {3 * 0.5, 3 * 0.25, 3 * 0.125}) == Approx(0.5).epsilon(1e-14));
  CHECK(std::isnan(geometric_rate({1}, {0.3})));
}

// ---- everything together -------------------------------------------------------------------

TEST_CASE("theory: analyse runs every check on a small float64 classifier", "[theory]") {
  ClassifierConfig c;
  c.vocab_size = 9;
  c.max_len = 40;
  c.num_classes = 2;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = 2;
  c.d_ff = 24;
  c.attention = AttentionKind::Hkt;
  c.hkt.levels = 3;
  Generator gen(19);
  Classifier model(c, gen, DType::Float64);
  data::Dataset split;
  split.name = "toy";
  split.split = "val";
  split.max_len = 40;
  split.vocab_size = 9;
  split.num_classes = 2;
  split.add_tokens({1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 2, 2, 3, 1, 4, 5, 8, 7, 6, 3, 2, 1, 1, 2, 3}, 0);
  split.add_tokens({8, 7, 6, 5, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1, 3, 3, 4, 5, 6, 7}, 1);
  split.add_tokens({1, 1, 1}, 1);
  Options o;
  o.examples = 2;
  const config::Json r = analyse(model, split, o);
  CHECK(r["inputs"]["lengths"] == config::Json::array({31, 22}));
  CHECK(r["psd"]["bilinear_forms"].size() == 2 * 2 * 3);
  CHECK(r["psd"]["fused_scores"].size() == 2 * 2 * 2);
  CHECK(r["psd"]["alpha_nonnegative"] == true);
  CHECK(r["psd"]["constructed"]["holds"]["s"]["psd"] == true);
  CHECK(r["psd"]["constructed"]["fails"]["s"]["psd"] == false);
  for (const auto& f : r["psd"]["fused_scores"]) {
    CHECK(f["centred"]["lambda_min"].get<double>() <= f["centred"]["lambda_max"].get<double>());
    CHECK(f["row_mean_share"].get<double>() >= 0.0);
    CHECK(f["row_mean_share"].get<double>() <= 1.0);
  }
  CHECK(r["decompose"]["levels"].size() == 2 * 2 * 3);
  CHECK(r["decompose"]["max_sym_asymmetry"] == 0.0);
  CHECK(r["subsume"]["standard"]["max_abs_error"] == 0.0);
  CHECK(r["subsume"]["convolution"]["levels"].size() == 3);
  CHECK(r["kurtosis"].size() == 2 * 3 * 2);
  CHECK(r["kurtosis"][0]["gaussian"] == 80.0);  // p = 8: 8 * 10
  REQUIRE(r["truncate"].size() == 2);
  CHECK(r["truncate"][0]["errors"][2] == 0.0);

  data::Dataset empty = split.subset({}, "val");
  require_error([&] { analyse(model, empty, o); }, "split is empty");
}
