// test_random.cpp: Philox4x32-10 known answers, and the seeded Generator's tensors.
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

TEST_CASE("random: Philox4x32-10 matches the Random123 known-answer vectors", "[random]") {
  // Random123 kat_vectors: counter[4] key[2] -> output[4].
  const Philox4x32 zero(0, 0, 0, 0, 0, 0);
  CHECK(zero.out[0] == 0x6627e8d5u);
  CHECK(zero.out[1] == 0xe169c58du);
  CHECK(zero.out[2] == 0xbc57ac4cu);
  CHECK(zero.out[3] == 0x9b00dbd8u);
  const Philox4x32 ones(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  CHECK(ones.out[0] == 0x408f276du);
  CHECK(ones.out[1] == 0x41c83b0eu);
  CHECK(ones.out[2] == 0xa20bc7c6u);
  CHECK(ones.out[3] == 0x6d5451fdu);
  const Philox4x32 pi(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  CHECK(pi.out[0] == 0xd16cfe09u);
  CHECK(pi.out[1] == 0x94fdccebu);
  CHECK(pi.out[2] == 0x5001e420u);
  CHECK(pi.out[3] == 0x24126ea1u);
}

TEST_CASE("random: uniform conversions cover 0 and 1) exactly", "[random]") {
  CHECK(uniform24(0u) == 0.0f);
  CHECK(uniform24(0xffffffffu) == 1.0f - 0x1.0p-24f);
  CHECK(uniform53(0u, 0u) == 0.0);
  CHECK(uniform53(0xffffffffu, 0xffffffffu) == 1.0 - 0x1.0p-53);
}

TEST_CASE("random: the same seed gives the same tensor and draws advance the stream", "[random]") {
  Generator a(42), b(42);
  const auto x1 = Tensor::normal({100}, a).to_vector();
  const auto y1 = Tensor::normal({100}, b).to_vector();
  CHECK(x1 == y1);
  CHECK(a.offset() == 100);
  const auto x2 = Tensor::normal({100}, a).to_vector();
  CHECK(x1 != x2);
  // Element i of a draw is a pure function of (seed, offset + i): drawing 150 at once
  // equals drawing 100 then 50.
  Generator c(42);
  const auto joined = Tensor::normal({150}, c, 0, 1, DType::Float64).to_vector();
  Generator d(42);
  const auto first = Tensor::normal({100}, d, 0, 1, DType::Float64).to_vector();
  const auto second = Tensor::normal({50}, d, 0, 1, DType::Float64).to_vector();
  CHECK(std::equal(first.begin(), first.end(), joined.begin()));
  CHECK(std::equal(second.begin(), second.end(), joined.begin() + 100));
}

TEST_CASE("random: normal and uniform have the requested moments", "[random]") {
  Generator gen(7);
  const auto n = Tensor::normal({100000}, gen, 2.0, 3.0, DType::Float64).to_vector();
  double mean = 0, var = 0;
  for (double v : n) mean += v;
  mean /= static_cast<double>(n.size());
  for (double v : n) var += (v - mean) * (v - mean);
  var /= static_cast<double>(n.size() - 1);
  // mean: standard error 3/sqrt(1e5) = 0.0095, so 5 s.e. = 0.047; std: s.e. ~ 3/sqrt(2e5).
  CHECK(std::fabs(mean - 2.0) < 3.0 * kSampleMoments.atol);
  CHECK(std::fabs(std::sqrt(var) - 3.0) < 3.0 * kSampleMoments.atol);
  const auto u = Tensor::uniform({100000}, gen, -1.0, 3.0).to_vector();
  double umean = 0, umin = 1e9, umax = -1e9;
  for (double v : u) {
    umean += v;
    umin = std::min(umin, v);
    umax = std::max(umax, v);
  }
  umean /= static_cast<double>(u.size());
  // uniform(-1, 3): mean 1, std 4/sqrt(12) = 1.155, s.e. 0.0037.
  CHECK(std::fabs(umean - 1.0) < 2.0 * kSampleMoments.atol);
  CHECK(umin >= -1.0);
  CHECK(umax < 3.0);
}
