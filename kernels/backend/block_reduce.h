// block_reduce.h: the sum of one double per thread over a thread block, in a fixed
// order: each thread's value into shared memory, then a tree of halvings (thread t adds
// t + half, half = kThreads / 2, ..., 1), a barrier between levels. The same additions
// in the same order whatever the thread schedule, so the result is deterministic (no
// atomics) and the emulator's thread orders give the same bits.
#pragma once

#include "block.h"

namespace hkt::cuda {

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

}  // namespace hkt::cuda
