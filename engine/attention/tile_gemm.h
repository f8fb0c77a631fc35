// tile_gemm.h: the small matrix product inside every attention tile,
//   C[m x n] += alpha * A[m x k] * B[k x n]   (row-major, leading dimensions lda, ldb, ldc).
//
// Where the CPU has AVX2 and FMA (x86-64 since 2013-2015) the product is
// register_gemm (register_gemm.h): a register-blocked loop that reads both operands where
// they lie, faster than a BLAS call on these narrow tiles because it packs nothing.
// Elsewhere it is one single-threaded BLAS call per tile (cpu::blas_gemm): OpenBLAS's
// packed micro-kernels run a 64 x 64 x 64 tile at about 90 GFLOP/s against 26 for the best
// plain loop below, worth their per-call packing even at tile size. OpenBLAS is kept
// single-threaded engine-wide (the engine's OpenMP threads call it, one tile each; see
// cpu::use_single_threaded_blas), so a call from inside an OpenMP task runs in that task's
// thread. Measured effect on `hkt bench step` (MHA, T = 1024, batch 8, 1 thread): 3.8 s per
// step with the one-row loop, 1.9 s with the four-row loop, 1.5 s with BLAS and no
// transposes (docs/attention.md, "Inside a tile", has the whole sequence).
//
// tile_gemm_loop is the plain loop, kept as the readable definition and test reference
// (what a fused GPU kernel would compute per tile, in registers).
#pragma once

#include <cstdint>
#include <type_traits>

#include "../ops/blas_gemm.h"
#include "../ops/cpu_kernels.h"
#include "register_gemm.h"

namespace hkt::attention {

/// C[m x n] = alpha * op(A) * B[k x n] (+ C when `accumulate`; otherwise C is overwritten and
/// the caller need not zero it), row-major, op(A) = A [m x k] (lda >= k) or, with trans_a,
/// A^T for A stored [k x m] (lda >= m); ldb >= n, ldc >= n; m or n may be 0 (nothing
/// happens); k = 0 leaves C (accumulate) or zeroes it. E is float or double: register_gemm
/// where the CPU has AVX2 and FMA, else BLAS sgemm / dgemm (for every tile size, the
/// coarse levels' small tiles too: switching tiles below 32^3 multiply-adds to the plain
/// loop made HKT 10-50 % slower).
template <class E>
void tile_product(bool trans_a, std::int64_t m, std::int64_t n, std::int64_t k, E alpha, const E* A, std::int64_t lda,
                  const E* B, std::int64_t ldb, bool accumulate, E* C, std::int64_t ldc) {
  static_assert(std::is_same_v<E, float> || std::is_same_v<E, double>, "tile_gemm: E is float or double");
#if HKT_REGISTER_GEMM
  if (register_gemm_available()) {
    register_gemm(trans_a, m, n, k, alpha, A, lda, B, ldb, accumulate, C, ldc);
    return;
  }
#endif
  cpu::use_single_threaded_blas();
  cpu::blas_gemm(trans_a, false, m, n, k, alpha, A, lda, B, ldb, accumulate, C, ldc);
}

/// C[m x n] += alpha * A[m x k] * B[k x n] (tile_product without the transpose).
template <class E>
void tile_gemm(std::int64_t m, std::int64_t n, std::int64_t k, E alpha, const E* A, std::int64_t lda, const E* B,
               std::int64_t ldb, E* C, std::int64_t ldc) {
  tile_product(false, m, n, k, alpha, A, lda, B, ldb, true, C, ldc);
}

/// C[m x n] = alpha * A[m x k] * B[k x n], C not read (tile_gemm with beta = 0): a tile
/// that would otherwise be zeroed and then accumulated into.
template <class E>
void tile_gemm_set(std::int64_t m, std::int64_t n, std::int64_t k, E alpha, const E* A, std::int64_t lda, const E* B,
                   std::int64_t ldb, E* C, std::int64_t ldc) {
  tile_product(false, m, n, k, alpha, A, lda, B, ldb, false, C, ldc);
}

/// C[m x n] += alpha * A^T * B[k x n] where A is stored [k x m] (lda >= m): the
/// backward's p^T dO and ds^T Q, with the transpose a flag of the product instead of a copy.
template <class E>
void tile_gemm_tn(std::int64_t m, std::int64_t n, std::int64_t k, E alpha, const E* A, std::int64_t lda, const E* B,
                  std::int64_t ldb, E* C, std::int64_t ldc) {
  tile_product(true, m, n, k, alpha, A, lda, B, ldb, true, C, ldc);
}

template <class E>
void tile_gemm_loop(std::int64_t m, std::int64_t n, std::int64_t k, E alpha, const E* A, std::int64_t lda, const E* B,
                    std::int64_t ldb, E* C, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + 4 <= m; i += 4) {
    // __restrict: the four C rows never overlap each other or B, so the compiler need
    // not reload b[j] after every store.
    E* __restrict c0 = C + i * ldc;
    E* __restrict c1 = c0 + ldc;
    E* __restrict c2 = c1 + ldc;
    E* __restrict c3 = c2 + ldc;
    for (std::int64_t p = 0; p < k; ++p) {
      const E a0 = alpha * A[i * lda + p], a1 = alpha * A[(i + 1) * lda + p];
      const E a2 = alpha * A[(i + 2) * lda + p], a3 = alpha * A[(i + 3) * lda + p];
      const E* __restrict b = B + p * ldb;
      for (std::int64_t j = 0; j < n; ++j) {
        const E bj = b[j];
        c0[j] += a0 * bj;
        c1[j] += a1 * bj;
        c2[j] += a2 * bj;
        c3[j] += a3 * bj;
      }
    }
  }
  for (; i < m; ++i) {  // rows left over
    E* c = C + i * ldc;
    for (std::int64_t p = 0; p < k; ++p) {
      const E a = alpha * A[i * lda + p];
      const E* b = B + p * ldb;
      for (std::int64_t j = 0; j < n; ++j) c[j] += a * b[j];
    }
  }
}

}  // namespace hkt::attention
