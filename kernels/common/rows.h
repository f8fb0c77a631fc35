// rows.h: the per-row formulas of the row ops, forward and backward side by side, shared
// by the CPU ops (engine/ops/softmax.cpp, layer_norm.cpp) and the CUDA backend
// (kernels/backend/softmax.cpp, layer_norm.cpp): one source, so the two devices differ
// only by rounding (the math library, fused multiply-adds), never by a formula or an
// order of summation. E is the element type (float or double).
#pragma once

#include <cmath>
#include <cstdint>

#include "host_device.h"
#include "lane_sums.h"

namespace hkt::fn {

/// out[j] = z[j] - LSE(z) over one row of n values (log_softmax); a row of all -inf
/// (every entry masked) stays -inf. The sum of exponentials is in double: rows can be
/// thousands of terms long. z and out may not overlap.
template <class E>
HKT_HOST_DEVICE inline void log_softmax_row(const E* z, E* out, std::int64_t n) {
  const E neg_inf = -static_cast<E>(HUGE_VAL);
  E m = neg_inf;
  for (std::int64_t j = 0; j < n; ++j) m = z[j] > m ? z[j] : m;
  if (m == neg_inf) {
    for (std::int64_t j = 0; j < n; ++j) out[j] = neg_inf;
    return;
  }
  double s = 0;
  for (std::int64_t j = 0; j < n; ++j) s += static_cast<double>(std::exp(z[j] - m));
  const E lse = m + static_cast<E>(std::log(s));
  for (std::int64_t j = 0; j < n; ++j) out[j] = z[j] - lse;
}

/// softmax of one row: log_softmax_row, then p = e^(log p) (a row of all -inf gives 0).
template <class E>
HKT_HOST_DEVICE inline void softmax_row(const E* z, E* out, std::int64_t n) {
  log_softmax_row(z, out, n);
  for (std::int64_t j = 0; j < n; ++j) out[j] = std::exp(out[j]);  // e^-inf = 0
}

/// Backward of softmax_row: dx_j = p_j (g_j - sum_k g_k p_k), and exactly 0 where p_j = 0
/// (a masked entry or a dead row: its output does not depend on x). p, g, dx: one row of n.
template <class E>
HKT_HOST_DEVICE inline void softmax_backward_row(const E* p, const E* g, E* dx, std::int64_t n) {
  E dot = 0;
  for (std::int64_t j = 0; j < n; ++j) dot += g[j] * p[j];
  for (std::int64_t j = 0; j < n; ++j) dx[j] = p[j] == E(0) ? E(0) : p[j] * (g[j] - dot);
}

/// Backward of log_softmax_row: dx_j = g_j - e^(y_j) sum_k g_k over the live entries
/// (y_k > -inf), and exactly 0 where y_j = -inf. y (= log p), g, dx: one row of n.
template <class E>
HKT_HOST_DEVICE inline void log_softmax_backward_row(const E* y, const E* g, E* dx, std::int64_t n) {
  const E neg_inf = -static_cast<E>(HUGE_VAL);
  E gsum = 0;
  for (std::int64_t j = 0; j < n; ++j)
    if (y[j] != neg_inf) gsum += g[j];
  for (std::int64_t j = 0; j < n; ++j) dx[j] = y[j] == neg_inf ? E(0) : g[j] - std::exp(y[j]) * gsum;
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
/// null: 1 and 0). Writes y and xhat [D]; returns rstd.
template <class E>
HKT_HOST_DEVICE inline E layer_norm_row(const E* x, const E* w, const E* b, E* y, E* xhat, std::int64_t D, double eps) {
  // In double: a float32 mean of large values would lose ~D * 6e-8 relative. As lane sums:
  // one running double sum is a chain of dependent scalar adds (the LayerNorm forward was
  // 2 % of a training step, perf), the lanes vectorise.
  const double mu = sum_lanes_f64(x, D) / static_cast<double>(D);
  const double var = squared_deviation_lanes_f64(x, mu, D) / static_cast<double>(D);
  const E rs = static_cast<E>(1.0 / std::sqrt(var + eps));
  for (std::int64_t j = 0; j < D; ++j) {
    const E h = static_cast<E>((static_cast<double>(x[j]) - mu) * static_cast<double>(rs));
    xhat[j] = h;
    y[j] = h * (w ? w[j] : E(1)) + (b ? b[j] : E(0));
  }
  return rs;
}

/// Backward of layer_norm_row for the input, one row of D values: with dxhat = g w,
///   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
/// (w may be null: 1). g, xhat, dx [D]; rstd is the forward's. The two means are lane
/// sums in E (lane_sums.h): they vectorise on the CPU and add in the same order on the GPU.
template <class E>
HKT_HOST_DEVICE inline void layer_norm_backward_row(const E* g, const E* xhat, const E* w, E rstd, E* dx,
                                                    std::int64_t D) {
  const E n = static_cast<E>(D);
  if (w) {
    const E mean_d = dot_lanes(g, w, D) / n, mean_dh = dot3_lanes(g, w, xhat, D) / n;
    for (std::int64_t j = 0; j < D; ++j) dx[j] = rstd * (g[j] * w[j] - mean_d - xhat[j] * mean_dh);
  } else {
    const E mean_d = sum_lanes(g, D) / n, mean_dh = dot_lanes(g, xhat, D) / n;
    for (std::int64_t j = 0; j < D; ++j) dx[j] = rstd * (g[j] - mean_d - xhat[j] * mean_dh);
  }
}

}  // namespace hkt::fn
