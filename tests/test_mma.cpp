// test_mma.cpp: the warp tensor-core product of kernels/backend/mma.h. Everywhere: the
// bfloat16 rounding and the fragment layout (every element of A, B and C held by
// exactly one lane and register, at the places the PTX ISA's figures show). With a CUDA
// device or in the EMULATE build: the product through cuda::mma_bf16_gemm against plain
// loops, on inputs whose sums are exact (so the expected values are exact), identity and
// permutation matrices that show where each element lands, real-valued inputs within a
// float32 bound, the same bits under every emulator thread order, and on a GPU the
// tensor-core instruction equal to the model to the bit on those exact products.
#include <bit>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "common/mma_layout.h"
#include "cuda_backend.h"
#include "test_helpers.h"

#if defined(HKT_EMULATE_CUDA)
#include "emulated/block_emulator.h"
#endif

using namespace hkt;
using namespace hkt::test;
using cuda::MmaLayout;

TEST_CASE("mma: bf16 rounds to nearest with ties to even, keeps infinities and NaN", "[mma]") {
  const auto bits = [](float x) { return cuda::bf16_bits(x); };
  CHECK(bits(1.0f) == 0x3f80);
  CHECK(bits(-2.0f) == 0xc000);
  CHECK(bits(0.0f) == 0x0000);
  CHECK(bits(-0.0f) == 0x8000);
  // 1 + 2^-8 lies halfway between the bf16 neighbours 1 and 1 + 2^-7: ties to the even one, 1.
  CHECK(bits(1.0f + 0x1p-8f) == 0x3f80);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd last bit) and 1 + 2^-6: rounds up to even.
  CHECK(bits(1.0f + 3 * 0x1p-8f) == 0x3f82);
  // Just above the halfway point rounds up, just below rounds down.
  CHECK(bits(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);
  CHECK(bits(1.0f + 0x1p-8f - 0x1p-20f) == 0x3f80);
  CHECK(bits(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(bits(-std::numeric_limits<float>::infinity()) == 0xff80);
  CHECK(bits(std::numeric_limits<float>::max()) == 0x7f80);  // above the largest bf16 (about 3.39e38)
  // Just below the midpoint between the largest bf16 (0x7f7f) and infinity: down to 0x7f7f;
  // at the midpoint: a tie, to the even neighbour, infinity.
  CHECK(bits(std::bit_cast<float>(0x7f7f7fffu)) == 0x7f7f);
  CHECK(bits(std::bit_cast<float>(0x7f7f8000u)) == 0x7f80);
  const std::uint16_t nan = bits(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7f80) == 0x7f80);
  CHECK((nan & 0x007f) != 0);
  CHECK(std::isnan(cuda::bf16_to_float(nan)));
  // NaNs whose payload lies only in the dropped bits, or that would carry into the sign
  // on rounding: quiet NaNs of the same sign, never infinity or zero.
  CHECK(bits(std::bit_cast<float>(0x7f800001u)) == 0x7fc0);
  CHECK(bits(std::bit_cast<float>(0x7fffffffu)) == 0x7fff);
  CHECK(bits(std::bit_cast<float>(0xff800001u)) == 0xffc0);
  // Back to float: exact, and integers up to 256 survive the round trip.
  CHECK(cuda::bf16_to_float(0x3f81) == 1.0f + 0x1p-7f);
  for (int v = -256; v <= 256; ++v) CHECK(cuda::bf16_to_float(bits(static_cast<float>(v))) == static_cast<float>(v));
  CHECK(cuda::pack_bf16x2(0x1234, 0xabcd) == 0xabcd1234u);
}

TEST_CASE("mma: the fragment layout covers A, B and C once each, as the PTX ISA's figures show", "[mma]") {
  // Every (row, col) of A [16 x 16] (8 elements per lane), B [16 x 8] (4) and C [16 x 8] (4)
  // is held by exactly one (lane, element).
  std::set<std::pair<int, int>> a, b, c;
  for (unsigned lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) a.insert({MmaLayout::a_row(lane, i), MmaLayout::a_col(lane, i)});
    for (int i = 0; i < 4; ++i) b.insert({MmaLayout::b_row(lane, i), MmaLayout::b_col(lane, i)});
    for (int i = 0; i < 4; ++i) c.insert({MmaLayout::c_row(lane, i), MmaLayout::c_col(lane, i)});
  }
  CHECK(a.size() == 256);
  CHECK(b.size() == 128);
  CHECK(c.size() == 128);
  for (const auto& [r, col] : a) CHECK((r >= 0 && r < 16 && col >= 0 && col < 16));
  for (const auto& [r, col] : b) CHECK((r >= 0 && r < 16 && col >= 0 && col < 8));
  for (const auto& [r, col] : c) CHECK((r >= 0 && r < 16 && col >= 0 && col < 8));
  // Read off the ISA's figures (figure "MMA .m16n8k16 fragment layout for matrix A with
  // .f16/.bf16 type" and its B and C/D companions): lane 0 holds A's a0..a7 at (0,0)
  // (0,1) (8,0) (8,1) (0,8) (0,9) (8,8) (8,9); lane 5 (group 1, place 1) a0 at (1,2) and
  // a7 at (9,11); lane 31 a4 at (7,14). B: lane 0 b0..b3 at k = 0, 1, 8, 9 of column 0;
  // lane 13 b2 at (10, 3). C: lane 6 c0..c3 at (1,4) (1,5) (9,4) (9,5).
  const int a0[8][2] = {{0, 0}, {0, 1}, {8, 0}, {8, 1}, {0, 8}, {0, 9}, {8, 8}, {8, 9}};
  for (int i = 0; i < 8; ++i) {
    CHECK(MmaLayout::a_row(0, i) == a0[i][0]);
    CHECK(MmaLayout::a_col(0, i) == a0[i][1]);
  }
  CHECK((MmaLayout::a_row(5, 0) == 1 && MmaLayout::a_col(5, 0) == 2));
  CHECK((MmaLayout::a_row(5, 7) == 9 && MmaLayout::a_col(5, 7) == 11));
  CHECK((MmaLayout::a_row(31, 4) == 7 && MmaLayout::a_col(31, 4) == 14));
  const int b0[4] = {0, 1, 8, 9};
  for (int i = 0; i < 4; ++i) CHECK((MmaLayout::b_row(0, i) == b0[i] && MmaLayout::b_col(0, i) == 0));
  CHECK((MmaLayout::b_row(13, 2) == 10 && MmaLayout::b_col(13, 2) == 3));
  const int c6[4][2] = {{1, 4}, {1, 5}, {9, 4}, {9, 5}};
  for (int i = 0; i < 4; ++i) CHECK((MmaLayout::c_row(6, i) == c6[i][0] && MmaLayout::c_col(6, i) == c6[i][1]));
  // These figure values are the only check against a layout that is wrong but consistent
  // (the same permutation of k in A's columns and B's rows changes no product, on the
  // GPU either). Below, what the loads and the model take for granted: a register holds
  // two neighbours (A: one row, consecutive columns; B: one column, consecutive k), the
  // lanes of group g hold A's rows g and g + 8 and B's column g, and D's elements of lane
  // (g, t) are rows g, g + 8 and columns 2t, 2t + 1.
  for (unsigned lane = 0; lane < 32; ++lane) {
    const int g = static_cast<int>(lane / 4), t = static_cast<int>(lane % 4);
    for (int r = 0; r < 4; ++r) {
      CHECK(MmaLayout::a_row(lane, 2 * r) == MmaLayout::a_row(lane, 2 * r + 1));
      CHECK(MmaLayout::a_col(lane, 2 * r) + 1 == MmaLayout::a_col(lane, 2 * r + 1));
      CHECK(MmaLayout::a_row(lane, 2 * r) == g + 8 * (r % 2));
    }
    for (int r = 0; r < 2; ++r) {
      CHECK(MmaLayout::b_col(lane, 2 * r) == MmaLayout::b_col(lane, 2 * r + 1));
      CHECK(MmaLayout::b_row(lane, 2 * r) + 1 == MmaLayout::b_row(lane, 2 * r + 1));
    }
    for (int i = 0; i < 4; ++i) {
      CHECK(MmaLayout::b_col(lane, i) == g);
      CHECK(MmaLayout::c_row(lane, i) == g + 8 * (i / 2));
      CHECK(MmaLayout::c_col(lane, i) == 2 * t + i % 2);
    }
  }
}

