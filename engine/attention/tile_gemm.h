// tile_gemm.h: the small matrix product inside every attention tile,
//   C[m x n] += alpha * A[m x k] * B[k x n]   (row-major, leading dimensions lda, ldb, ldc).
//
// Why not BLAS: the tiles are at most 64 x 64 and are called millions of times from
// inside OpenMP tasks; BLAS's per-call overhead and its own threading would dominate.
// Why this loop order (i, p, j): the innermost loop runs over contiguous elements of a
// row of B and a row of C with no reduction, which the compiler vectorises as it is
// (measured 15.6 GFLOP/s float32 with SSE2, 43 with -march=native, for 64^3 on this
// project's CI machine; a 4 x 8 register-blocked version written in plain C++ was not
// vectorised and ran at 4.4). The C row and the B tile stay in L1 across the p loop.
#pragma once

#include <cstdint>

namespace hkt::attention {

template <class T>
void tile_gemm(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* A, std::int64_t lda, const T* B,
               std::int64_t ldb, T* C, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i) {
    T* c = C + i * ldc;
    for (std::int64_t p = 0; p < k; ++p) {
      const T a = alpha * A[i * lda + p];
      const T* b = B + p * ldb;
      for (std::int64_t j = 0; j < n; ++j) c[j] += a * b[j];
    }
  }
}

/// dst[c x r] = src[r x c]^T (leading dimensions lds, ldd).
template <class T>
void transpose_tile(std::int64_t rows, std::int64_t cols, const T* src, std::int64_t lds, T* dst, std::int64_t ldd) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

}  // namespace hkt::attention
