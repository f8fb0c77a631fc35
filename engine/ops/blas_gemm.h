// blas_gemm.h: the one call into CPU BLAS's matrix product, shared by matmul
// (ops/matmul.cpp) and the attention tiles (attention/tile_gemm.h).
//
//   C[m x n] = alpha * op(A) * op(B) + beta * C,   beta 0 (overwrite) or 1 (accumulate),
//
// row-major with leading dimensions lda, ldb, ldc.
//
// Why beta = 0 is not passed to BLAS: OpenBLAS's kernels always add into C, so for
// beta != 1 it first runs a separate pass over C (sgemm_beta), which for beta = 0 writes
// zeros one float at a time. Measured on an AMD EPYC (AVX2, OpenBLAS 0.3.21, 1 thread):
// a 128 x 256 x 32 attention tile 36.1 us with beta = 0 against 27.3 us with a memset
// and beta = 1; an [8192 x 128] x [128 x 128] linear layer 3.37 ms against 3.08 ms.
// The result is the same to the bit: C starts at exactly 0 either way and each element
// gets alpha * (its dot product) added once.
#pragma once

#include <cblas.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace hkt::cpu {

/// C = alpha op(A) op(B) + beta C with beta 0 or 1 (`accumulate`), row-major. op(A) is
/// A [m x k] (lda >= k) or, with trans_a, A^T for A stored [k x m] (lda >= m); op(B) is B
/// [k x n] (ldb >= n) or, with trans_b, B^T for B stored [n x k] (ldb >= k); ldc >= n.
/// m or n may be 0 (nothing happens); k = 0 leaves C (accumulate) or zeroes it. E is
/// float or double (sgemm / dgemm). Runs in the calling thread when OpenBLAS is set to
/// one thread (use_single_threaded_blas, ops/cpu_kernels.h). No error is raised: the
/// callers check shapes.
template <class E>
void blas_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, E alpha, const E* A,
               std::int64_t lda, const E* B, std::int64_t ldb, bool accumulate, E* C, std::int64_t ldc) {
  static_assert(std::is_same_v<E, float> || std::is_same_v<E, double>, "blas_gemm: E is float or double");
  if (m == 0 || n == 0) return;
  if (!accumulate) {  // zero C here (a memset per row, or one for a dense C), then accumulate
    if (ldc == n)
      std::memset(C, 0, sizeof(E) * static_cast<std::size_t>(m * n));
    else
      for (std::int64_t i = 0; i < m; ++i) std::memset(C + i * ldc, 0, sizeof(E) * static_cast<std::size_t>(n));
  }
  if (k == 0) return;
  const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  const auto M = static_cast<blasint>(m), N = static_cast<blasint>(n), K = static_cast<blasint>(k);
  const auto la = static_cast<blasint>(lda), lb = static_cast<blasint>(ldb), lc = static_cast<blasint>(ldc);
  if constexpr (std::is_same_v<E, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, la, B, lb, 1.0f, C, lc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, la, B, lb, 1.0, C, lc);
}

}  // namespace hkt::cpu