namespace {

// D = A B + C on the device (or the emulator) through cuda::mma_bf16_gemm: A [m, k], B
// [k, n], C [m, n] row-major host vectors; B is passed transposed, as the product takes it.
std::vector<float> mma_gemm(const std::vector<float>& A, const std::vector<float>& B, const std::vector<float>& C,
                            std::int64_t m, std::int64_t n, std::int64_t k, bool model) {
  std::vector<double> bt(static_cast<std::size_t>(n * k));
  for (std::int64_t r = 0; r < k; ++r)
    for (std::int64_t col = 0; col < n; ++col)
      bt[static_cast<std::size_t>(col * k + r)] = B[static_cast<std::size_t>(r * n + col)];
  const auto device = [](const std::vector<double>& v, Shape s) {
    return Tensor::from_vector(v, s, DType::Float32).to(Device::CUDA);
  };
  const Tensor a = device({A.begin(), A.end()}, {m, k}), b = device(bt, {n, k}),
               c = device({C.begin(), C.end()}, {m, n});
  Tensor d = Tensor::empty({m, n}, DType::Float32, Device::CUDA);
  cuda::mma_bf16_gemm(static_cast<const float*>(a.raw_data()), static_cast<const float*>(b.raw_data()),
                      static_cast<const float*>(c.raw_data()), static_cast<float*>(d.raw_data()), m, n, k, model);
  const auto out = d.to(Device::CPU).to_vector();
  return {out.begin(), out.end()};
}

// A B + C in float64 from the bf16-rounded A and B: the exact value the product should
// round to.
std::vector<double> reference(const std::vector<float>& A, const std::vector<float>& B, const std::vector<float>& C,
                              std::int64_t m, std::int64_t n, std::int64_t k) {
  const auto r = [](float x) { return static_cast<double>(cuda::bf16_to_float(cuda::bf16_bits(x))); };
  std::vector<double> out(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = C[static_cast<std::size_t>(i * n + j)];
      for (std::int64_t p = 0; p < k; ++p)
        s += r(A[static_cast<std::size_t>(i * k + p)]) * r(B[static_cast<std::size_t>(p * n + j)]);
      out[static_cast<std::size_t>(i * n + j)] = s;
    }
  return out;
}

// n draws of a standard normal, as float.
std::vector<float> standard_normal(std::int64_t n, Generator& g) {
  const auto v = Tensor::normal({n}, g, 0.0, 1.0, DType::Float64).to_vector();
  return {v.begin(), v.end()};
}

// n values drawn uniformly from the integers -range..range (exact in bf16 for range <= 256).
std::vector<float> small_integers(std::size_t n, int range, std::uint64_t seed) {
  Generator g(seed);
  const auto u = Tensor::uniform({static_cast<std::int64_t>(n)}, g, 0.0, 1.0, DType::Float64).to_vector();
  std::vector<float> out;
  for (double x : u) out.push_back(static_cast<float>(std::floor(x * (2 * range + 1)) - range));
  return out;
}

}  // namespace

