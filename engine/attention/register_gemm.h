// register_gemm.h: the attention tiles' matrix product as one register-blocked loop (AVX2),
//
//   C[m x n] = alpha * op(A) * B[k x n]   (+ C when accumulating),
//
// row-major, op(A) = A [m x k] or A^T for A stored [k x m]. B is read where it lies, row by
// row, and A one element at a time (a broadcast), so neither operand is packed.
//
// Why a product of our own: the tiles are narrow. With d_h = 32 the backward's `p V`-shaped
// products are 128 x 32 x 256, and a BLAS call repacks both operands every time: OpenBLAS's
// packing was 12 % of the fused attention's time (perf, docs/benchmarks.md). One core of an
// AMD EPYC (AVX2), 1 thread, C += alpha A B repeated on one tile, GFLOP/s of this loop
// against one cblas_sgemm call (OpenBLAS 0.3.21):
//   128 x  32 x 256 (p V, ds K)   97 against 74
//   256 x  32 x 128 (p^T dO)      96 against 63 to 80
//   128 x 256 x  32 (Q K^T)       88 against 80
//    64 x  32 x 128 (coarse ds K) 98 against 52
// docs/attention.md ("Inside a tile") has the effect on the whole op.
//
// The block: R <= 6 rows of C by two vectors of W columns (W = 8 floats or 4 doubles) held
// in 12 of the 16 ymm registers; for each of the k steps it loads two vectors of one B
// row, broadcasts R elements of A and does 2 R fused multiply-adds. That is the classic
// 6 x 16 AVX2 micro-kernel shape (BLIS's Haswell kernel has it): 8 loads per 12 FMAs,
// within what a core issues per cycle. Columns past the last full block go through masked
// loads and stores, so any n works and nothing outside C's m x n tile is read or written.
//
// Each C element is alpha times one dot product accumulated in k order (p = 0, 1, ...),
// either stored (one multiply) or added to C (one fused multiply-add): the result depends on the shapes only,
// never on threads or alignment, so runs stay deterministic.
#pragma once

#include <cstdint>
#include <type_traits>

// Every function that touches a ymm register is compiled for AVX2 and FMA whatever the
// build's -march (HKT_AVX2), so portable builds (HKT_NATIVE_ARCH=OFF, the sanitizer build)
// have the loop too; register_gemm_available() says at run time whether the CPU has them.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HKT_REGISTER_GEMM 1
#define HKT_AVX2 __attribute__((target("avx2,fma")))
#else
#define HKT_REGISTER_GEMM 0
#endif

