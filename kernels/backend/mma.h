// mma.h: the warp-level tensor-core product of shape m16n8k16 with bfloat16 inputs and
// float32 accumulators,
//
//   D[16 x 8] = A[16 x 16] B[16 x 8] + C[16 x 8]
//   (PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, sm_80 and later),
//
// built on the fragment layout and bfloat16 conversions of kernels/common/mma_layout.h
// (which lane of the warp holds which elements of A, B, C and D).
//
// The 32 lanes of a warp execute the instruction together; each lane passes its own
// fragments and gets its own four elements of D. The layout (PTX ISA, section "Matrix
// Fragments for mma.m16n8k16 with floating point type"), with g = lane / 4 (the lane's
// group) and t = lane % 4 (its place in the group):
//   A, 8 bf16 in 4 registers (element i in register i / 2, the even one in the low 16 bits):
//     row = g + 8 ((i / 2) % 2),  col = 2 t + (i % 2) + 8 (i / 4)
//   B, 4 bf16 in 2 registers (".col": B is read column by column, so fragments are
//     loaded from B^T, whose row n is column n of B):
//     row (k) = 2 t + (i % 2) + 8 (i / 2),  col (n) = g
//   C and D, 4 floats:
//     row = g + 8 (i / 2),  col = 2 t + (i % 2)
// MmaLayout (kernels/common/mma_layout.h) is these formulas, written once; the model,
// the loads of warp_mma_gemm and the tests all use it.
//
// Under nvcc the product is the instruction (inline PTX). In the EMULATE build it is
// mma_m16n8k16_model: each lane fetches the elements it needs (two rows of A, two
// columns of B) from the lanes that hold them with warp shuffles, which the block
// emulator checks like any shuffle (the whole warp must take part, at the same
// operation), then adds the products. The model compiles under nvcc too, so a GPU can
// check the instruction against it (tests/test_mma.cpp, tools/gpu_check.sh).
//
// Numerics of the model: bf16 products are exact in float64 (8-bit significands); the
// 16 products and c are summed in float64 (exact while the terms span fewer than 53
// bits), then rounded to float32. The ISA does not specify the order or the
// intermediate precision of the hardware's sum, so on general inputs the GPU and the
// model may differ in the last bits of float32; on inputs whose sums are exact (small
// integers) they agree to the bit.
#pragma once

#include <cstdint>

#include "block.h"
#include "common/mma_layout.h"

