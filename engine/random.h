// random.h: counter-based random numbers (Philox4x32-10) and the seeded Generator.
//
// Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) maps
// (key, counter) to four 32-bit words with no state, so element i of a random tensor
// is a pure function of (seed, offset + i): the CPU and a CUDA kernel produce the same
// numbers, and any thread count gives the same tensor. The functions are marked for
// host and device so the CUDA backend can include this header unchanged.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "common/host_device.h"

namespace hkt {

/// Philox4x32 with 10 rounds. counter = (c0, c1, c2, c3), key = (k0, k1).
/// Known-answer vectors from Random123 (kat_vectors) are in tests/test_random.cpp.
struct Philox4x32 {
  std::uint32_t out[4];

  HKT_HOST_DEVICE Philox4x32(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3, std::uint32_t k0,
                             std::uint32_t k1) {
    constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;  // round multipliers
    constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;  // key schedule (golden ratio, sqrt 3)
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 += W0;
        k1 += W1;
      }
      const std::uint64_t p0 = static_cast<std::uint64_t>(M0) * c0;
      const std::uint64_t p1 = static_cast<std::uint64_t>(M1) * c2;
      const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
      const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
      const std::uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
      c0 = n0;
      c1 = lo1;
      c2 = n2;
      c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
  }
};

/// The four words for element `index` of a stream keyed by `seed`:
/// counter = (index low, index high, 0, 0), key = (seed low, seed high).
HKT_HOST_DEVICE inline Philox4x32 philox_at(std::uint64_t seed, std::uint64_t index) {
  return Philox4x32(static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32), 0u, 0u,
                    static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

/// A uniform float in [0, 1) with 24 random bits: (word >> 8) * 2^-24. Used for dropout
/// masks (the same on CPU and GPU); Tensor::uniform uses uniform53 for both dtypes.
HKT_HOST_DEVICE inline float uniform24(std::uint32_t word) { return static_cast<float>(word >> 8) * 0x1.0p-24f; }

/// Four uniforms per Philox block: number i of a draw whose counters start at `first` is
/// uniform24(word i % 4 of philox_at(seed, first + i / 4)), so a draw of n numbers uses
/// ceil(n / 4) counters. Dropout masks are drawn this way, on the CPU (engine/ops/
/// masking.cpp, a block at a time) and on the GPU (kernels/backend/optim.cpp, this function
/// per element): a quarter of the Philox rounds of one block per number.
HKT_HOST_DEVICE inline float uniform24_at(std::uint64_t seed, std::uint64_t first, std::uint64_t i) {
  return uniform24(philox_at(seed, first + i / 4).out[i % 4]);
}

/// A uniform double in [0, 1) with 53 random bits taken from two words.
HKT_HOST_DEVICE inline double uniform53(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = ((static_cast<std::uint64_t>(hi) << 32) | lo) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

/// A standard normal from one Philox block by Box-Muller: u1 in (0, 1] from words 0-1,
/// u2 in [0, 1) from words 2-3, z = sqrt(-2 ln u1) cos(2 pi u2). Computed in double.
HKT_HOST_DEVICE inline double normal_from(const Philox4x32& block) {
  const double u1 = 1.0 - uniform53(block.out[0], block.out[1]);
  const double u2 = uniform53(block.out[2], block.out[3]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
}

/// A seeded source of random tensors. It holds (seed, offset); each draw reserves the
/// counters it uses (offset..offset+c-1: c = n for n normals or uniforms, ceil(n / 4) for a
/// dropout mask of n elements) and advances offset by c, so a sequence of draws is
/// reproducible from the seed alone and independent of threads and devices.
class Generator {
 public:
  explicit Generator(std::uint64_t seed) : seed_(seed) {}
  std::uint64_t seed() const { return seed_; }
  std::uint64_t offset() const { return offset_; }
  /// Reserves n counters; returns the first.
  std::uint64_t advance(std::uint64_t n) {
    const std::uint64_t first = offset_;
    offset_ += n;
    return first;
  }

 private:
  std::uint64_t seed_;
  std::uint64_t offset_ = 0;
};

}  // namespace hkt