TEST_CASE("mma: identity and permutation matrices put every element where the layout says", "[mma][cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  // One 16 x 8 x 16 product. B's entries are distinct integers 1..128 (exact in bf16), so
  // each output names the element of B it came from.
  std::vector<float> B(16 * 8), zero(16 * 8, 0.0f);
  for (int i = 0; i < 128; ++i) B[static_cast<std::size_t>(i)] = static_cast<float>(i + 1);
  for (bool model : {false, true}) {
    INFO("model " << model);
    std::vector<float> I(16 * 16, 0.0f), P(16 * 16, 0.0f);
    for (int i = 0; i < 16; ++i) I[static_cast<std::size_t>(i * 16 + i)] = 1.0f;
    // P moves row (5 i + 3) mod 16 of B to row i.
    for (int i = 0; i < 16; ++i) P[static_cast<std::size_t>(i * 16 + (5 * i + 3) % 16)] = 1.0f;
    const auto d_identity = mma_gemm(I, B, zero, 16, 8, 16, model);
    const auto d_permuted = mma_gemm(P, B, zero, 16, 8, 16, model);
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 8; ++j) {
        CHECK(d_identity[static_cast<std::size_t>(i * 8 + j)] == B[static_cast<std::size_t>(i * 8 + j)]);
        CHECK(d_permuted[static_cast<std::size_t>(i * 8 + j)] ==
              B[static_cast<std::size_t>(((5 * i + 3) % 16) * 8 + j)]);
      }
    // C passes through: D = 0 B + C.
    std::vector<float> C(16 * 8);
    for (int i = 0; i < 128; ++i) C[static_cast<std::size_t>(i)] = static_cast<float>(1000 - 3 * i);
    const auto d_c = mma_gemm(std::vector<float>(256, 0.0f), B, C, 16, 8, 16, model);
    CHECK(d_c == C);
  }
}

