// test_attention_tiles.cpp: the inner building blocks of the fused attention op against
// independent references: tile_gemm (C += alpha A B through register_gemm or BLAS),
// tile_gemm_tn and tile_gemm_loop against float64 triple loops, register_gemm and
// cpu::blas_gemm (its fallback) against long double ones; fast_exp against
// double-precision std::exp, in float ulps, with its special values; fast_erfc against
// std::erfc in double; exp_shifted_sum against double exp and sums; sum_lanes and
// dot_lanes against float64 sums.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/vector_math.h"
#include "attention/tile_gemm.h"

using hkt::attention::fast_erfc;
using hkt::attention::fast_exp;
using hkt::attention::tile_gemm;
using hkt::attention::tile_gemm_loop;
using hkt::attention::tile_gemm_set;

TEST_CASE(
    "tile_gemm and tile_gemm_loop: C += alpha A B equal a float64 triple loop for every row remainder and "
    "leading dimension",
    "[attention][tiles]") {
  // m = 1..9 covers 0-3 leftover rows after the blocks of four; lda, ldb, ldc larger than
  // the used widths check that no element outside the tile is read or written.
  for (std::int64_t m = 1; m <= 9; ++m) {
    const std::int64_t n = 13, k = 7, lda = k + 3, ldb = n + 2, ldc = n + 5;
    std::vector<double> A(static_cast<std::size_t>(m * lda)), B(static_cast<std::size_t>(k * ldb)),
        C(static_cast<std::size_t>(m * ldc));
    for (std::size_t i = 0; i < A.size(); ++i) A[i] = std::sin(0.7 * static_cast<double>(i) + 0.1);
    for (std::size_t i = 0; i < B.size(); ++i) B[i] = std::cos(0.3 * static_cast<double>(i));
    for (std::size_t i = 0; i < C.size(); ++i) C[i] = 0.01 * static_cast<double>(i);
    std::vector<double> expected = C;
    const double alpha = -1.5;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (std::int64_t p = 0; p < k; ++p)
          s += A[static_cast<std::size_t>(i * lda + p)] * B[static_cast<std::size_t>(p * ldb + j)];
        expected[static_cast<std::size_t>(i * ldc + j)] += alpha * s;
      }
    std::vector<float> Af(A.begin(), A.end()), Bf(B.begin(), B.end()), Cf(C.begin(), C.end());
    std::vector<double> C_loop = C;
    std::vector<float> Cf_loop = Cf;
    tile_gemm(m, n, k, alpha, A.data(), lda, B.data(), ldb, C.data(), ldc);
    tile_gemm(m, n, k, static_cast<float>(alpha), Af.data(), lda, Bf.data(), ldb, Cf.data(), ldc);
    tile_gemm_loop<double>(m, n, k, alpha, A.data(), lda, B.data(), ldb, C_loop.data(), ldc);
    tile_gemm_loop<float>(m, n, k, static_cast<float>(alpha), Af.data(), lda, Bf.data(), ldb, Cf_loop.data(), ldc);
    for (std::size_t i = 0; i < C.size(); ++i) {
      INFO("m " << m << " element " << i);
      REQUIRE(C[i] == Approx(expected[i]).margin(1e-12));       // register_gemm or BLAS
      REQUIRE(C_loop[i] == Approx(expected[i]).margin(1e-12));  // the loop
      REQUIRE(Cf[i] == Approx(expected[i]).margin(1e-5));       // |alpha A B| <= 1.5 * 7: float rounding ~1e-6
      REQUIRE(Cf_loop[i] == Approx(expected[i]).margin(1e-5));
    }
  }
}

