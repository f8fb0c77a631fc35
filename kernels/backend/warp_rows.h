// warp_rows.h: row kernels with one warp per row. A row op written against a team
// (kernels/common/rows.h) runs here with WarpTeam: lane l of the warp takes elements
// l, l + 32, l + 64, ... of the row (neighbouring lanes read neighbouring addresses,
// so a warp's loads coalesce), keeps its partial sum or maximum, and warp_sum /
// warp_max (block_reduce.h) combine the 32 partials in a fixed order. Compared with one
// thread per row, a row of n elements takes about n / 32 steps instead of n, and the
// work is spread over 32 times as many threads.
#pragma once

#include <cstdint>

#include "block.h"
#include "block_reduce.h"

namespace hkt::cuda {

/// The 32 lanes of a warp sharing one row (the team interface of kernels/common/rows.h).
/// Every lane must make the same sequence of sum / max calls (each holds shuffles).
struct WarpTeam {
  unsigned lane;  // 0..31
  /// sum_j term(j), j < n, in Acc: lane l sums j = l, l + 32, ... in order, then warp_sum.
  template <class Acc, class F>
  HKT_DEVICE Acc sum(std::int64_t n, F term) const {
    Acc s = 0;
    for (std::int64_t j = lane; j < n; j += 32) s += term(j);
    return warp_sum(s);
  }
  /// max_j value(j), j < n (a NaN value passed over; -inf for n = 0): lane partials, then warp_max.
  template <class E, class F>
  HKT_DEVICE E max(std::int64_t n, F value) const {
    E m = -static_cast<E>(HUGE_VAL);
    for (std::int64_t j = lane; j < n; j += 32) {
      const E v = value(j);
      m = v > m ? v : m;
    }
    return warp_max(m);
  }
  /// f(j) for this lane's j = lane, lane + 32, ... < n.
  template <class F>
  HKT_DEVICE void for_each(std::int64_t n, F f) const {
    for (std::int64_t j = lane; j < n; j += 32) f(j);
  }
};

namespace detail {
// Blocks of kThreads / 32 warps; warp w of block b takes rows b * kRowsPerBlock + w,
// then every grid_x() * kRowsPerBlock rows after it. A whole warp skips a row past the
// end together, so the shuffles always see all 32 lanes.
template <class F>
struct WarpRows {
  static constexpr unsigned kThreads = 128;
  static constexpr unsigned kRowsPerBlock = kThreads / 32;
  std::int64_t rows;
  F f;  // f(row, team)
  HKT_DEVICE void operator()() const {
    const WarpTeam team{dev::thread_index() % 32};
    const std::int64_t step = static_cast<std::int64_t>(dev::grid_x()) * kRowsPerBlock;
    for (std::int64_t r = static_cast<std::int64_t>(dev::block_x()) * kRowsPerBlock + dev::thread_index() / 32;
         r < rows; r += step)
      f(r, team);
  }
};
}  // namespace detail

/// Calls f(r, team) for every row r < rows, each row by one warp (team: its WarpTeam).
/// f must be an HKT_KERNEL lambda; `name` is for error messages (the emulator's).
template <class F>
void for_each_row(const char* name, std::int64_t rows, F f) {
  if (rows <= 0) return;
  using Kernel = detail::WarpRows<F>;
  // At most 65535 * 8 blocks, as for_each (launch.h): the loop over rows covers the rest.
  const std::int64_t wanted = (rows + Kernel::kRowsPerBlock - 1) / Kernel::kRowsPerBlock;
  const unsigned blocks = static_cast<unsigned>(wanted < 65535 * 8 ? wanted : 65535 * 8);
  launch_blocks(name, Grid{blocks}, 0, Kernel{rows, f});
}

}  // namespace hkt::cuda