TEST_CASE("mma: full products of small integers are exact, element by element, in tiles of every kind", "[mma][cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  // One 16 x 8 x 16 product, then a 48 x 24 x 64 product (3 x 3 output tiles, 4 k blocks
  // accumulated in order). Entries in -8..8: every partial sum is an integer below 2^24,
  // so float32 holds it exactly and the expected values are exact.
  for (const auto& [m, n, k] : {std::tuple<int, int, int>{16, 8, 16}, {48, 24, 64}}) {
    const auto A = small_integers(static_cast<std::size_t>(m * k), 8, 1);
    const auto B = small_integers(static_cast<std::size_t>(k * n), 8, 2);
    const auto C = small_integers(static_cast<std::size_t>(m * n), 100, 3);
    const auto want = reference(A, B, C, m, n, k);
    std::vector<std::vector<float>> results;
    for (bool model : {false, true}) {
      results.push_back(mma_gemm(A, B, C, m, n, k, model));
      const auto& got = results.back();
      for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("m=" << m << " n=" << n << " k=" << k << " model=" << model << " element " << i);
        CHECK(static_cast<double>(got[i]) == want[i]);
      }
    }
    CHECK(results[0] == results[1]);  // on a GPU: the instruction equals the model to the bit
  }
}

TEST_CASE("mma: real-valued inputs are within float32 rounding of the float64 product of their bf16 values",
          "[mma][cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  const std::int64_t m = 32, n = 16, k = 64;
  Generator g(7);
  const auto A = standard_normal(m * k, g), B = standard_normal(k * n, g), C = standard_normal(m * n, g);
  const auto want = reference(A, B, C, m, n, k);
  // Bound, with u = 2^-24 (float32's unit roundoff) and S = sum |a b| + |c|: the model
  // rounds once per k block (k / 16 = 4 roundings, each at most u S); the instruction's
  // internal order and precision are not specified, so it gets the bound of a plain
  // float32 loop, k u S.
  std::vector<double> magnitude(static_cast<std::size_t>(m * n));
  const auto r = [](float x) { return std::fabs(static_cast<double>(cuda::bf16_to_float(cuda::bf16_bits(x)))); };
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = std::fabs(C[static_cast<std::size_t>(i * n + j)]);
      for (std::int64_t p = 0; p < k; ++p)
        s += r(A[static_cast<std::size_t>(i * k + p)]) * r(B[static_cast<std::size_t>(p * n + j)]);
      magnitude[static_cast<std::size_t>(i * n + j)] = s;
    }
  for (bool model : {false, true}) {
    const auto got = mma_gemm(A, B, C, m, n, k, model);
    for (std::size_t i = 0; i < got.size(); ++i) {
      INFO("model=" << model << " element " << i << ": " << got[i] << " vs " << want[i]);
      const double roundings = model || cuda::is_emulated() ? static_cast<double>(k / 16) : static_cast<double>(k);
      CHECK(std::fabs(got[i] - want[i]) <= roundings * 0x1p-24 * magnitude[i] * 1.01);
    }
  }
}

TEST_CASE("mma: sizes that are not multiples of the instruction's shape are refused", "[mma][cuda]") {
  HKT_SKIP_UNLESS_CUDA();
  require_error([] { mma_gemm({}, std::vector<float>(16 * 8), {}, 0, 8, 16, true); },
                "must be positive multiples of 16, 8 and 16, got 0, 8, 16");
  require_error(
      [] {
        mma_gemm(std::vector<float>(16 * 16), std::vector<float>(16 * 12), std::vector<float>(16 * 12), 16, 12, 16,
                 true);
      },
      "must be positive multiples of 16, 8 and 16, got 16, 12, 16");
  require_error(
      [] {
        mma_gemm(std::vector<float>(16 * 8), std::vector<float>(8 * 8), std::vector<float>(16 * 8), 16, 8, 8, true);
      },
      "m, n, k must be positive multiples of 16, 8 and 16, got 16, 8, 8");
}

#if defined(HKT_EMULATE_CUDA)
TEST_CASE("mma: the emulated product gives the same bits under every thread order", "[mma][emulator]") {
  // The model gathers through shuffles: the order in which the emulator runs the lanes
  // between them must not matter.
  const std::int64_t m = 32, n = 16, k = 32;
  Generator g(11);
  const auto A = standard_normal(m * k, g), B = standard_normal(k * n, g), C = standard_normal(m * n, g);
  struct ResetOrder {  // the process-wide order goes back to forward, even if a run throws
    ~ResetOrder() { cuda::emu::set_thread_order(cuda::emu::ThreadOrder::Forward); }
  } reset;
  std::vector<std::vector<float>> results;
  for (auto order :
       {cuda::emu::ThreadOrder::Forward, cuda::emu::ThreadOrder::Reverse, cuda::emu::ThreadOrder::Shuffled}) {
    cuda::emu::set_thread_order(order, 5);
    results.push_back(mma_gemm(A, B, C, m, n, k, false));
  }
  CHECK(results[1] == results[0]);
  CHECK(results[2] == results[0]);
}
#endif
