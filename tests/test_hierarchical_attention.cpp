// test_hierarchical_attention.cpp: the HKT attention sublayer (downsampler, projections,
// level weights, both fusions) with the fused core against the composite core, and the
// properties of docs/hkt-attention.md sections 1-4.
#include <cstring>
#include <map>

#include "hierarchical_attention.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

namespace {

AttentionConfig make_config(int L, Fusion fusion, bool causal, std::int64_t d = 8, std::int64_t H = 2) {
  AttentionConfig c;
  c.d_model = d;
  c.n_heads = H;
  c.levels = L;
  c.fusion = fusion;
  c.causal = causal;
  return c;
}

// Gives every parameter random values (not the initialisation's averages and zeros),
// so that a gradient mistake cannot hide behind symmetric weights. The std is
// 1/sqrt(fan-in) (the last size), so scores stay O(1): a saturated softmax would leave
// gradients at rounding level, where no comparison means anything.
void randomise(const HierarchicalAttention& m, std::uint64_t seed) {
  Generator gen(seed);
  for (auto& [name, p] : m.named_parameters()) {
    const double std = 1.0 / std::sqrt(static_cast<double>(p.shape().back()));
    const Tensor r = Tensor::normal(p.shape(), gen, 0.0, std, p.dtype());
    std::memcpy(p.raw_data(), r.raw_data(), p.nbytes());
  }
}

Tensor right_padding_mask(std::int64_t B, std::int64_t T) {
  std::vector<std::int64_t> m(static_cast<std::size_t>(B * T), 1);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t j = std::max<std::int64_t>(1, T - 2 * b); j < T; ++j) m[static_cast<std::size_t>(b * T + j)] = 0;
  return Tensor::from_indices(m, {B, T});
}

// Output and every gradient (x, then each parameter in order) of sum(Y * w).
std::vector<std::pair<std::string, Tensor>> outputs_and_grads(const HierarchicalAttention& m, const Tensor& x_in,
                                                              const Tensor& mask, AttentionImpl impl) {
  for (auto& [name, p] : m.named_parameters()) p.zero_grad();
  Tensor x = x_in.clone().detach().set_requires_grad();
  Tensor y = m.forward(x, mask, impl);
  Generator gen(99);
  sum(y * Tensor::normal(y.shape(), gen, 0, 1, y.dtype())).backward();
  std::vector<std::pair<std::string, Tensor>> res{{"output", y}, {"x", x.grad()}};
  for (auto& [name, p] : m.named_parameters()) res.emplace_back(name, p.grad());
  return res;
}

double rel_err(const Tensor& a, const Tensor& b) {
  const auto av = a.to_vector(), bv = b.to_vector();
  double err = 0, mag = 0;
  for (std::size_t i = 0; i < av.size(); ++i) {
    err = std::max(err, std::fabs(av[i] - bv[i]));
    mag = std::max(mag, std::fabs(bv[i]));
  }
  return err / std::max(mag, 1e-3);  // floor: see test_hkt_attention_core.cpp
}

}  // namespace

TEST_CASE("hierarchical attention: fused and composite agree on output and every gradient in float64", "[attention]") {
  struct Variant {
    int L;
    Fusion fusion;
    LevelWeights weights;
    Downsampler down;
    std::int64_t k, T, H;
    bool causal, padded;
  };
  const std::vector<Variant> variants = {
      {1, Fusion::Scores, LevelWeights::PerHead, Downsampler::Depthwise, 2, 13, 2, false, true},  // MHA
      {3, Fusion::Scores, LevelWeights::PerHead, Downsampler::Depthwise, 2, 13, 2, false, true},  // the default HKT
      {3, Fusion::Scores, LevelWeights::PerLayer, Downsampler::Dense, 3, 11, 2, true, false},
      {4, Fusion::Scores, LevelWeights::Fixed, Downsampler::Depthwise, 3, 9, 8, true, true},  // L = 4, heads = 8
      {2, Fusion::Outputs, LevelWeights::PerHead, Downsampler::Depthwise, 2, 10, 2, false, true},
      {3, Fusion::Outputs, LevelWeights::PerLayer, Downsampler::Dense, 2, 7, 2, true, true},
      {3, Fusion::Scores, LevelWeights::PerHead, Downsampler::Depthwise, 2, 1, 2, true, false},  // T = 1
  };
  for (const auto& v : variants) {
    AttentionConfig c = make_config(v.L, v.fusion, v.causal, v.H == 8 ? 16 : 8, v.H);
    c.level_weights = v.weights;
    if (v.weights == LevelWeights::Fixed)
      c.fixed_weights = std::vector<double>(static_cast<std::size_t>(v.L), 1.0 / v.L);
    c.downsampler = v.down;
    c.kernel_size = v.k;
    Generator gen(1);
    HierarchicalAttention m(c, gen, DType::Float64);
    randomise(m, 2);
    const Tensor x = Tensor::normal({2, v.T, c.d_model}, gen, 0, 1, DType::Float64);
    const Tensor mask = v.padded ? right_padding_mask(2, v.T) : Tensor();
    const auto fused = outputs_and_grads(m, x, mask, AttentionImpl::Fused);
    const auto composite = outputs_and_grads(m, x, mask, AttentionImpl::Composite);
    REQUIRE(fused.size() == composite.size());
    for (std::size_t i = 0; i < fused.size(); ++i) {
      INFO("L=" << v.L << " " << enum_name(v.fusion) << " " << enum_name(v.weights) << " " << enum_name(v.down)
                << " k=" << v.k << " T=" << v.T << " causal=" << v.causal << ": " << fused[i].first);
      REQUIRE(fused[i].second.defined());
      CHECK(rel_err(fused[i].second, composite[i].second) < kFusedVsCompositeFloat64);
    }
  }
}