TEST_CASE("tile_gemm_set: C = alpha A B overwrites the tile without reading it, and touches nothing outside it",
          "[attention][tiles]") {
  // C starts as NaN inside the tile (a read would leave NaN) and as a sentinel outside it
  // (ldc > n); k = 0 must write zeros.
  for (std::int64_t k : {0, 1, 7}) {
    const std::int64_t m = 5, n = 6, lda = 8, ldb = 9, ldc = 10;
    std::vector<double> A(static_cast<std::size_t>(m * lda)),
        B(static_cast<std::size_t>(std::max<std::int64_t>(k, 1) * ldb));
    for (std::size_t i = 0; i < A.size(); ++i) A[i] = std::sin(0.9 * static_cast<double>(i));
    for (std::size_t i = 0; i < B.size(); ++i) B[i] = std::cos(0.4 * static_cast<double>(i) + 0.2);
    for (bool single : {false, true}) {
      INFO("k " << k << (single ? " float" : " double"));
      std::vector<double> C(static_cast<std::size_t>(m * ldc), -7.0);
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) C[static_cast<std::size_t>(i * ldc + j)] = std::nan("");
      std::vector<double> got;
      if (single) {
        std::vector<float> Af(A.begin(), A.end()), Bf(B.begin(), B.end()), Cf(C.begin(), C.end());
        tile_gemm_set(m, n, k, 2.0f, Af.data(), lda, Bf.data(), ldb, Cf.data(), ldc);
        got.assign(Cf.begin(), Cf.end());
      } else {
        got = C;
        tile_gemm_set(m, n, k, 2.0, A.data(), lda, B.data(), ldb, got.data(), ldc);
      }
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < ldc; ++j) {
          double expected = -7.0;  // outside the tile: untouched
          if (j < n) {
            expected = 0.0;
            for (std::int64_t p = 0; p < k; ++p)
              expected += 2.0 * A[static_cast<std::size_t>(i * lda + p)] * B[static_cast<std::size_t>(p * ldb + j)];
          }
          REQUIRE(got[static_cast<std::size_t>(i * ldc + j)] == Approx(expected).margin(single ? 1e-5 : 1e-12));
        }
    }
  }
}

TEST_CASE("fast_exp: float within 2 ulp of exp over [-87, 88], 0 below, inf above, NaN kept, double is std::exp",
          "[attention][tiles]") {
  double worst_ulps = 0;
  for (double x = -87.0; x <= 88.0; x += 1.0 / 1024.0 + 1e-7) {  // ~180,000 points, off the binary grid
    const auto xf = static_cast<float>(x);
    const double exact = std::exp(static_cast<double>(xf));
    const auto exact_f = static_cast<float>(exact);
    const double ulp = static_cast<double>(std::nextafter(exact_f, std::numeric_limits<float>::infinity()) - exact_f);
    worst_ulps = std::max(worst_ulps, std::fabs(static_cast<double>(fast_exp(xf)) - exact) / ulp);
  }
  CHECK(worst_ulps <= 2.0);
  CHECK(fast_exp(0.0f) == 1.0f);
  CHECK(fast_exp(-std::numeric_limits<float>::infinity()) == 0.0f);  // a masked score
  CHECK(fast_exp(-100.0f) == 0.0f);
  CHECK(fast_exp(100.0f) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(fast_exp(std::numeric_limits<float>::quiet_NaN())));
  CHECK(fast_exp(1.0) == std::exp(1.0));
}

