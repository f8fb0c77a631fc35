// gemm.cpp (EMULATE build): the strided batched product of cuda_backend.h through CPU
// BLAS, with the same row-major meaning as the cuBLAS call in kernels/cuda/gemm.cu (the
// empty cases and the TF32 setting, which the host ignores, are in device_common.cpp).
#include <cblas.h>

#include "device_common.h"

namespace hkt::cuda {

void gemm_strided_batched_nonempty(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                                   const void* a, std::int64_t stride_a, const void* b, std::int64_t stride_b, void* c,
                                   std::int64_t stride_c, std::int64_t batch, DType dtype, bool) {
  const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  const auto M = static_cast<blasint>(m), N = static_cast<blasint>(n), K = static_cast<blasint>(k);
  const auto lda = static_cast<blasint>(trans_a ? m : k), ldb = static_cast<blasint>(trans_b ? k : n);
  for (std::int64_t i = 0; i < batch; ++i) {
    if (dtype == DType::Float64)
      cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, 1.0, static_cast<const double*>(a) + i * stride_a, lda,
                  static_cast<const double*>(b) + i * stride_b, ldb, 0.0, static_cast<double*>(c) + i * stride_c, N);
    else
      cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, static_cast<const float*>(a) + i * stride_a, lda,
                  static_cast<const float*>(b) + i * stride_b, ldb, 0.0f, static_cast<float*>(c) + i * stride_c, N);
  }
}

}  // namespace hkt::cuda