TEST_CASE("hierarchical attention: fused float32 within twice composite float32 against float64", "[attention]") {
  AttentionConfig c = make_config(3, Fusion::Scores, true, 32, 4);
  Generator gen(3);
  HierarchicalAttention m64(c, gen, DType::Float64);
  randomise(m64, 4);
  Generator gen32(3);
  HierarchicalAttention m32(c, gen32, DType::Float32);
  const auto p64 = m64.parameters(), p32 = m32.parameters();
  for (std::size_t i = 0; i < p64.size(); ++i) {
    const Tensor cast = p64[i].detach().to(DType::Float32);
    std::memcpy(p32[i].raw_data(), cast.raw_data(), cast.nbytes());
  }
  const Tensor x = Tensor::normal({2, 75, 32}, gen, 0, 1, DType::Float64);
  const Tensor mask = right_padding_mask(2, 75);
  const auto truth = outputs_and_grads(m64, x, mask, AttentionImpl::Composite);
  const auto fused = outputs_and_grads(m32, x.to(DType::Float32), mask, AttentionImpl::Fused);
  const auto comp = outputs_and_grads(m32, x.to(DType::Float32), mask, AttentionImpl::Composite);
  for (std::size_t i = 0; i < truth.size(); ++i) {
    const double ef = rel_err(fused[i].second, truth[i].second), ec = rel_err(comp[i].second, truth[i].second);
    INFO(truth[i].first << ": fused " << ef << " composite " << ec);
    CHECK(ef <= kFusedErrorFactor * ec + kFusedErrorFloor);
  }
}

TEST_CASE("hierarchical attention: L = 1 and fixed alpha = (1 0 0) are the same multi-head attention", "[attention]") {
  AttentionConfig c1 = make_config(1, Fusion::Scores, false);
  AttentionConfig c3 = make_config(3, Fusion::Scores, false);
  c3.level_weights = LevelWeights::Fixed;
  c3.fixed_weights = {1, 0, 0};
  Generator g1(5), g3(6);
  HierarchicalAttention mha(c1, g1, DType::Float64), hkt(c3, g3, DType::Float64);
  randomise(hkt, 7);
  // Give the MHA module HKT's level-0 projections and W_V, W_O.
  auto copy = [](const Tensor& from, const Tensor& to) { std::memcpy(to.raw_data(), from.raw_data(), from.nbytes()); };
  std::map<std::string, Tensor> h;
  for (auto& [n, p] : hkt.named_parameters()) h[n] = p;
  for (auto& [n, p] : mha.named_parameters()) copy(h.at(n), p);
  const Tensor x = Tensor::normal({2, 10, 8}, g1, 0, 1, DType::Float64);
  const Tensor mask = right_padding_mask(2, 10);
  NoGradGuard no_grad;
  CHECK(rel_err(hkt.forward(x, mask), mha.forward(x, mask)) < 1e-14);
  CHECK(rel_err(hkt.forward(x, mask, AttentionImpl::Composite), mha.forward(x, mask)) < 1e-14);
}