TEST_CASE(
    "fast_erfc: within (4e-7 + c z^2) relative of erfc for |z| <= 9 (c = 6e-8 with FMA, 1.2e-7 without), limits and "
    "NaN",
    "[attention][tiles]") {
  // Numerical Recipes bounds the fit's error by 1.2e-7; float rounding of t and the
  // polynomial adds a few ulp (6e-8 each), and the exponent -z^2 + P(t), rounded to
  // float, is off by up to half an ulp of z^2, about 6e-8 z^2 in absolute terms, which exp
  // turns into that relative error (4e-6 at z = 9, where erfc is 4e-37). That is one
  // rounding, where the compiler contracts P(t) - z * z into a fused multiply-add; a build
  // without FMA (no -march=native on x86-64: the sanitizer build) rounds z * z and then
  // the difference, twice the error (measured 1.72 times the FMA bound at z = 8.04).
  // Beyond z = 9.2, erfc is below float's smallest normal and fast_exp gives 0.
#if defined(__FMA__)
  const double c = 6e-8;
#else
  const double c = 1.2e-7;
#endif
  double worst = 0;                                            // the largest error as a fraction of the bound
  for (double z = -9.0; z <= 9.0; z += 1.0 / 4096.0 + 1e-7) {  // ~74,000 points
    const auto zf = static_cast<float>(z);
    const double exact = std::erfc(static_cast<double>(zf));
    const double bound = 4e-7 + c * z * z;
    worst = std::max(worst, std::fabs(static_cast<double>(fast_erfc(zf)) - exact) / exact / bound);
  }
  INFO("worst error as a fraction of the bound: " << worst);
  CHECK(worst <= 1.0);
  CHECK(fast_erfc(0.0f) == Approx(1.0).epsilon(2e-7));
  CHECK(fast_erfc(std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(fast_erfc(-std::numeric_limits<float>::infinity()) == 2.0f);
  CHECK(fast_erfc(20.0f) == 0.0f);
  CHECK(std::isnan(fast_erfc(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("tile_gemm_tn: C += alpha A^T B (A stored k x m) equals a float64 triple loop", "[attention][tiles]") {
  using hkt::attention::tile_gemm_tn;
  for (std::int64_t m : {1, 5, 64}) {
    const std::int64_t n = 11, k = 9, lda = m + 3, ldb = n + 1, ldc = n + 4;
    std::vector<double> A(static_cast<std::size_t>(k * lda)), B(static_cast<std::size_t>(k * ldb)),
        C(static_cast<std::size_t>(m * ldc));
    for (std::size_t i = 0; i < A.size(); ++i) A[i] = std::sin(1.3 * static_cast<double>(i));
    for (std::size_t i = 0; i < B.size(); ++i) B[i] = std::cos(0.9 * static_cast<double>(i) + 0.2);
    for (std::size_t i = 0; i < C.size(); ++i) C[i] = -0.02 * static_cast<double>(i);
    std::vector<double> expected = C;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (std::int64_t p = 0; p < k; ++p)
          s += A[static_cast<std::size_t>(p * lda + i)] * B[static_cast<std::size_t>(p * ldb + j)];
        expected[static_cast<std::size_t>(i * ldc + j)] += 0.5 * s;
      }
    std::vector<float> Af(A.begin(), A.end()), Bf(B.begin(), B.end()), Cf(C.begin(), C.end());
    tile_gemm_tn(m, n, k, 0.5, A.data(), lda, B.data(), ldb, C.data(), ldc);
    tile_gemm_tn(m, n, k, 0.5f, Af.data(), lda, Bf.data(), ldb, Cf.data(), ldc);
    for (std::size_t i = 0; i < C.size(); ++i) {
      INFO("m " << m << " element " << i);
      REQUIRE(C[i] == Approx(expected[i]).margin(1e-12));
      REQUIRE(Cf[i] == Approx(expected[i]).margin(1e-5));
    }
  }
}

TEST_CASE(
    "sum_lanes, dot_lanes, dot3_lanes, max_lanes: equal float64 sums and the exact max for every length around the "
    "lane count",
    "[attention][tiles]") {
  using hkt::attention::dot_lanes;
  using hkt::attention::sum_lanes;
  for (std::int64_t n : {0, 1, 15, 16, 17, 33, 64, 100}) {
    std::vector<double> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(n));
    double sum = 0, dot = 0, dot3 = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      a[static_cast<std::size_t>(i)] = std::sin(0.37 * static_cast<double>(i) + 1.0);
      b[static_cast<std::size_t>(i)] = 1.0 + 0.01 * static_cast<double>(i);
      sum += a[static_cast<std::size_t>(i)];
      dot += a[static_cast<std::size_t>(i)] * b[static_cast<std::size_t>(i)];
      dot3 += a[static_cast<std::size_t>(i)] * b[static_cast<std::size_t>(i)] * a[static_cast<std::size_t>(i)];
    }
    std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end());
    INFO("n " << n);
    CHECK(sum_lanes(a.data(), n) == Approx(sum).margin(1e-13));
    double max = -std::numeric_limits<double>::infinity();
    for (double x : a) max = std::max(max, x);
    CHECK(hkt::attention::max_lanes(a.data(), n) == max);  // exact
    CHECK(hkt::attention::max_lanes(af.data(), n) == static_cast<float>(max));
    CHECK(dot_lanes(a.data(), b.data(), n) == Approx(dot).margin(1e-13));
    CHECK(static_cast<double>(sum_lanes(af.data(), n)) == Approx(sum).margin(1e-5));
    CHECK(static_cast<double>(dot_lanes(af.data(), bf.data(), n)) == Approx(dot).margin(1e-5));
    CHECK(hkt::attention::dot3_lanes(a.data(), b.data(), a.data(), n) == Approx(dot3).margin(1e-13));
    CHECK(static_cast<double>(hkt::attention::dot3_lanes(af.data(), bf.data(), af.data(), n)) ==
          Approx(dot3).margin(1e-5));
  }
}

TEST_CASE(
    "exp_shifted_sum: the values and the sum of exp(x - shift), a masked -inf giving 0, for every length around the "
    "lane count",
    "[attention][tiles]") {
  using hkt::attention::exp_shifted_sum;
  for (std::int64_t n : {0, 1, 15, 16, 17, 33, 64, 100}) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i)
      x[static_cast<std::size_t>(i)] = static_cast<float>(3.0 * std::sin(0.37 * static_cast<double>(i)));
    if (n > 5) x[5] = -std::numeric_limits<float>::infinity();  // a masked score
    const float shift = 2.5f;
    double exact_sum = 0;
    std::vector<double> exact(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      exact[i] = std::exp(static_cast<double>(x[i] - shift));  // of the float difference, as the code takes it
      exact_sum += exact[i];
    }
    const float sum = exp_shifted_sum(x.data(), n, shift);
    INFO("n " << n);
    for (std::size_t i = 0; i < x.size(); ++i)
      CHECK(static_cast<double>(x[i]) == Approx(exact[i]).epsilon(2.5e-7).margin(1e-30));  // fast_exp: 2 ulp
    if (n > 5) CHECK(x[5] == 0.0f);
    CHECK(static_cast<double>(sum) == Approx(exact_sum).epsilon(1e-6).margin(1e-30));
  }
}

