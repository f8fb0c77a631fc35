// gemm.cu: matrix products through cuBLAS (cublasGemmStridedBatchedEx), with the
// compute type set explicitly: CUBLAS_COMPUTE_32F for float32 (TF32 tensor cores only
// after set_allow_tf32(true)), CUBLAS_COMPUTE_64F for float64. Every call is checked.
// The empty cases and the TF32 setting are in ../device_common.cpp.
#include <cublas_v2.h>

#include <climits>

#include "check.cuh"
#include "cuda_backend.h"
#include "device_common.h"

namespace hkt::cuda {

cudaStream_t stream();

namespace {

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLAS error at ") + file + ":" + std::to_string(line) + ": " + call + ": " +
                cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")");
}
#define HKT_CUBLAS_CHECK(call) check_cublas((call), #call, __FILE__, __LINE__)

cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t created = nullptr;
    HKT_CUBLAS_CHECK(cublasCreate(&created));
    HKT_CUBLAS_CHECK(cublasSetStream(created, stream()));
    // Deterministic results: cuBLAS picks no split-K reduction with atomics in this mode.
    HKT_CUBLAS_CHECK(cublasSetAtomicsMode(created, CUBLAS_ATOMICS_NOT_ALLOWED));
    return created;
  }();
  return h;
}

}  // namespace

void gemm_strided_batched_nonempty(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                                   const void* a, std::int64_t stride_a, const void* b, std::int64_t stride_b, void* c,
                                   std::int64_t stride_c, std::int64_t batch, DType dtype, bool allow_tf32) {
  // cublasGemmStridedBatchedEx takes int sizes (the strides are 64-bit).
  for (const std::int64_t v : {m, n, k, batch})
    if (v > INT_MAX)
      throw Error("matmul on cuda: a size of " + std::to_string(v) +
                  " exceeds cuBLAS's int range (m = " + std::to_string(m) + ", n = " + std::to_string(n) +
                  ", k = " + std::to_string(k) + ", batch = " + std::to_string(batch) + ")");
  // cuBLAS is column-major. A row-major C = op(A) op(B) is the column-major
  // C^T = op(B)^T op(A)^T: swap the operands and pass each matrix as it lies in memory.
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int lda = static_cast<int>(trans_a ? m : k), ldb = static_cast<int>(trans_b ? k : n), ldc = static_cast<int>(n);
  const bool f64 = dtype == DType::Float64;
  const cudaDataType_t type = f64 ? CUDA_R_64F : CUDA_R_32F;
  const cublasComputeType_t compute =
      f64 ? CUBLAS_COMPUTE_64F : (allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
  const double one_d = 1.0, zero_d = 0.0;
  const float one_f = 1.0f, zero_f = 0.0f;
  const void* alpha = f64 ? static_cast<const void*>(&one_d) : static_cast<const void*>(&one_f);
  const void* beta = f64 ? static_cast<const void*>(&zero_d) : static_cast<const void*>(&zero_f);
  HKT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle(), op_b, op_a, static_cast<int>(n), static_cast<int>(m),
                                              static_cast<int>(k), alpha, b, type, ldb, stride_b, a, type, lda,
                                              stride_a, beta, c, type, ldc, stride_c, static_cast<int>(batch), compute,
                                              CUBLAS_GEMM_DEFAULT));
}

}  // namespace hkt::cuda
