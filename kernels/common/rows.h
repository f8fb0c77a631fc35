// rows.h: per-row formulas shared by the CPU ops (engine/ops/softmax.cpp,
// layer_norm.cpp) and the CUDA backend (kernels/backend/softmax.cpp, layer_norm.cpp):
// one source, so the two devices differ only by rounding (the math library, fused
// multiply-adds), never by a formula. Statistics are summed in double whatever T is.
#pragma once

#include <cmath>
#include <cstdint>

#include "host_device.h"

namespace hkt::fn {

/// out[j] = z[j] - LSE(z) over one row of n values (log_softmax); a row of all -inf
/// (every entry masked) stays -inf. The sum of exponentials is in double: rows can be
/// thousands of terms long. z and out may not overlap.
template <class T>
HKT_HOST_DEVICE inline void log_softmax_row(const T* z, T* out, std::int64_t n) {
  const T neg_inf = -static_cast<T>(HUGE_VAL);
  T m = neg_inf;
  for (std::int64_t j = 0; j < n; ++j) m = z[j] > m ? z[j] : m;
  if (m == neg_inf) {
    for (std::int64_t j = 0; j < n; ++j) out[j] = neg_inf;
    return;
  }
  double s = 0;
  for (std::int64_t j = 0; j < n; ++j) s += static_cast<double>(std::exp(z[j] - m));
  const T lse = m + static_cast<T>(std::log(s));
  for (std::int64_t j = 0; j < n; ++j) out[j] = z[j] - lse;
}

/// Layer norm of one row of D values (Ba et al. 2016): mu and the biased variance in
/// double, rstd = 1 / sqrt(var + eps), xhat = (x - mu) rstd, y = xhat w + b (w, b may be
/// null: 1 and 0). Writes y and xhat [D]; returns rstd.
template <class T>
HKT_HOST_DEVICE inline T layer_norm_row(const T* x, const T* w, const T* b, T* y, T* xhat, std::int64_t D, double eps) {
  double mu = 0, var = 0;  // a float32 mean of large values would lose ~D * 6e-8 relative
  for (std::int64_t j = 0; j < D; ++j) mu += static_cast<double>(x[j]);
  mu /= static_cast<double>(D);
  for (std::int64_t j = 0; j < D; ++j) var += (static_cast<double>(x[j]) - mu) * (static_cast<double>(x[j]) - mu);
  var /= static_cast<double>(D);
  const T rs = static_cast<T>(1.0 / std::sqrt(var + eps));
  for (std::int64_t j = 0; j < D; ++j) {
    const T h = static_cast<T>((static_cast<double>(x[j]) - mu) * static_cast<double>(rs));
    xhat[j] = h;
    y[j] = h * (w ? w[j] : T(1)) + (b ? b[j] : T(0));
  }
  return rs;
}

}  // namespace hkt::fn