TEST_CASE("exp_shifted_sum: a NaN stays NaN, -inf gives 0 and overflow +inf inside the vectorised loop",
          "[attention][tiles]") {
  // fast_exp has no isnan select: a NaN reaches its result through the arithmetic (the
  // clamps let it pass). Checked here in the SIMD loop (64 elements: whole lane groups),
  // where the compiler's choice of min/max instructions decides what a NaN becomes.
  using hkt::attention::exp_shifted_sum;
  std::vector<float> x(64, 0.5f);
  x[21] = std::numeric_limits<float>::quiet_NaN();
  x[40] = -std::numeric_limits<float>::infinity();
  x[50] = 100.0f;  // 100 - 1 = 99 > 88: +inf
  x[60] = -90.0f;  // below -87 after the shift: exactly 0
  const float sum = exp_shifted_sum(x.data(), static_cast<std::int64_t>(x.size()), 1.0f);
  CHECK(std::isnan(x[21]));
  CHECK(x[40] == 0.0f);
  CHECK(x[50] == std::numeric_limits<float>::infinity());
  CHECK(x[60] == 0.0f);
  CHECK(static_cast<double>(x[0]) == Approx(std::exp(-0.5)).epsilon(2.5e-7));  // 2 ulp
  CHECK(std::isnan(sum));
}

