// tolerances.h: every numerical tolerance the tests use, in one table, each with the
// reason it is what it is. Raising one is a change to justify in the commit message.
#pragma once

namespace hkt::test {

struct Tolerance {
  double atol;  // absolute
  double rtol;  // relative to the expected value
  const char* reason;
};

/// Float64 results of our ops against float64 references computed another way (by
/// hand, by a float64 formula, by PyTorch in float64): only the order of additions
/// differs, a few ulps of 2.2e-16 on values of order 1.
inline constexpr Tolerance kFloat64Exact{1e-12, 1e-12, "float64 vs float64: summation order only"};

/// Float32 forward results against float64 references: float32 rounding (6e-8
/// relative per operation), amplified at most ~10x by the short op chains tested.
inline constexpr Tolerance kFloat32VsFloat64{1e-6, 1e-5, "float32 rounding of short op chains"};

/// Finite-difference gradient checks in float64 (eps 1e-6): PyTorch's gradcheck
/// defaults. Truncation error ~eps^2 |f'''| ~ 1e-12 and rounding ~1e-16/eps ~ 1e-10.
inline constexpr Tolerance kGradcheck{1e-5, 1e-3, "PyTorch gradcheck defaults (central differences, eps 1e-6)"};

/// Float32 analytic gradients against float64 finite differences (hkt gradcheck
/// --dtype f32): float32 rounding of the backward chain dominates (~1e-6 relative
/// per op over sums of up to ~100 terms).
inline constexpr Tolerance kGradcheckFloat32{1e-3, 1e-2, "float32 backward vs float64 differences"};

/// Sample statistics of n = 100000 random numbers: the standard error of a mean of
/// unit-variance samples is 1/sqrt(n) = 3.2e-3; 5 standard errors = 0.016.
inline constexpr Tolerance kSampleMoments{0.016, 0.0, "5 standard errors of a mean over 1e5 samples"};

/// Fused attention against the composite of engine ops, both float64, error relative to
/// the tensor's magnitude (floored at 1e-3, see test_hkt_attention_core.cpp): the two
/// sum the same terms in different orders (tiles, online softmax rescaling), a few
/// hundred ulps at most over T <= 130 keys. The bound this project sets for the fused CPU op.
inline constexpr double kFusedVsCompositeFloat64 = 1e-10;

/// Fused float32 against float64 truth, compared with the composite float32 error:
/// FlashAttention's criterion, "at most twice the error of an unfused computation in
/// the same precision", plus a floor of 1e-7 (float32 rounding of one value) so that an
/// unfused error that happens to be near 0 does not demand the impossible.
inline constexpr double kFusedErrorFactor = 2.0;
inline constexpr double kFusedErrorFloor = 1e-7;

}  // namespace hkt::test
