// mma_layout.h: the host-and-device parts of the warp tensor-core product of
// kernels/backend/mma.h: bfloat16 conversions and the fragment layout of
// mma.m16n8k16 (which lane holds which elements of A, B and C/D; the formulas are
// quoted at the top of mma.h, from the PTX ISA's section "Matrix Fragments for
// mma.m16n8k16 with floating point type"). Apart from mma.h so that host code (the
// tests) can use them without the block-kernel machinery.
#pragma once

#include <cstdint>
#include <cstring>

#include "host_device.h"

namespace hkt::cuda {

// ---- bfloat16 -----------------------------------------------------------------------

/// The bfloat16 nearest to x (round to nearest, ties to even), as its 16 bits: float32's
/// sign, exponent and top 7 significand bits. Infinities stay infinite, a NaN stays a
/// (quiet) NaN of the same sign; a float at or above the midpoint between the largest
/// bfloat16 (0x7f7f, about 3.39e38) and infinity rounds to infinity, one below it to 0x7f7f.
HKT_HOST_DEVICE inline std::uint16_t bf16_bits(float x) {
  std::uint32_t u = 0;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // NaN: set quiet bit
  u += 0x7fffu + ((u >> 16) & 1u);  // adds half an ulp of bf16, minus 1 when the kept bit is even: ties go to even
  return static_cast<std::uint16_t>(u >> 16);
}

/// The float32 value of a bfloat16 (exact: bf16 is float32 with 16 fewer significand bits).
HKT_HOST_DEVICE inline float bf16_to_float(std::uint16_t bits) {
  const std::uint32_t u = static_cast<std::uint32_t>(bits) << 16;
  float x = 0;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

/// Two bfloat16 in one 32-bit register, as the instruction takes them: `low` (the element
/// with the even index) in bits 0..15, `high` in bits 16..31.
HKT_HOST_DEVICE inline std::uint32_t pack_bf16x2(std::uint16_t low, std::uint16_t high) {
  return static_cast<std::uint32_t>(low) | (static_cast<std::uint32_t>(high) << 16);
}

// ---- the fragment layout --------------------------------------------------------------

/// Row and column, in A [16 x 16], B [16 x 8] and C/D [16 x 8], of element i of lane
/// `lane`'s fragment (the PTX ISA's formulas, quoted at the top of kernels/backend/mma.h).
struct MmaLayout {
  static constexpr int kM = 16, kN = 8, kK = 16;
  HKT_HOST_DEVICE static int a_row(unsigned lane, int i) { return static_cast<int>(lane / 4) + 8 * ((i / 2) % 2); }
  HKT_HOST_DEVICE static int a_col(unsigned lane, int i) {
    return 2 * static_cast<int>(lane % 4) + i % 2 + 8 * (i / 4);
  }
  HKT_HOST_DEVICE static int b_row(unsigned lane, int i) {
    return 2 * static_cast<int>(lane % 4) + i % 2 + 8 * (i / 2);
  }
  HKT_HOST_DEVICE static int b_col(unsigned lane, int) { return static_cast<int>(lane / 4); }
  HKT_HOST_DEVICE static int c_row(unsigned lane, int i) { return static_cast<int>(lane / 4) + 8 * (i / 2); }
  HKT_HOST_DEVICE static int c_col(unsigned lane, int i) { return 2 * static_cast<int>(lane % 4) + i % 2; }
};

/// One lane's fragments of A and B: register a[r] holds A's elements 2r (bits 0..15) and
/// 2r + 1 (bits 16..31), b[r] B's likewise (pack_bf16x2). C and D are 4 floats apart.
struct MmaFragments {
  std::uint32_t a[4];
  std::uint32_t b[2];
};

}  // namespace hkt::cuda
