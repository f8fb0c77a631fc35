// vector_math.h: the elementwise exp and the row sums inside the fused attention tiles,
// and the erfc of GELU (engine/ops/unary.cpp), written so that the compiler turns them
// into SIMD code.
//
// ---- fast_exp ----

// Why: std::exp(float) is a call into libm per element, which no loop around it can
// vectorise without -ffast-math (which we cannot use: the masks are -inf). In the fused
// op's forward and backward it took 13 % of a training step (perf, `hkt bench step`,
// MHA, T = 1024). This version is branch-free arithmetic on one float, so a loop of it
// becomes SIMD code (16 lanes with AVX-512).
//
// Method (Cody & Waite range reduction, as in every libm): x = n ln2 + r with n =
// round(x / ln2) and |r| <= ln2 / 2, ln2 split into a high part with few mantissa bits
// (n * kLn2Hi is exact) and a low part; exp(r) by a degree-6 polynomial; 2^n built in the
// exponent bits. The polynomial interpolates exp at the 7 Chebyshev nodes of
// [-ln2/2, ln2/2] (coefficients solved in double by tools/exp_coefficients.py), which
// makes it nearly minimax: relative error 2.5e-9 over the interval, the same as the
// degree-7 Taylor polynomial it replaced, with one multiply-add less per element
// (exp_shifted_sum on 128 x 256 tiles, one thread, AMD EPYC with AVX2: 0.79 -> 0.67 ns
// an element with this polynomial and the integer 2^n below).
// Accuracy: within 2 ulp of the exact value for x in [-87, 88] (measured 1.02;
// tests/test_attention_tiles.cpp checks it against double-precision exp over that
// range). Below -87 (including -inf, a masked score) it returns exactly 0, as the masks
// need (the true value there is below 1.7e-38); above 88 +inf; NaN stays NaN. Softmax
// inputs here are s - max <= 0, so only the lower end matters in practice.
//
// Every step is branch-free: the clamps are written `x < lo ? lo : x`, which a NaN passes
// through (the comparison is false), so a NaN input reaches the result through the
// arithmetic with no separate isnan select.
//
// double keeps std::exp: the float64 path is the test reference, not the fast path.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "common/lane_sums.h"

namespace hkt::attention {

inline float fast_exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;      // ln 2 to 16 bits: n * kLn2Hi is exact for |n| < 2^8
  constexpr float kLn2Lo = 1.428606765330187e-06f;  // ln 2 - kLn2Hi
  // Clamp so that n stays in the range of a normal float's exponent; the result for
  // the clamped inputs is replaced below. A NaN passes both clamps unchanged.
  float xc = x < -87.0f ? -87.0f : x;
  xc = xc > 88.0f ? 88.0f : xc;
  // Round to nearest: adding 1.5 * 2^23 pushes the fraction bits out of the mantissa
  // (|xc * log2e| < 2^22), so t = 1.5 * 2^23 + n exactly, and subtracting it back leaves
  // n. Plain float arithmetic, unlike std::nearbyint, so the loop still vectorises.
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  const float t = xc * kLog2e + kRound;
  const float n = t - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  // exp(r), |r| <= ln2 / 2, in Horner form (coefficients: tools/exp_coefficients.py,
  // rounded to float; c1 and c2 round to exactly 1 and 0.5).
  float p = 0.0013941108f;
  p = p * r + 0.0083751264f;
  p = p * r + 0.041666353f;
  p = p * r + 0.16666416f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n: n + 127 in the exponent field of a float (n in [-126, 127] after the clamp).
  // t's bits are those of 1.5 * 2^23 (0x4B400000) plus n, so n + 127 is an integer
  // subtraction away, with no float-to-integer conversion. Unsigned, so that the bits of
  // a NaN (which may have the sign bit set) wrap instead of shifting a negative int.
  const float two_n = std::bit_cast<float>((std::bit_cast<std::uint32_t>(t) - (0x4B400000u - 127u)) << 23);
  float y = p * two_n;
  y = x < -87.0f ? 0.0f : y;  // exp(-inf) and underflow: exactly 0
  return x > 88.0f ? INFINITY : y;
}

