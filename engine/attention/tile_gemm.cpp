// tile_gemm.cpp: the attention tile product through single-threaded BLAS (tile_gemm.h).
#include "tile_gemm.h"

#include <cblas.h>

#include <type_traits>

#include "../ops/cpu_kernels.h"

namespace hkt::attention {

namespace {

// C += alpha op(A) B with beta = 1; A is [m x k] or, transposed, stored [k x m].
template <class E>
void gemm_acc(bool trans_a, std::int64_t m, std::int64_t n, std::int64_t k, E alpha, const E* A, std::int64_t lda,
              const E* B, std::int64_t ldb, E* C, std::int64_t ldc) {
  if (m == 0 || n == 0 || k == 0) return;
  cpu::use_single_threaded_blas();
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto M = static_cast<blasint>(m), N = static_cast<blasint>(n), K = static_cast<blasint>(k);
  if constexpr (std::is_same_v<E, float>)
    cblas_sgemm(CblasRowMajor, ta, CblasNoTrans, M, N, K, alpha, A, static_cast<blasint>(lda), B,
                static_cast<blasint>(ldb), 1.0f, C, static_cast<blasint>(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, CblasNoTrans, M, N, K, alpha, A, static_cast<blasint>(lda), B,
                static_cast<blasint>(ldb), 1.0, C, static_cast<blasint>(ldc));
}

}  // namespace

void tile_gemm(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* A, std::int64_t lda,
               const float* B, std::int64_t ldb, float* C, std::int64_t ldc) {
  gemm_acc(false, m, n, k, alpha, A, lda, B, ldb, C, ldc);
}
void tile_gemm(std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* A, std::int64_t lda,
               const double* B, std::int64_t ldb, double* C, std::int64_t ldc) {
  gemm_acc(false, m, n, k, alpha, A, lda, B, ldb, C, ldc);
}
void tile_gemm_tn(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* A, std::int64_t lda,
                  const float* B, std::int64_t ldb, float* C, std::int64_t ldc) {
  gemm_acc(true, m, n, k, alpha, A, lda, B, ldb, C, ldc);
}
void tile_gemm_tn(std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* A, std::int64_t lda,
                  const double* B, std::int64_t ldb, double* C, std::int64_t ldc) {
  gemm_acc(true, m, n, k, alpha, A, lda, B, ldb, C, ldc);
}

}  // namespace hkt::attention