namespace hkt::attention {

#if HKT_REGISTER_GEMM

namespace register_gemm_detail {

// One ymm register of E: 8 floats or 4 doubles, and the operations the block uses.
template <class E>
struct Vec;

template <>
struct Vec<float> {
  using V = __m256;
  static constexpr int W = 8;
  HKT_AVX2 static V zero() { return _mm256_setzero_ps(); }
  HKT_AVX2 static V set1(float x) { return _mm256_set1_ps(x); }
  HKT_AVX2 static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  HKT_AVX2 static V load(const float* p) { return _mm256_loadu_ps(p); }
  HKT_AVX2 static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  HKT_AVX2 static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  HKT_AVX2 static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  // Lanes 0 .. lanes-1 set (all bits), the rest clear: the mask of maskload / maskstore.
  HKT_AVX2 static __m256i mask(std::int64_t lanes) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(lanes)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  HKT_AVX2 static V load(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  HKT_AVX2 static void store(float* p, __m256i m, V v) { _mm256_maskstore_ps(p, m, v); }
};

template <>
struct Vec<double> {
  using V = __m256d;
  static constexpr int W = 4;
  HKT_AVX2 static V zero() { return _mm256_setzero_pd(); }
  HKT_AVX2 static V set1(double x) { return _mm256_set1_pd(x); }
  HKT_AVX2 static V broadcast(const double* p) { return _mm256_broadcast_sd(p); }
  HKT_AVX2 static V load(const double* p) { return _mm256_loadu_pd(p); }
  HKT_AVX2 static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  HKT_AVX2 static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  HKT_AVX2 static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  HKT_AVX2 static __m256i mask(std::int64_t lanes) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(lanes), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  HKT_AVX2 static V load(const double* p, __m256i m) { return _mm256_maskload_pd(p, m); }
  HKT_AVX2 static void store(double* p, __m256i m, V v) { _mm256_maskstore_pd(p, m, v); }
};

// C[R x NV*W] (+)= alpha op(A)[R x k] B[k x NV*W]: R rows by NV vectors of C in registers.
// A points at the block's first row (op(A)[0][0]); with Masked, vector v reads and writes
// only the lanes of mask[v] (the column tail).
template <class E, int R, int NV, bool TransA, bool Masked>
HKT_AVX2 void block(std::int64_t k, E alpha, const E* A, std::int64_t lda, const E* B, std::int64_t ldb,
                    bool accumulate, E* C, std::int64_t ldc, const __m256i* mask) {
  using X = Vec<E>;
  using V = typename X::V;
  // The k loop below is unrolled 4 times: its counter and address updates then cost a
  // quarter as much beside the FMAs (on 128 x 32 x 256 tiles, 93 -> 96 GFLOP/s, and 70 -> 96
  // for A^T).
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = X::zero();
#pragma GCC unroll 4
  for (std::int64_t p = 0; p < k; ++p) {
    const E* brow = B + p * ldb;
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = Masked ? X::load(brow + v * X::W, mask[v]) : X::load(brow + v * X::W);
    for (int r = 0; r < R; ++r) {
      // op(A)[r][p]: A[r][p], or A^T's, which is A[p][r]
      const V a = X::broadcast(TransA ? A + p * lda + r : A + r * lda + p);
      for (int v = 0; v < NV; ++v) acc[r][v] = X::fma(a, b[v], acc[r][v]);
    }
  }
  const V al = X::set1(alpha);
  for (int r = 0; r < R; ++r) {
    E* crow = C + r * ldc;
    for (int v = 0; v < NV; ++v) {
      E* c = crow + v * X::W;
      if constexpr (Masked) {
        X::store(c, mask[v], accumulate ? X::fma(al, acc[r][v], X::load(c, mask[v])) : X::mul(al, acc[r][v]));
      } else {
        X::store(c, accumulate ? X::fma(al, acc[r][v], X::load(c)) : X::mul(al, acc[r][v]));
      }
    }
  }
}

// The column masks of a product n columns wide: its columns are blocks of two full
// vectors, then a tail of 0 to 2W - 1 columns in one block of one or two masked vectors.
template <class E>
struct ColumnTail {
  std::int64_t full_end = 0;  // columns [0, full_end) are whole blocks of 2W
  int vectors = 0;            // 0 (no tail), 1 or 2
  __m256i mask[2];
  HKT_AVX2 explicit ColumnTail(std::int64_t n) {
    constexpr int W = Vec<E>::W;
    full_end = n / (2 * W) * (2 * W);
    const std::int64_t tail = n - full_end;
    vectors = tail == 0 ? 0 : tail > W ? 2 : 1;
    mask[0] = Vec<E>::mask(tail > W ? W : tail);
    mask[1] = Vec<E>::mask(tail > W ? tail - W : 0);
  }
};

// R rows of C, every column block left to right. A row block outside, the columns
// inside: C is then written row by row, and the block's R rows of A stay in L1 while
// B's rows stream past (on the scores' 128 x 256 x 32 tile, 76 -> 88 GFLOP/s against
// columns outside; the same on the narrow products).
template <class E, int R, bool TransA>
HKT_AVX2 void row_block(std::int64_t k, E alpha, const E* A, std::int64_t lda, const E* B, std::int64_t ldb,
                        bool accumulate, E* C, std::int64_t ldc, const ColumnTail<E>& tail) {
  constexpr int W = Vec<E>::W;
  for (std::int64_t j = 0; j < tail.full_end; j += 2 * W)
    block<E, R, 2, TransA, false>(k, alpha, A, lda, B + j, ldb, accumulate, C + j, ldc, tail.mask);
  const std::int64_t j = tail.full_end;
  if (tail.vectors == 2)
    block<E, R, 2, TransA, true>(k, alpha, A, lda, B + j, ldb, accumulate, C + j, ldc, tail.mask);
  else if (tail.vectors == 1)
    block<E, R, 1, TransA, true>(k, alpha, A, lda, B + j, ldb, accumulate, C + j, ldc, tail.mask);
}

// Rows in blocks of 6; 7 or 8 rows left go as 4 + 3 or 4 + 4; 1 to 6 left, as one block.
// One core, one tile repeated, best of 5 alternating runs, GFLOP/s of 6 + 2 against
// 4 + 4 for the last 8 rows (m = 128 and 32 leave 8): 128 x 64 x 256 88.6 -> 91.4,
// 32 x 64 x 64 90.4 -> 95.2, 128 x 256 x 64 79.5 -> 81.4.
template <class E, bool TransA>
HKT_AVX2 void register_gemm_impl(std::int64_t m, std::int64_t n, std::int64_t k, E alpha, const E* A, std::int64_t lda,
                                 const E* B, std::int64_t ldb, bool accumulate, E* C, std::int64_t ldc) {
  const ColumnTail<E> tail(n);
  // Where op(A)'s row i starts: A[i][0], or A^T's, which is A[0][i].
  auto a_row = [&](std::int64_t i) { return TransA ? A + i : A + i * lda; };
  for (std::int64_t i = 0; i < m;) {
    // Blocks of 6 rows, except that 7 or 8 rows left go as 4 + 3 or 4 + 4: 6 + 1 or
    // 6 + 2 would end on a block with 2 or 4 of its 12 accumulators in use.
    const std::int64_t left = m - i, rows = left == 7 || left == 8 ? 4 : left < 6 ? left : 6;
    const auto run = [&](auto r) {
      row_block<E, decltype(r)::value, TransA>(k, alpha, a_row(i), lda, B, ldb, accumulate, C + i * ldc, ldc, tail);
    };
    switch (rows) {
      case 6:
        run(std::integral_constant<int, 6>{});
        break;
      case 5:
        run(std::integral_constant<int, 5>{});
        break;
      case 4:
        run(std::integral_constant<int, 4>{});
        break;
      case 3:
        run(std::integral_constant<int, 3>{});
        break;
      case 2:
        run(std::integral_constant<int, 2>{});
        break;
      default:
        run(std::integral_constant<int, 1>{});
        break;
    }
    i += rows;
  }
}

}  // namespace register_gemm_detail

/// C[m x n] = alpha * op(A) * B[k x n], plus C's old value when `accumulate` (C is not read
/// otherwise). Row-major: op(A) is A [m x k] (lda >= k) or, with trans_a, A^T for A stored
/// [k x m] (lda >= m); ldb >= n; ldc >= n. E is float or double. m or n = 0 does nothing;
/// k = 0 leaves C (accumulate) or zeroes it. Touches only C's m x n elements. No error is
/// raised: the callers check shapes. Only on x86-64 (HKT_REGISTER_GEMM), and only to be
/// called where register_gemm_available(); tile_gemm.h falls back to BLAS elsewhere.
template <class E>
HKT_AVX2 void register_gemm(bool trans_a, std::int64_t m, std::int64_t n, std::int64_t k, E alpha, const E* A,
                            std::int64_t lda, const E* B, std::int64_t ldb, bool accumulate, E* C, std::int64_t ldc) {
  static_assert(std::is_same_v<E, float> || std::is_same_v<E, double>, "register_gemm: E is float or double");
  if (m == 0 || n == 0 || (k == 0 && accumulate)) return;
  if (k == 0) {  // an empty sum: C = 0 (alpha * 0 would be NaN for an infinite alpha)
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) C[i * ldc + j] = E(0);
    return;
  }
  if (trans_a)
    register_gemm_detail::register_gemm_impl<E, true>(m, n, k, alpha, A, lda, B, ldb, accumulate, C, ldc);
  else
    register_gemm_detail::register_gemm_impl<E, false>(m, n, k, alpha, A, lda, B, ldb, accumulate, C, ldc);
}

/// True when this CPU runs AVX2 and FMA instructions (checked once), so register_gemm may
/// be called.
inline bool register_gemm_available() {
  static const bool available = [] {
    __builtin_cpu_init();  // needed only if this ran before the constructors, harmless after
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return available;
}

#endif  // HKT_REGISTER_GEMM

}  // namespace hkt::attention
