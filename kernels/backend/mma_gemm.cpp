// mma_gemm.cpp: mma_bf16_gemm of cuda_backend.h, one warp running warp_mma_gemm
// (kernels/backend/mma.h) over a whole small product. It exists to check the tensor-core
// product: its fragment layout and its model against the instruction on a GPU, and
// against a plain loop everywhere (tests/test_mma.cpp).
#include <string>

#include "block.h"
#include "cuda_backend.h"
#include "error.h"
#include "mma.h"

namespace hkt::cuda {

namespace mma_check {

template <bool Model>
struct MmaGemmKernel {
  static constexpr unsigned kThreads = 32;  // one warp
  const float *a, *bt, *c;
  float* d;
  std::int64_t m, n, k;
  HKT_DEVICE void operator()() const { warp_mma_gemm<Model>(a, k, bt, k, c, n, d, n, m, n, k); }
};

}  // namespace mma_check

void mma_bf16_gemm(const float* a, const float* bt, const float* c, float* d, std::int64_t m, std::int64_t n,
                   std::int64_t k, bool model) {
  check(m > 0 && n > 0 && k > 0 && m % MmaLayout::kM == 0 && n % MmaLayout::kN == 0 && k % MmaLayout::kK == 0,
        "mma_bf16_gemm: m, n, k must be positive multiples of 16, 8 and 16, got " + std::to_string(m) + ", " +
            std::to_string(n) + ", " + std::to_string(k));
  if (model)
    launch_blocks("mma_bf16_gemm (model)", Grid{}, 0, mma_check::MmaGemmKernel<true>{a, bt, c, d, m, n, k});
  else
    launch_blocks("mma_bf16_gemm", Grid{}, 0, mma_check::MmaGemmKernel<false>{a, bt, c, d, m, n, k});
}

}  // namespace hkt::cuda