TEST_CASE("hierarchical attention: outputs fusion with alpha = e_l approaches the lifted causal convolution",
          "[attention]") {
  // docs/hkt-attention.md section 4: with alpha = e_l and level-l attention diagonal, Y = LiftRows_l(X^(l))
  // W_V^T W_O^T. Orthogonal one-hot rows X[t] = e_t keep every level's rows orthogonal
  // (disjoint supports after averaging), and W_Q = W_K = I per head makes q_t . k_t the
  // unique maximum; the score scale going to infinity makes attention diagonal.
  const std::int64_t T = 8, H = 2, dh = 8, d = H * dh;
  for (int l = 0; l < 3; ++l) {
    double previous = 1e9;
    for (double scale : {10.0, 100.0, 1000.0}) {
      AttentionConfig c = make_config(3, Fusion::Outputs, true, d, H);
      c.level_weights = LevelWeights::Fixed;
      c.fixed_weights = {0, 0, 0};
      c.fixed_weights[static_cast<std::size_t>(l)] = 1;
      c.scale = scale;
      Generator gen(10);
      HierarchicalAttention m(c, gen, DType::Float64);
      // W_Q^(l) = W_K^(l): head h reads input columns 0..dh-1 (the one-hot positions).
      std::vector<double> w(static_cast<std::size_t>(d * d), 0.0);
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t j = 0; j < dh; ++j) w[static_cast<std::size_t>((h * dh + j) * d + j)] = 1.0;
      const Tensor wqk = Tensor::from_vector(w, {d, d}, DType::Float64);
      for (auto& [name, p] : m.named_parameters())
        if (name.rfind("w_q.", 0) == 0 || name.rfind("w_k.", 0) == 0)
          std::memcpy(p.raw_data(), wqk.raw_data(), wqk.nbytes());
      std::vector<double> xv(static_cast<std::size_t>(T * d), 0.0);
      for (std::int64_t t = 0; t < T; ++t) xv[static_cast<std::size_t>(t * d + t)] = 1.0;
      const Tensor x = Tensor::from_vector(xv, {1, T, d}, DType::Float64);
      NoGradGuard no_grad;
      const Tensor y = m.forward(x, Tensor());
      // The expected output: lift the level-l downsampled input, then W_V and W_O.
      Tensor wv, wo;
      for (auto& [name, p] : m.named_parameters()) {
        if (name == "w_v.weight") wv = p;
        if (name == "w_o.weight") wo = p;
      }
      const Tensor xl = m.downsample(x, Tensor())[static_cast<std::size_t>(l)];
      const Tensor lifted = reshape(lift_rows(reshape(xl, {1, 1, xl.shape()[1], d}), l, T), {1, T, d});
      const Tensor expected = linear(linear(lifted, wv), wo);
      const double err = rel_err(y, expected);
      INFO("level " << l << " scale " << scale << " error " << err);
      CHECK(err <= previous);  // falls as the scale grows
      previous = err;
      if (scale == 1000.0) CHECK(err < 1e-4);
    }
  }
}

TEST_CASE("hierarchical attention: causal outputs are bit-identical when later tokens change", "[attention]") {
  for (int L = 1; L <= 4; ++L) {
    for (const Fusion fusion : {Fusion::Scores, Fusion::Outputs}) {
      AttentionConfig c = make_config(L, fusion, true);
      c.kernel_size = 3;
      Generator gen(L);
      HierarchicalAttention m(c, gen, DType::Float64);
      randomise(m, 12);
      const std::int64_t T = 21, j = 13;
      const Tensor x = Tensor::normal({1, T, 8}, gen, 0, 1, DType::Float64);
      Tensor x2 = x.clone();
      for (std::int64_t t = j; t < T; ++t)
        for (std::int64_t d = 0; d < 8; ++d) x2.data<double>()[t * 8 + d] += 3.0;
      NoGradGuard no_grad;
      const auto y = m.forward(x, Tensor()).to_vector(), y2 = m.forward(x2, Tensor()).to_vector();
      bool later_changed = false;
      for (std::int64_t i = 0; i < T; ++i)
        for (std::int64_t d = 0; d < 8; ++d) {
          const auto at = static_cast<std::size_t>(i * 8 + d);
          INFO("L=" << L << " " << enum_name(fusion) << " row " << i);
          if (i < j)
            CHECK(y[at] == y2[at]);
          else
            later_changed |= y[at] != y2[at];
        }
      CHECK(later_changed);
    }
  }
}

