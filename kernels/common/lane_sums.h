// lane_sums.h: sums and dot products of a row as 16 interleaved partial sums, shared by
// the CPU ops and the CUDA backend (host_device.h).
//
// Why: a loop `s += x[i]` is one chain of dependent additions; floating-point addition
// is not associative, so without -ffast-math the compiler must keep that order and
// emits scalar adds (perf showed the softmax row sums and the level-weight dot products
// at about 10 % of an MHA training step). Sixteen partial sums, one per lane, added
// in a fixed order at the end, are independent chains the compiler maps onto one or two
// SIMD registers. The order is fixed by n alone, so results stay deterministic and
// independent of the thread count, and a CUDA thread that calls the same function adds
// in the same order as the CPU.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace hkt::fn {

inline constexpr std::int64_t kLanes = 16;

/// sum_i term(i), i < n, in the accumulator type Acc: kLanes interleaved partial sums
/// (term i into lane i % kLanes), then the lanes in order, then the leftover tail. Every
/// sum below is this one with its own term; `term` is inlined, so the lanes still map
/// onto SIMD registers.
template <class Acc, class F>
HKT_HOST_DEVICE Acc sum_lanes_of(std::int64_t n, F term) {
  Acc lane[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::int64_t j = 0; j < kLanes; ++j) lane[j] += term(i + j);
  Acc s = 0;
  for (std::int64_t j = 0; j < kLanes; ++j) s += lane[j];
  for (; i < n; ++i) s += term(i);
  return s;
}

/// sum_i x[i], i < n, in the order of sum_lanes_of.
template <class E>
HKT_HOST_DEVICE E sum_lanes(const E* x, std::int64_t n) {
  return sum_lanes_of<E>(n, [=](std::int64_t i) { return x[i]; });
}

/// sum_i a[i] b[i], i < n, in the order of sum_lanes_of.
template <class E>
HKT_HOST_DEVICE E dot_lanes(const E* a, const E* b, std::int64_t n) {
  return sum_lanes_of<E>(n, [=](std::int64_t i) { return a[i] * b[i]; });
}

/// sum_i (a[i] b[i]) c[i], i < n, in the order of sum_lanes_of (the LayerNorm backward's
/// mean(dxhat xhat) with dxhat = g w).
template <class E>
HKT_HOST_DEVICE E dot3_lanes(const E* a, const E* b, const E* c, std::int64_t n) {
  return sum_lanes_of<E>(n, [=](std::int64_t i) { return a[i] * b[i] * c[i]; });
}

/// sum_i a[i] b[i], i < n, each product and every sum in double, in the order of
/// sum_lanes_of: the level-weight gradient's sum over a tile (fused.cpp), kept in double
/// because its terms cancel. One running sum in double would be a chain of dependent
/// scalar adds (1.5 % of an HKT training step at T = 512, perf); the lanes vectorise.
template <class E>
HKT_HOST_DEVICE double dot_lanes_f64(const E* a, const E* b, std::int64_t n) {
  return sum_lanes_of<double>(n, [=](std::int64_t i) { return static_cast<double>(a[i]) * static_cast<double>(b[i]); });
}

/// sum_i x[i], i < n, each term and every sum in double, in the order of sum_lanes_of.
template <class E>
HKT_HOST_DEVICE double sum_lanes_f64(const E* x, std::int64_t n) {
  return sum_lanes_of<double>(n, [=](std::int64_t i) { return static_cast<double>(x[i]); });
}

/// sum_i (x[i] - mu)^2, i < n, in double, in the order of sum_lanes_of (LayerNorm's variance).
template <class E>
HKT_HOST_DEVICE double squared_deviation_lanes_f64(const E* x, double mu, std::int64_t n) {
  return sum_lanes_of<double>(n, [=](std::int64_t i) {
    const double d = static_cast<double>(x[i]) - mu;
    return d * d;
  });
}

}  // namespace hkt::fn
