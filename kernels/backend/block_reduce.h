// block_reduce.h: sums over the threads of a block or a warp, in a fixed order, so that
// the result is deterministic (no atomics) and the emulator's thread orders give the
// same bits.
//   block_sum: each thread's value into shared memory, then a tree of halvings (thread t
//     adds t + half, half = kThreads / 2, ..., 1), a barrier between levels.
//   warp_sum, warp_max: a butterfly of shuffles (lane i combines with lane i ^ m, m = 16,
//     8, ..., 1). Lanes i and i ^ m add the same two numbers (in swapped order, which
//     IEEE addition does not see), so after each step the two hold the same bits, and
//     after the last every lane holds the same result.
#pragma once

#include <cmath>

#include "block.h"

namespace hkt::cuda {

/// Every lane of a warp.
inline constexpr unsigned kFullWarp = 0xffffffffu;

/// Returns, in every thread, the sum of v over the kThreads threads of the block (a power
/// of two), using `scratch`, kThreads doubles of shared memory. Every thread of the block
/// must call it (it holds barriers). scratch may be reused after it returns.
template <unsigned kThreads>
HKT_DEVICE double block_sum(double v, double* scratch) {
  static_assert(kThreads >= 1 && (kThreads & (kThreads - 1)) == 0, "block_sum: kThreads must be a power of two");
  const unsigned t = dev::thread_index();
  scratch[t] = v;
  dev::sync_threads();
  for (unsigned half = kThreads / 2; half >= 1; half /= 2) {
    if (t < half) scratch[t] += scratch[t + half];
    dev::sync_threads();
  }
  const double total = scratch[0];
  dev::sync_threads();  // every thread has read the total before scratch is written again
  return total;
}

/// Returns, in every lane, the sum of v over the 32 lanes of the warp (the butterfly
/// above). Every lane of the warp must call it. Acc: float or double.
template <class Acc>
HKT_DEVICE Acc warp_sum(Acc v) {
  for (unsigned m = 16; m >= 1; m /= 2) v += dev::shfl_xor(kFullWarp, v, m);
  return v;
}

/// Returns, in every lane, the largest v over the 32 lanes of the warp. For inputs that
/// hold no NaN (WarpTeam::max, whose lane partials pass NaNs over, gives none) every lane
/// gets the same value; a lane whose own v is NaN keeps it. Every lane must call it.
template <class E>
HKT_DEVICE E warp_max(E v) {
  for (unsigned m = 16; m >= 1; m /= 2) {
    const E other = dev::shfl_xor(kFullWarp, v, m);
    v = other > v ? other : v;
  }
  return v;
}

}  // namespace hkt::cuda