TEST_CASE("hierarchical attention: extra right padding changes no real output", "[attention]") {
  for (const Fusion fusion : {Fusion::Scores, Fusion::Outputs}) {
    for (bool causal : {false, true}) {
      AttentionConfig c = make_config(3, fusion, causal);
      Generator gen(4);
      HierarchicalAttention m(c, gen, DType::Float64);
      randomise(m, 5);
      const std::int64_t T = 10, Tp = 15;
      const Tensor x = Tensor::normal({1, T, 8}, gen, 0, 1, DType::Float64);
      const Tensor junk = Tensor::normal({1, Tp - T, 8}, gen, 0, 5, DType::Float64);
      const Tensor xp = concat({x, junk}, 1);
      std::vector<std::int64_t> mp(static_cast<std::size_t>(Tp), 0);
      for (std::int64_t t = 0; t < T; ++t) mp[static_cast<std::size_t>(t)] = 1;
      NoGradGuard no_grad;
      const Tensor y = m.forward(x, Tensor());
      const Tensor yp = slice(m.forward(xp, Tensor::from_indices(mp, {1, Tp})), 1, 0, T);
      INFO(enum_name(fusion) << " causal=" << causal);
      require_close(yp, y.to_vector(), kFloat64Exact);
    }
  }
}

TEST_CASE("hierarchical attention: a sequence of only padding gives zeros and finite gradients", "[attention]") {
  for (const Fusion fusion : {Fusion::Scores, Fusion::Outputs}) {
    AttentionConfig c = make_config(3, fusion, false);
    Generator gen(8);
    HierarchicalAttention m(c, gen, DType::Float64);
    const Tensor x = Tensor::normal({2, 6, 8}, gen, 0, 1, DType::Float64);
    const Tensor mask = Tensor::from_indices({1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}, {2, 6});
    for (auto impl : {AttentionImpl::Fused, AttentionImpl::Composite}) {
      const auto res = outputs_and_grads(m, x, mask, impl);
      const auto y = res[0].second.to_vector();
      for (std::size_t i = 6 * 8; i < y.size(); ++i) CHECK(y[i] == 0.0);
      for (const auto& [name, g] : res) {
        INFO(enum_name(fusion) << " " << name);
        REQUIRE(g.defined());
        for (double v : g.to_vector()) CHECK(std::isfinite(v));
      }
    }
  }
}

TEST_CASE("hierarchical attention: parameter names and shapes follow PyTorch conventions", "[attention]") {
  AttentionConfig c = make_config(3, Fusion::Scores, false, 8, 2);
  Generator gen(0);
  HierarchicalAttention m(c, gen);
  std::vector<std::string> names;
  for (auto& [n, p] : m.named_parameters()) names.push_back(n + shape_str(p.shape()));
  CHECK(names == std::vector<std::string>{"level_logits[2,3]", "w_q.0.weight[8,8]", "w_q.1.weight[8,8]",
                                          "w_q.2.weight[8,8]", "w_k.0.weight[8,8]", "w_k.1.weight[8,8]",
                                          "w_k.2.weight[8,8]", "w_v.weight[8,8]", "w_o.weight[8,8]",
                                          "downsample.1.weight[8,2]", "downsample.1.bias[8]",
                                          "downsample.2.weight[8,2]", "downsample.2.bias[8]"});
  // Initial level weights are uniform and the downsampler is an average.
  require_close(m.level_weights(), std::vector<double>(6, 1.0 / 3), kFloat32VsFloat64);
  CHECK(m.parameter_count() == 2 * 3 + 8 * 64 + 2 * (16 + 8));
}

TEST_CASE("hierarchical attention: config errors name the field", "[attention][errors]") {
  Generator gen(0);
  auto bad = [&](auto edit, const std::string& msg) {
    AttentionConfig c = make_config(2, Fusion::Scores, false);
    edit(c);
    require_error([&] { HierarchicalAttention m(c, gen); }, msg);
  };
  bad([](AttentionConfig& c) { c.n_heads = 3; }, "d_model (8) must be a positive multiple of n_heads (3)");
  bad([](AttentionConfig& c) { c.levels = 5; }, "levels must be in 1..4, got 5");
  bad(
      [](AttentionConfig& c) {
        c.level_weights = LevelWeights::Fixed;
        c.fixed_weights = {0.5};
      },
      "fixed_weights needs 2 values");
  bad(
      [](AttentionConfig& c) {
        c.level_weights = LevelWeights::Fixed;
        c.fixed_weights = {0.5, 0.6};
      },
      "fixed_weights must sum to 1");
  AttentionConfig c = make_config(2, Fusion::Scores, false);
  HierarchicalAttention m(c, gen);
  require_error(
      [&] {
        m.forward(Tensor::zeros({1, 4, 6}), Tensor());
      },
      "input must be [B, T, d_model = 8], got [1,4,6]");
  require_error([&] { m.forward(Tensor::zeros({1, 4, 8}), Tensor::ones({1, 5})); }, "key_mask must be [B, T] = [1,4]");
}
