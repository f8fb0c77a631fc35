// rows.h: the per-row formulas of the row ops, forward and backward side by side, shared
// by the CPU ops (engine/ops/softmax.cpp, layer_norm.cpp) and the CUDA backend
// (kernels/backend/softmax.cpp, layer_norm.cpp): one source, so the two devices differ
// only by rounding (the math library, fused multiply-adds, and the order of a row's sums:
// one thread's lanes on the CPU, a warp's on the GPU), never by a formula. E is the
// element type (float or double).
#pragma once

#include <cmath>
#include <cstdint>

#include "host_device.h"
#include "lane_sums.h"

namespace hkt::fn {

/// The threads that compute one row together. The row functions below reach their row
/// only through a team, so one source serves one thread per row and a warp per row:
///   team.sum<Acc>(n, term)   sum_j term(j), j < n, in Acc, returned in every thread of the team;
///   team.max<E>(n, value)    max_j value(j) (a NaN value is passed over; -inf for n = 0);
///   team.for_each(n, f)      f(j) for this thread's share of j < n.
/// Each j belongs to one thread in all three, so a thread reads back only what it wrote.
/// SerialTeam is one thread with the whole row (the CPU ops), summing in the order of
/// sum_lanes_of; kernels/backend/warp_rows.h has WarpTeam, 32 lanes taking every 32nd j.
struct SerialTeam {
  template <class Acc, class F>
  HKT_HOST_DEVICE Acc sum(std::int64_t n, F term) const {
    return sum_lanes_of<Acc>(n, term);
  }
  template <class E, class F>
  HKT_HOST_DEVICE E max(std::int64_t n, F value) const {
    E m = -static_cast<E>(HUGE_VAL);
    for (std::int64_t j = 0; j < n; ++j) {
      const E v = value(j);
      m = v > m ? v : m;
    }
    return m;
  }
  template <class F>
  HKT_HOST_DEVICE void for_each(std::int64_t n, F f) const {
    for (std::int64_t j = 0; j < n; ++j) f(j);
  }
};

/// out[j] = z[j] - LSE(z) over one row of n values (log_softmax); a row of all -inf
/// (every entry masked) stays -inf. The sum of exponentials is in double: rows can be
/// thousands of terms long. z and out may not overlap.
template <class E, class Team = SerialTeam>
HKT_HOST_DEVICE inline void log_softmax_row(const E* z, E* out, std::int64_t n, const Team& team = Team{}) {
  const E neg_inf = -static_cast<E>(HUGE_VAL);
  const E m = team.template max<E>(n, [=](std::int64_t j) { return z[j]; });
  if (m == neg_inf) {
    team.for_each(n, [=](std::int64_t j) { out[j] = neg_inf; });
    return;
  }
  const double s =
      team.template sum<double>(n, [=](std::int64_t j) { return static_cast<double>(std::exp(z[j] - m)); });
  const E lse = m + static_cast<E>(std::log(s));
  team.for_each(n, [=](std::int64_t j) { out[j] = z[j] - lse; });
}

/// softmax of one row: log_softmax_row, then p = e^(log p) (a row of all -inf gives 0).
template <class E, class Team = SerialTeam>
HKT_HOST_DEVICE inline void softmax_row(const E* z, E* out, std::int64_t n, const Team& team = Team{}) {
  log_softmax_row(z, out, n, team);
  team.for_each(n, [=](std::int64_t j) { out[j] = std::exp(out[j]); });  // e^-inf = 0
}

/// Backward of softmax_row: dx_j = p_j (g_j - sum_k g_k p_k), and exactly 0 where p_j = 0
/// (a masked entry or a dead row: its output does not depend on x). p, g, dx: one row of n.
template <class E, class Team = SerialTeam>
HKT_HOST_DEVICE inline void softmax_backward_row(const E* p, const E* g, E* dx, std::int64_t n,
                                                 const Team& team = Team{}) {
  const E dot = team.template sum<E>(n, [=](std::int64_t j) { return g[j] * p[j]; });
  team.for_each(n, [=](std::int64_t j) { dx[j] = p[j] == E(0) ? E(0) : p[j] * (g[j] - dot); });
}

/// Backward of log_softmax_row: dx_j = g_j - e^(y_j) sum_k g_k over the live entries
/// (y_k > -inf), and exactly 0 where y_j = -inf. y (= log p), g, dx: one row of n.
template <class E, class Team = SerialTeam>
HKT_HOST_DEVICE inline void log_softmax_backward_row(const E* y, const E* g, E* dx, std::int64_t n,
                                                     const Team& team = Team{}) {
  const E neg_inf = -static_cast<E>(HUGE_VAL);
  // The live entries' g as g times 1 or 0, not as `y[j] != neg_inf ? g[j] : E(0)`: GCC
  // 12.2 at -O3 -march=native (AVX2) vectorised the lane sum of that form, and of an
  // `if` that zeroes the term, wrongly (a row of 300 with masked entries summed to -9.4
  // instead of 0.019); the product sums correctly. The gradcheck case "log_softmax [3,40]
  // masked" (engine/gradcheck/cases.cpp) fails with the wrong sum. (A non-finite g at a
  // masked entry would now reach the row's sum; the forward's -inf there gives any op
  // that reads it a non-finite output first.)
  const E gsum = team.template sum<E>(n, [=](std::int64_t j) { return g[j] * static_cast<E>(y[j] != neg_inf); });
  team.for_each(n, [=](std::int64_t j) { dx[j] = y[j] == neg_inf ? E(0) : g[j] - std::exp(y[j]) * gsum; });
}

/// Cross entropy of one row with label smoothing eps, from its log-probabilities logp
/// [C] and target t (not ignored): -((1 - eps) logp[t] + eps mean_c logp[c]), in double.
template <class E>
HKT_HOST_DEVICE inline double cross_entropy_row(const E* logp, std::int64_t C, std::int64_t t, double eps) {
  double row_mean = 0.0;
  if (eps > 0.0) {
    for (std::int64_t c = 0; c < C; ++c) row_mean += static_cast<double>(logp[c]);
    row_mean /= static_cast<double>(C);
  }
  return -((1.0 - eps) * static_cast<double>(logp[t]) + eps * row_mean);
}

/// Gradient of cross_entropy_row with respect to logit c, times scale (the upstream
/// gradient over the number of counted rows): scale (p_c - q_c) with p_c = e^(logp_c)
/// and the smoothed target q_c = (1 - eps) [c = t] + eps / C.
template <class E>
HKT_HOST_DEVICE inline E cross_entropy_grad(E logp_c, std::int64_t c, std::int64_t C, std::int64_t t, double eps,
                                            E scale) {
  const double q = (c == t ? 1.0 - eps : 0.0) + eps / static_cast<double>(C);
  return scale * static_cast<E>(std::exp(static_cast<double>(logp_c)) - q);
}

/// Layer norm of one row of D values (Ba et al. 2016): mu and the biased variance in
/// double, rstd = 1 / sqrt(var + eps), xhat = (x - mu) rstd, y = xhat w + b (w, b may be
/// null: 1 and 0). Writes y and xhat [D]; returns rstd (in every thread of the team).
/// In double: a float32 mean of large values would lose ~D * 6e-8 relative. SerialTeam
/// sums as lanes: one running double sum is a chain of dependent scalar adds (the
/// LayerNorm forward was 2 % of a training step, perf), the lanes vectorise.
template <class E, class Team = SerialTeam>
HKT_HOST_DEVICE inline E layer_norm_row(const E* x, const E* w, const E* b, E* y, E* xhat, std::int64_t D, double eps,
                                        const Team& team = Team{}) {
  const double mu =
      team.template sum<double>(D, [=](std::int64_t j) { return static_cast<double>(x[j]); }) / static_cast<double>(D);
  const double var = team.template sum<double>(D, [=](std::int64_t j) {
    const double d = static_cast<double>(x[j]) - mu;
    return d * d;
  }) / static_cast<double>(D);
  const E rs = static_cast<E>(1.0 / std::sqrt(var + eps));
  team.for_each(D, [=](std::int64_t j) {
    const E h = static_cast<E>((static_cast<double>(x[j]) - mu) * static_cast<double>(rs));
    xhat[j] = h;
    y[j] = h * (w ? w[j] : E(1)) + (b ? b[j] : E(0));
  });
  return rs;
}

/// Backward of layer_norm_row for the input, one row of D values: with dxhat = g w,
///   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
/// (w may be null: 1). g, xhat, dx [D]; rstd is the forward's. The two means are sums in
/// E (SerialTeam: lane sums, which vectorise).
template <class E, class Team = SerialTeam>
HKT_HOST_DEVICE inline void layer_norm_backward_row(const E* g, const E* xhat, const E* w, E rstd, E* dx,
                                                    std::int64_t D, const Team& team = Team{}) {
  const E n = static_cast<E>(D);
  if (w) {
    const E mean_d = team.template sum<E>(D, [=](std::int64_t j) { return g[j] * w[j]; }) / n;
    const E mean_dh = team.template sum<E>(D, [=](std::int64_t j) { return g[j] * w[j] * xhat[j]; }) / n;
    team.for_each(D, [=](std::int64_t j) { dx[j] = rstd * (g[j] * w[j] - mean_d - xhat[j] * mean_dh); });
  } else {
    const E mean_d = team.template sum<E>(D, [=](std::int64_t j) { return g[j]; }) / n;
    const E mean_dh = team.template sum<E>(D, [=](std::int64_t j) { return g[j] * xhat[j]; }) / n;
    team.for_each(D, [=](std::int64_t j) { dx[j] = rstd * (g[j] - mean_d - xhat[j] * mean_dh); });
  }
}

}  // namespace hkt::fn