inline double fast_exp(double x) { return std::exp(x); }

// ---- fast_erfc ----
// Why: GELU's forward and backward call erf once per element; std::erf(float) is a libm
// call, so those loops stay scalar (GELU was 6 % of an MHA training step with d_ff = 256,
// perf, `hkt bench step`). This is branch-free arithmetic around fast_exp, so the loops
// vectorise.
//
// Method: the Chebyshev fit of Numerical Recipes (Press et al., 2nd ed., section 6.2,
// erfcc): for z >= 0, with t = 1 / (1 + z/2),
//   erfc(z) = t exp(-z^2 + P(t)),  P a degree-9 polynomial,
// with fractional error below 1.2e-7 for every z >= 0 (4e-7 + 6e-8 z^2 once evaluated in
// float: the rounding of z^2 moves the exponent; 4e-7 + 1.2e-7 z^2 in a build without
// FMA, where P(t) - z^2 takes two roundings instead of one); erfc(-z) = 2 - erfc(z). Being a
// relative bound on erfc itself (not on erf), it stays accurate in the tail, where
// 1 + erf(x) = erfc(-x) loses all its digits to cancellation when formed from erf.
// tests/test_attention_tiles.cpp checks it against double-precision erfc.
inline float fast_erfc(float z) {
  const float a = std::fabs(z);
  const float t = 1.0f / (1.0f + 0.5f * a);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float tail = t * fast_exp(p - a * a);  // erfc(|z|); 0 once -z^2 < -87 (true value < 1e-38)
  return z >= 0.0f ? tail : 2.0f - tail;       // NaN: the comparison fails and 2 - NaN is NaN
}

// ---- lane sums ----
// sum_lanes, dot_lanes and dot3_lanes live in kernels/common/lane_sums.h (shared with the
// CUDA backend, which explains the lanes); exp_shifted_sum and max_lanes below are the
// CPU attention's own.
using fn::dot3_lanes;
using fn::dot_lanes;
using fn::dot_lanes_f64;
using fn::kLanes;
using fn::sum_lanes;

/// x[i] = fast_exp(x[i] - shift) for i < n, and returns sum_lanes of the new values: the
/// same values and the same sum, in the same order, as that loop followed by sum_lanes,
/// in one pass over x instead of two (the forward's p = exp(s - m) and its row sum).
template <class E>
E exp_shifted_sum(E* x, std::int64_t n, E shift) {
  E lane[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::int64_t j = 0; j < kLanes; ++j) {
      const E e = fast_exp(x[i + j] - shift);
      x[i + j] = e;
      lane[j] += e;
    }
  E s = 0;
  for (std::int64_t j = 0; j < kLanes; ++j) s += lane[j];
  for (; i < n; ++i) {
    x[i] = fast_exp(x[i] - shift);
    s += x[i];
  }
  return s;
}

/// y[i] += alpha x[i], i < n (y and x do not overlap).
template <class E>
void add_scaled(E* __restrict y, const E* __restrict x, E alpha, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

/// max_i x[i], i < n (-inf for n = 0). The maximum is exact in any order, so an OpenMP
/// simd reduction may reorder it freely (the lanes trick of the sums is not needed, and
/// the compiler did not vectorise it for a select). A NaN input may or may not survive,
/// as with std::max; the scores here are never NaN.
template <class E>
E max_lanes(const E* x, std::int64_t n) {
  E m = -std::numeric_limits<E>::infinity();
#pragma omp simd reduction(max : m)
  for (std::int64_t i = 0; i < n; ++i) m = m < x[i] ? x[i] : m;
  return m;
}

}  // namespace hkt::attention