// A tile product with register_gemm's contract (C = alpha op(A) B, + C when accumulating)
// against a triple loop in long double, over every shape class register_gemm's blocks
// split a product into: rows in blocks of 6, the last 7 or 8 as 4 + 3 or 4 + 4, and 1 to
// 6 otherwise (m = 1..14); columns in blocks of two vectors and a masked tail of 1 to
// 2W - 1 (W = 8 floats, 4 doubles: n = 1..17 covers every tail of both); k from 0 (an
// empty sum) past the 4-step unroll with every remainder; A or A^T, overwrite or
// accumulate; and m or n = 0.
// Where a wrong index would land:
// - A's padding (columns past k, or past m for A^T, and one row past m) is NaN, which
//   would reach the result; C starts as NaN inside the tile when overwriting (a read of it
//   would leave NaN);
// - C has a sentinel row above and below the tile and sentinel columns past n, all of
//   which must be untouched (a row block one row too tall writes the row below);
// - B's allocation ends right after its last row's n elements, so an unmasked read past
//   n in B's last row leaves the allocation (caught by the sanitizer build).
template <class E, class Product>
void check_tile_product(Product product) {
  const double nan = std::nan("");
  // Each of the k + 2 roundings (k partial sums, alpha's product, the add to C) is at most
  // one unit of E in the magnitude the sum passes through; the reference's own rounding
  // (long double, 2^-64) is far below that.
  const double unit = std::ldexp(1.0, -std::numeric_limits<E>::digits);
  const double alpha = -1.5;
  for (bool trans_a : {false, true})
    for (bool accumulate : {false, true})
      for (std::int64_t m = 0; m <= 14; ++m)
        for (std::int64_t n : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 23, 24, 31, 32, 33, 40})
          for (std::int64_t k : {0, 1, 2, 3, 4, 5, 6, 8, 9, 37}) {
            if ((m == 0 || n == 0) && k != 3) continue;  // an empty C: one k is enough
            INFO((trans_a ? "A^T" : "A") << (accumulate ? " accumulate" : " overwrite") << " m " << m << " n " << n
                                         << " k " << k);
            // A stored [m x k] (lda = k + 2, plus a row) or [k x m] (lda = m + 3); B [k x n],
            // ldb = n + 1; C [m x n], ldc = n + 4, at row 1 of m + 2 rows.
            const std::int64_t a_rows = trans_a ? k : m + 1, a_cols = trans_a ? m : k;
            const std::int64_t lda = a_cols + (trans_a ? 3 : 2), ldb = n + 1, ldc = n + 4;
            std::vector<E> A(static_cast<std::size_t>(std::max<std::int64_t>(a_rows, 1) * lda), static_cast<E>(nan));
            std::vector<E> B(static_cast<std::size_t>(k == 0 ? 1 : (k - 1) * ldb + n), static_cast<E>(nan));
            std::vector<E> C(static_cast<std::size_t>((m + 2) * ldc), E(-7));
            E* tile = C.data() + ldc;  // C's row i is tile + i * ldc
            for (std::int64_t r = 0; r < (trans_a ? k : m); ++r)
              for (std::int64_t c = 0; c < a_cols; ++c)
                A[static_cast<std::size_t>(r * lda + c)] =
                    static_cast<E>(std::sin(0.7 * static_cast<double>(r * lda + c) + 0.1));
            for (std::int64_t p = 0; p < k; ++p)
              for (std::int64_t j = 0; j < n; ++j)
                B[static_cast<std::size_t>(p * ldb + j)] =
                    static_cast<E>(std::cos(0.3 * static_cast<double>(p * ldb + j)));
            for (std::int64_t i = 0; i < m; ++i)
              for (std::int64_t j = 0; j < n; ++j)
                tile[i * ldc + j] =
                    accumulate ? static_cast<E>(0.01 * static_cast<double>(i * ldc + j)) : static_cast<E>(nan);
            const std::vector<E> C0 = C;
            product(trans_a, m, n, k, static_cast<E>(alpha), A.data(), lda, B.data(), ldb, accumulate, tile, ldc);
            for (std::int64_t row = 0; row < m + 2; ++row)
              for (std::int64_t j = 0; j < ldc; ++j) {
                const auto at = static_cast<std::size_t>(row * ldc + j);
                const std::int64_t i = row - 1;  // the row of the tile
                INFO("row " << i << " column " << j);
                if (i < 0 || i >= m || j >= n) {  // outside the tile: untouched
                  REQUIRE(C[at] == E(-7));
                  continue;
                }
                long double s = 0, magnitude = 0;
                for (std::int64_t p = 0; p < k; ++p) {
                  const long double a =
                      trans_a ? A[static_cast<std::size_t>(p * lda + i)] : A[static_cast<std::size_t>(i * lda + p)];
                  const long double b = B[static_cast<std::size_t>(p * ldb + j)];
                  s += a * b;
                  magnitude += std::fabs(a * b);
                }
                const long double c0 = accumulate ? static_cast<long double>(C0[at]) : 0.0L;
                const long double expected = c0 + static_cast<long double>(alpha) * s;
                const long double bound = static_cast<long double>(unit) * static_cast<long double>(k + 2) *
                                          (std::fabs(alpha) * magnitude + std::fabs(c0));
                REQUIRE(std::fabs(static_cast<long double>(C[at]) - expected) <= bound);
              }
          }
}

TEST_CASE(
    "register_gemm: C = alpha op(A) B (+ C) within rounding of a long double triple loop for every block remainder, "
    "touching only C's tile",
    "[attention][tiles]") {
#if HKT_REGISTER_GEMM
  if (hkt::attention::register_gemm_available()) {
    const auto product = [](auto&&... args) { hkt::attention::register_gemm(args...); };
    check_tile_product<float>(product);
    check_tile_product<double>(product);
    return;
  }
#endif
  WARN("skipped: this CPU has no AVX2 and FMA (or is not x86-64), so the tiles use BLAS (tested below)");
}

TEST_CASE("cpu::blas_gemm, the tiles' product on CPUs without AVX2: the same contract as register_gemm",
          "[attention][tiles]") {
  // tile_product calls BLAS only where register_gemm cannot run, so on an AVX2 machine
  // this is what tests that path.
  const auto product = [](bool trans_a, auto m, auto n, auto k, auto alpha, auto A, auto lda, auto B, auto ldb,
                          bool accumulate, auto C, auto ldc) {
    hkt::cpu::blas_gemm(trans_a, false, m, n, k, alpha, A, lda, B, ldb, accumulate, C, ldc);
  };
  check_tile_product<float>(product);
  check_tile_product<double>(product);
}
