// gemm.cpp (EMULATE build): the strided batched product of cuda_backend.h through CPU
// BLAS (cpu::blas_gemm, engine/ops/blas_gemm.h), with the same row-major meaning as the cuBLAS call in
// kernels/cuda/gemm.cu (the empty cases and the TF32 setting, which the host ignores, are in device_common.cpp).
#include "device_common.h"
#include "ops/blas_gemm.h"

namespace hkt::cuda {

void gemm_strided_batched_nonempty(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                                   const void* a, std::int64_t stride_a, const void* b, std::int64_t stride_b, void* c,
                                   std::int64_t stride_c, std::int64_t batch, DType dtype, bool) {
  const std::int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  for (std::int64_t i = 0; i < batch; ++i) {
    if (dtype == DType::Float64)
      cpu::blas_gemm(trans_a, trans_b, m, n, k, 1.0, static_cast<const double*>(a) + i * stride_a, lda,
                     static_cast<const double*>(b) + i * stride_b, ldb, false, static_cast<double*>(c) + i * stride_c,
                     n);
    else
      cpu::blas_gemm(trans_a, trans_b, m, n, k, 1.0f, static_cast<const float*>(a) + i * stride_a, lda,
                     static_cast<const float*>(b) + i * stride_b, ldb, false, static_cast<float*>(c) + i * stride_c, n);
  }
}

}  // namespace hkt::cuda
