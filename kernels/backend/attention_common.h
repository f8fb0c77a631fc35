// attention_common.h: what the fused attention kernels (attention_v0.cpp, the
// per-row reference, and attention_v1.cpp, the tiled kernels) share: the arguments with
// typed pointers, -infinity, and scratch device memory.
#pragma once

#include <cmath>
#include <cstddef>

#include "cuda_backend.h"
#include "launch.h"
#include "scratch.h"

namespace hkt::cuda {

// for (l = first; l < L; ++l) (HKT_FOR_LEVELS: from 0), unrolled over the at most kMaxAttentionLevels levels: with l a
// constant in each copy, the per-level pointer arrays (the arguments' q[l], k[l] and the
// shared-memory tiles) stay in registers and constant memory instead of being copied
// to local memory for a run-time index.
#if defined(__CUDACC__)
#define HKT_UNROLL _Pragma("unroll")
#else
#define HKT_UNROLL
#endif
#define HKT_FOR_LEVELS_FROM(l, first, L) HKT_UNROLL for (int l = (first); l < kMaxAttentionLevels; ++l) if (l < (L))
#define HKT_FOR_LEVELS(l, L) HKT_FOR_LEVELS_FROM(l, 0, L)

namespace detail {

// Hands out consecutive 16-byte-aligned pieces of a block's shared memory. With base =
// nullptr (on the host) it only counts: `bytes` is then the size to launch with.
struct Carve {
  unsigned char* base;
  std::size_t bytes = 0;
  template <class X>
  HKT_HOST_DEVICE X* take(std::int64_t n) {
    bytes = (bytes + 15) / 16 * 16;
    X* p = base ? reinterpret_cast<X*>(base + bytes) : nullptr;
    bytes += static_cast<std::size_t>(n) * sizeof(X);
    return p;
  }
};

// The arguments with typed pointers, passed to the kernels by value.
template <class E>
struct Attn {
  const E* q[kMaxAttentionLevels];
  const E* k[kMaxAttentionLevels];
  const E* v;
  const E* alpha;
  const std::int64_t* keep;
  std::int64_t B, H, T, dh, Tl[kMaxAttentionLevels];  // T: tokens; E is the element type
  int L;
  bool causal;
  E scale;
};

template <class E>
Attn<E> typed(const AttentionArgs& a) {
  Attn<E> t{};
  for (int l = 0; l < kMaxAttentionLevels; ++l) {
    t.q[l] = static_cast<const E*>(a.q[l]);
    t.k[l] = static_cast<const E*>(a.k[l]);
    t.Tl[l] = a.Tl[l];
  }
  t.v = static_cast<const E*>(a.v);
  t.alpha = static_cast<const E*>(a.alpha);
  t.keep = a.keep;
  t.B = a.B;
  t.H = a.H;
  t.T = a.T;
  t.dh = a.dh;
  t.L = a.L;
  t.causal = a.causal;
  t.scale = static_cast<E>(a.scale);
  return t;
}

template <class E>
HKT_HOST_DEVICE inline E neg_inf() {
  return -static_cast<E>(HUGE_VAL);
}

// The same dot product accumulated in double: for dp = dO . V and D = dO . O, whose
// difference (dp - D) cancels; float sums there made dalpha about 7x less accurate than the
// unfused op's in float32 (measured in the EMULATE build, L = 1, T = 17).
template <class E>
HKT_HOST_DEVICE inline double dot_wide(const E* x, const E* y, std::int64_t n) {
  double s = 0;
  for (std::int64_t d = 0; d < n; ++d) s += static_cast<double>(x[d]) * static_cast<double>(y[d]);
  return s;
}

// D[r] = x[r] . y[r] for rows of length n, in double (D = rowsum(dO O) of the backward).
template <class E>
void row_dot_impl(const E* x, const E* y, double* out, std::int64_t rows, std::int64_t n) {
  for_each(
      rows, HKT_KERNEL(std::int64_t r) { out[r] = dot_wide(x + r * n, y + r * n, n); });
}

// dalpha[h, l] = sum over b, then rows i (v0: query rows; v1: query tiles), of the
// per-row parts [B, H, rows, L]: one thread per (h, l), in that fixed order.
template <class E>
void dalpha_reduce_impl(const double* parts, E* dalpha, std::int64_t B, std::int64_t H, std::int64_t rows, int L) {
  for_each(
      H * L, HKT_KERNEL(std::int64_t hl) {
        const std::int64_t h = hl / L, l = hl % L;
        double s = 0.0;
        for (std::int64_t b = 0; b < B; ++b)
          for (std::int64_t i = 0; i < rows; ++i) s += parts[((b * H + h) * rows + i) * L + l];
        dalpha[hl] = static_cast<E>(s);
      });
}

}  // namespace detail

}  // namespace hkt::cuda