namespace hkt::cuda {

// ---- the product --------------------------------------------------------------------

/// The software model of the instruction (numerics at the top of this file). Every lane
/// of the warp must call it together (it shuffles with the full mask).
HKT_DEVICE void mma_m16n8k16_model(float (&d)[4], const MmaFragments& f, const float (&c)[4]) {
  constexpr unsigned kWarp = 0xffffffffu;
  const unsigned lane = dev::thread_index() % 32, group = lane / 4, t = lane % 4;
  // This lane's D elements lie in rows g and g + 8 and columns 2t and 2t + 1; it needs
  // those two rows of A (held by the four lanes of its own group) and those two columns
  // of B (held by the lanes of groups 2t and 2t + 1).
  double a_rows[2][MmaLayout::kK], b_cols[2][MmaLayout::kK];
  // Lane src = 4 group + s of this group holds, in register r, A's elements 2r and 2r + 1:
  // row a_row(src, 2r) = group + 8 (r % 2), columns a_col(src, 2r) and one more.
  for (unsigned s = 0; s < 4; ++s) {
    const unsigned src = 4 * group + s;
    for (int r = 0; r < 4; ++r) {
      const std::uint32_t v = dev::shfl(kWarp, f.a[r], src);
      for (int h = 0; h < 2; ++h) {
        const int i = 2 * r + h;
        a_rows[r % 2][MmaLayout::a_col(src, i)] = bf16_to_float(static_cast<std::uint16_t>(v >> (16 * h)));
      }
    }
  }
  for (unsigned col = 0; col < 2; ++col)
    for (unsigned s = 0; s < 4; ++s) {
      const unsigned src = 4 * (2 * t + col) + s;
      for (int r = 0; r < 2; ++r) {
        const std::uint32_t v = dev::shfl(kWarp, f.b[r], src);
        for (int h = 0; h < 2; ++h) {
          const int i = 2 * r + h;
          b_cols[col][MmaLayout::b_row(src, i)] = bf16_to_float(static_cast<std::uint16_t>(v >> (16 * h)));
        }
      }
    }
  // D's element i: row c_row(lane, i) = group + 8 (i / 2), column c_col(lane, i) = 2t + i % 2.
  for (int i = 0; i < 4; ++i) {
    double sum = c[i];
    for (int k = 0; k < MmaLayout::kK; ++k) sum += a_rows[i / 2][k] * b_cols[i % 2][k];
    d[i] = static_cast<float>(sum);
  }
}

/// D = A B + C for the warp: the tensor-core instruction under nvcc (sm_80+), the model
/// in the EMULATE build. Every lane of the warp must call it together.
HKT_DEVICE void mma_m16n8k16(float (&d)[4], const MmaFragments& f, const float (&c)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "mma.sync m16n8k16 with bf16 needs sm_80 or later (HKT_CUDA_ARCHITECTURES)"
#elif defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(f.a[0]), "r"(f.a[1]), "r"(f.a[2]), "r"(f.a[3]), "r"(f.b[0]), "r"(f.b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#else
  mma_m16n8k16_model(d, f, c);
#endif
}

/// One lane's fragments of the 16 x 16 block of A at (row0, k0) and the 16 x 8 block of
/// B at (k0, col0), read from float32 A [.. x lda] and from B^T [.. x ldb] (row n of B^T is
/// column n of B), each value rounded to bf16.
HKT_DEVICE MmaFragments load_mma_fragments(const float* A, std::int64_t lda, const float* Bt, std::int64_t ldb,
                                           std::int64_t row0, std::int64_t col0, std::int64_t k0, unsigned lane) {
  MmaFragments f{};
  for (int r = 0; r < 4; ++r) {
    const int i = 2 * r;  // elements i and i + 1 are neighbours in a row of A
    const float* p = A + (row0 + MmaLayout::a_row(lane, i)) * lda + k0 + MmaLayout::a_col(lane, i);
    f.a[r] = pack_bf16x2(bf16_bits(p[0]), bf16_bits(p[1]));
  }
  for (int r = 0; r < 2; ++r) {
    const int i = 2 * r;  // elements i and i + 1 are neighbours in a column of B (a row of B^T)
    const float* p = Bt + (col0 + MmaLayout::b_col(lane, i)) * ldb + k0 + MmaLayout::b_row(lane, i);
    f.b[r] = pack_bf16x2(bf16_bits(p[0]), bf16_bits(p[1]));
  }
  return f;
}

/// A warp's matrix product from the instruction: D[m x n] = A[m x k] B[k x n] + C[m x n],
/// A, C and D row-major (lda, ldc, ldd), B given as B^T [n x k] (ldb); m a multiple of
/// 16, n of 8, k of 16; A and B rounded to bf16, accumulated in float32 across the k
/// blocks in order. D may be C. Every lane of the warp calls it with the same arguments.
/// Model = true runs mma_m16n8k16_model instead of the instruction.
template <bool Model = false>
HKT_DEVICE void warp_mma_gemm(const float* A, std::int64_t lda, const float* Bt, std::int64_t ldb, const float* C,
                              std::int64_t ldc, float* D, std::int64_t ldd, std::int64_t m, std::int64_t n,
                              std::int64_t k) {
  const unsigned lane = dev::thread_index() % 32;
  for (std::int64_t row0 = 0; row0 < m; row0 += MmaLayout::kM)
    for (std::int64_t col0 = 0; col0 < n; col0 += MmaLayout::kN) {
      float acc[4];
      for (int i = 0; i < 4; ++i)
        acc[i] = C[(row0 + MmaLayout::c_row(lane, i)) * ldc + col0 + MmaLayout::c_col(lane, i)];
      for (std::int64_t k0 = 0; k0 < k; k0 += MmaLayout::kK) {
        const MmaFragments f = load_mma_fragments(A, lda, Bt, ldb, row0, col0, k0, lane);
        float out[4];
        if constexpr (Model)
          mma_m16n8k16_model(out, f, acc);
        else
          mma_m16n8k16(out, f, acc);
        for (int i = 0; i < 4; ++i) acc[i] = out[i];
      }
      for (int i = 0; i < 4; ++i)
        D[(row0 + MmaLayout::c_row(lane, i)) * ldd + col0 + MmaLayout::c_col(lane, i)] = acc[i];
    }
}

}  // namespace hkt::cuda
