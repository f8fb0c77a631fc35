// test_hkt_attention_core.cpp: the fused hierarchical attention op against the
// composite of engine ops (its definition), forward and every gradient, float64 and
// float32; its gradcheck; and the properties of docs/hkt-attention.md sections 3 and 4 at the core level.
#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "attention/hkt_attention.h"
#include "gradcheck/gradcheck.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

namespace {

struct Problem {
  std::int64_t B, H, T, dh;
  int L;
  bool causal;
  bool padded;  // right padding in the key mask
};

struct Inputs {
  std::vector<Tensor> q, k;
  Tensor v, alpha, mask;
};

Inputs make_inputs(const Problem& p, std::uint64_t seed, DType dtype = DType::Float64) {
  Generator gen(seed);
  Inputs in;
  for (int l = 0; l < p.L; ++l) {
    const std::int64_t Tl = (p.T + (std::int64_t{1} << l) - 1) >> l;
    in.q.push_back(Tensor::normal({p.B, p.H, Tl, p.dh}, gen, 0, 1, dtype));
    in.k.push_back(Tensor::normal({p.B, p.H, Tl, p.dh}, gen, 0, 1, dtype));
  }
  in.v = Tensor::normal({p.B, p.H, p.T, p.dh}, gen, 0, 1, dtype);
  NoGradGuard constant;
  in.alpha = softmax(Tensor::normal({p.H, p.L}, gen, 0, 1, dtype));
  if (p.padded) {
    std::vector<double> m(static_cast<std::size_t>(p.B * p.T), 1.0);
    for (std::int64_t b = 0; b < p.B; ++b)  // batch element b has b + 1 padded keys at the end (at most T - 1)
      for (std::int64_t j = std::max<std::int64_t>(1, p.T - b - 1); j < p.T; ++j)
        m[static_cast<std::size_t>(b * p.T + j)] = 0;
    in.mask = Tensor::from_vector(m, {p.B, p.T}, DType::Int64);
  }
  return in;
}

// Runs impl on fresh leaves; returns output then every gradient (q..., k..., v, alpha)
// of sum(O * w) for a fixed random w. With alpha_grad false, alpha is a constant (as
// MHA's and fixed level weights are) and its gradient is left out: the fused backward
// then skips the dalpha dot products (fused.cpp, backward_head).
std::vector<Tensor> run(bool fused, const Inputs& in, const HktAttentionOptions& opt, std::uint64_t seed,
                        bool alpha_grad = true) {
  std::vector<Tensor> q, k;
  auto leaf = [](const Tensor& t) { return t.clone().detach().set_requires_grad(); };
  for (const auto& t : in.q) q.push_back(leaf(t));
  for (const auto& t : in.k) k.push_back(leaf(t));
  Tensor v = leaf(in.v), alpha = alpha_grad ? leaf(in.alpha) : in.alpha.clone().detach();
  Tensor o =
      fused ? hkt_attention_fused(q, k, v, alpha, in.mask, opt) : hkt_attention_composite(q, k, v, alpha, in.mask, opt);
  Generator gen(seed);
  Tensor w = Tensor::normal(o.shape(), gen, 0, 1, o.dtype());
  sum(o * w).backward();
  std::vector<Tensor> res{o};
  for (auto* group : {&q, &k})
    for (auto& t : *group) res.push_back(t.grad());
  res.push_back(v.grad());
  if (alpha_grad) res.push_back(alpha.grad());
  return res;
}

// max |a - b| / max(max |b|, 1e-3): the error relative to the tensor's magnitude. The
// floor matters for gradients that are exactly 0 in exact arithmetic (e.g. a level with
// T_l = 1 adds one constant to every score, which softmax ignores): both paths then
// give rounding noise of ~1e-16, which is not a relative disagreement.
double rel_err(const Tensor& a, const Tensor& b) {
  const auto av = a.to_vector(), bv = b.to_vector();
  REQUIRE(av.size() == bv.size());
  double err = 0, mag = 0;
  for (std::size_t i = 0; i < av.size(); ++i) {
    REQUIRE(std::isfinite(av[i]));
    err = std::max(err, std::fabs(av[i] - bv[i]));
    mag = std::max(mag, std::fabs(bv[i]));
  }
  return err / std::max(mag, 1e-3);
}

const char* kNames[] = {"output", "dq/dk/dv/dalpha"};

// The fused op's options for every tiling the fused-vs-composite tests run: small square
// tiles (many tiles), the defaults (query and key tiles of different sizes), and key
// tiles smaller than query tiles.
std::vector<HktAttentionOptions> tilings(bool causal) {
  const HktAttentionOptions defaults;
  std::vector<HktAttentionOptions> out;
  for (const auto& [bq, bk] :
       {std::pair<std::int64_t, std::int64_t>{4, 4}, {defaults.block_q, defaults.block_k}, {32, 8}}) {
    HktAttentionOptions opt;
    opt.causal = causal;
    opt.block_q = bq;
    opt.block_k = bk;
    out.push_back(opt);
  }
  return out;
}

}  // namespace

TEST_CASE("hkt attention core: fused equals composite in float64 for output and every gradient", "[attention]") {
  const std::vector<Problem> problems = {
      {2, 3, 16, 4, 1, false, false},                                 // MHA
      {2, 3, 16, 4, 3, false, false}, {1, 2, 37, 5, 3, true, false},  // T odd, not a multiple of 4
      {3, 2, 29, 3, 2, false, true},  {2, 8, 20, 2, 4, true, true},   // heads = 8, L = 4
      {1, 1, 1, 3, 3, true, false},   {2, 1, 7, 2, 4, false, true},   // T = 1; T < 2^(L-1)
      {1, 2, 130, 4, 3, true, true},                                  // several tiles
      {1, 1, 600, 4, 3, true, true},                                  // several default-sized tiles
  };
  for (const auto& p : problems) {
    for (const HktAttentionOptions& opt : tilings(p.causal)) {
      const std::string block = std::to_string(opt.block_q) + "x" + std::to_string(opt.block_k);
      const Inputs in = make_inputs(p, 11 + static_cast<std::uint64_t>(p.T));
      const auto fused = run(true, in, opt, 5), composite = run(false, in, opt, 5);
      for (std::size_t i = 0; i < fused.size(); ++i) {
        INFO("B=" << p.B << " H=" << p.H << " T=" << p.T << " dh=" << p.dh << " L=" << p.L << " causal=" << p.causal
                  << " padded=" << p.padded << " block=" << block << " tensor " << i << " (" << kNames[i ? 1 : 0]
                  << ")");
        CHECK(rel_err(fused[i], composite[i]) < kFusedVsCompositeFloat64);
      }
    }
  }
}

TEST_CASE("hkt attention core: with constant level weights (no dalpha) fused equals composite in float64 across tiles",
          "[attention]") {
  // The backward without raw_0 (MHA, fixed level weights): several tiles of every shape,
  // an odd T, L = 1 and 3, causal and padded.
  const Problem problems[] = {{1, 2, 600, 4, 1, true, true},
                              {1, 2, 600, 4, 3, true, true},
                              {2, 1, 29, 3, 3, false, true},
                              {2, 1, 29, 3, 1, true, false}};
  for (const auto& p : problems) {
    for (const HktAttentionOptions& opt : tilings(p.causal)) {
      const Inputs in = make_inputs(p, 5 + static_cast<std::uint64_t>(p.T));
      const auto fused = run(true, in, opt, 7, false), composite = run(false, in, opt, 7, false);
      REQUIRE(fused.size() == static_cast<std::size_t>(2 * p.L + 2));  // O, dq, dk, dv
      for (std::size_t i = 0; i < fused.size(); ++i) {
        INFO("T=" << p.T << " L=" << p.L << " causal=" << p.causal << " padded=" << p.padded << " block=" << opt.block_q
                  << "x" << opt.block_k << " tensor " << i);
        CHECK(rel_err(fused[i], composite[i]) < kFusedVsCompositeFloat64);
      }
    }
  }
}

TEST_CASE("hkt attention core: fused float32 is within twice the composite float32 error against float64",
          "[attention]") {
  const Problem p{2, 4, 70, 16, 3, true, true};
  HktAttentionOptions opt;
  opt.causal = true;
  const Inputs in64 = make_inputs(p, 3);
  Inputs in32 = in64;
  for (auto* group : {&in32.q, &in32.k})
    for (auto& t : *group) t = t.to(DType::Float32);
  in32.v = in64.v.to(DType::Float32);
  in32.alpha = in64.alpha.to(DType::Float32);
  const auto truth = run(false, in64, opt, 9), f32_fused = run(true, in32, opt, 9), f32_comp = run(false, in32, opt, 9);
  for (std::size_t i = 0; i < truth.size(); ++i) {
    const double e_fused = rel_err(f32_fused[i], truth[i]), e_comp = rel_err(f32_comp[i], truth[i]);
    INFO("tensor " << i << ": fused err " << e_fused << ", composite err " << e_comp);
    CHECK(e_fused <= kFusedErrorFactor * e_comp + kFusedErrorFloor);
    CHECK(e_fused < 1e-4);
  }
}

TEST_CASE("hkt attention core: gradcheck of the fused op in float64", "[attention][gradcheck]") {
  for (const Problem& p : {Problem{1, 2, 9, 3, 3, true, true}, Problem{2, 1, 6, 2, 2, false, false}}) {
    const Inputs in = make_inputs(p, 21);
    HktAttentionOptions opt;
    opt.causal = p.causal;
    opt.block_q = opt.block_k = 4;
    const auto L = static_cast<std::size_t>(p.L);
    gradcheck::Function f = [L, mask = in.mask, opt](const std::vector<Tensor>& x) {
      std::vector<Tensor> q(x.begin(), x.begin() + static_cast<long>(L)),
          k(x.begin() + static_cast<long>(L), x.begin() + 2 * static_cast<long>(L));
      return hkt_attention_fused(q, k, x[2 * L], x[2 * L + 1], mask, opt);
    };
    std::vector<Tensor> inputs = in.q;
    inputs.insert(inputs.end(), in.k.begin(), in.k.end());
    inputs.push_back(in.v);
    inputs.push_back(in.alpha);
    const auto r = gradcheck::check("hkt_attention_fused", "core", f, inputs);
    INFO(r.mode << " max_abs_err " << r.max_abs_err << " " << r.failure);
    CHECK(r.passed);
  }
}

TEST_CASE("hkt attention core: L = 1 and alpha = (1 0 ...) are standard attention", "[attention]") {
  // Standard attention by hand: softmax(scale Q K^T + mask) V, per (batch, head).
  const Problem p{2, 2, 11, 3, 3, true, true};
  const Inputs in = make_inputs(p, 4);
  NoGradGuard no_grad;
  Tensor mha = matmul(softmax(mul(matmul(in.q[0], transpose(in.k[0], -1, -2)), 1.0 / std::sqrt(3.0)),
                              [&] {
                                std::vector<double> m(static_cast<std::size_t>(2 * 11 * 11), 0.0);
                                const auto keep = in.mask.to_vector();
                                for (int b = 0; b < 2; ++b)
                                  for (int i = 0; i < 11; ++i)
                                    for (int j = 0; j < 11; ++j)
                                      if (j > i || keep[static_cast<std::size_t>(b * 11 + j)] == 0)
                                        m[static_cast<std::size_t>((b * 11 + i) * 11 + j)] =
                                            -std::numeric_limits<double>::infinity();
                                return Tensor::from_vector(m, {2, 1, 11, 11}, DType::Float64);
                              }()),
                      in.v);
  HktAttentionOptions opt;
  opt.causal = true;
  const Tensor l1 = hkt_attention_fused({in.q[0]}, {in.k[0]}, in.v, Tensor::ones({2, 1}, DType::Float64), in.mask, opt);
  const Tensor e0 = hkt_attention_fused(in.q, in.k, in.v,
                                        Tensor::from_vector({1, 0, 0, 1, 0, 0}, {2, 3}, DType::Float64), in.mask, opt);
  CHECK(rel_err(l1, mha) < 1e-13);
  CHECK(rel_err(e0, mha) < 1e-13);
}

TEST_CASE("hkt attention core: causality is exact and padding changes no real output", "[attention]") {
  for (int L = 1; L <= 4; ++L) {
    const Problem p{1, 2, 23, 3, L, true, false};
    const Inputs in = make_inputs(p, 8);
    HktAttentionOptions opt;
    opt.causal = true;
    opt.block_q = opt.block_k = 8;
    const auto base = hkt_attention_fused(in.q, in.k, in.v, in.alpha, Tensor(), opt).to_vector();
    // Changing key/value position j = 15 (and every coarse token built from positions
    // >= 15 at each level) may change only rows i >= 15.
    Inputs changed = in;
    changed.v = in.v.clone();
    for (std::int64_t h = 0; h < 2; ++h)
      for (std::int64_t d = 0; d < 3; ++d) changed.v.data<double>()[(h * 23 + 15) * 3 + d] += 1.0;
    for (int l = 0; l < L; ++l) {
      const auto li = static_cast<std::size_t>(l);
      changed.k[li] = in.k[li].clone();
      changed.q[li] = in.q[li].clone();
      const std::int64_t Tl = in.k[li].shape()[2];
      for (std::int64_t t = 0; t < Tl; ++t) {
        if ((t << l) < 15) continue;  // coarse token t depends on positions <= 2^l t only
        for (std::int64_t h = 0; h < 2; ++h)
          for (std::int64_t d = 0; d < 3; ++d) {
            changed.k[li].data<double>()[(h * Tl + t) * 3 + d] -= 0.5;
            changed.q[li].data<double>()[(h * Tl + t) * 3 + d] += 0.5;
          }
      }
    }
    const auto after = hkt_attention_fused(changed.q, changed.k, changed.v, in.alpha, Tensor(), opt).to_vector();
    for (std::int64_t h = 0; h < 2; ++h)
      for (std::int64_t i = 0; i < 23; ++i)
        for (std::int64_t d = 0; d < 3; ++d) {
          const auto at = static_cast<std::size_t>((h * 23 + i) * 3 + d);
          INFO("L=" << L << " row " << i);
          if (i < 15) CHECK(after[at] == base[at]);  // bit-identical
        }
    bool some_changed = false;
    for (std::size_t at = 0; at < after.size(); ++at) some_changed |= after[at] != base[at];
    CHECK(some_changed);
  }
}

TEST_CASE("hkt attention core: a row with every key masked outputs 0 with finite zero gradients", "[attention]") {
  const Problem p{2, 2, 9, 3, 3, false, false};
  Inputs in = make_inputs(p, 6);
  in.mask = Tensor::from_indices(std::vector<std::int64_t>(9, 0), {1, 9});  // placeholder replaced below
  std::vector<std::int64_t> m(18, 1);
  for (int j = 0; j < 9; ++j) m[static_cast<std::size_t>(9 + j)] = 0;  // batch 1: every key padding
  in.mask = Tensor::from_indices(m, {2, 9});
  for (bool fused : {true, false}) {
    const auto res = run(fused, in, HktAttentionOptions{}, 2);
    const auto o = res[0].to_vector();
    for (std::size_t i = 2 * 9 * 3; i < o.size(); ++i) CHECK(o[i] == 0.0);
    for (const auto& g : res) {
      REQUIRE(g.defined());
      for (double x : g.to_vector()) CHECK(std::isfinite(x));
    }
    const auto dv = res[res.size() - 2].to_vector();  // v of batch 1 is never attended to
    for (std::size_t i = 2 * 9 * 3; i < dv.size(); ++i) CHECK(dv[i] == 0.0);
  }
}

TEST_CASE("hkt attention core: counted FLOP ratios of docs/hkt-attention.md section 5", "[attention]") {
  const auto mha = hkt_attention_flops(1, 1, 4096, 64, 1);
  const auto hkt3 = hkt_attention_flops(1, 1, 4096, 64, 3);
  const auto hkt4 = hkt_attention_flops(1, 1, 4096, 64, 4);
  CHECK(mha.score_flops == 2.0 * 4096 * 4096 * 64);
  CHECK(hkt3.score_flops / mha.score_flops == Approx(1.3125).epsilon(1e-12));            // 1 + 1/4 + 1/16
  CHECK(hkt4.score_flops / mha.score_flops == Approx(1.328125).epsilon(1e-12));          // + 1/64
  CHECK(hkt3.total_flops / mha.total_flops == Approx((1.3125 + 1) / 2).epsilon(1e-12));  // 1.156
  // Backward: scores recomputed, dQ_l and dK_l (3 x the score count), dP and dV.
  CHECK(mha.backward_flops == 5.0 * 2.0 * 4096 * 4096 * 64);
  CHECK(hkt3.backward_flops / mha.backward_flops == Approx((3 * 1.3125 + 2) / 5).epsilon(1e-12));  // 1.1875
  CHECK((hkt3.total_flops + hkt3.backward_flops) / (mha.total_flops + mha.backward_flops) ==
        Approx(8.25 / 7).epsilon(1e-12));  // 1.179: bench attention's train_x
}

TEST_CASE("hkt attention core: argument errors name the argument", "[attention][errors]") {
  const Inputs in = make_inputs({1, 2, 8, 3, 2, false, false}, 1);
  require_error([&] { hkt_attention_fused({in.q[0]}, in.k, in.v, in.alpha, Tensor()); },
                "1 query levels but 2 key levels");
  require_error(
      [&] {
        hkt_attention_fused({in.q[0], in.q[0]}, in.k, in.v, in.alpha, Tensor());
      },
      "q[1] has shape [1,2,8,3], expected [1,2,4,3]");
  require_error(
      [&] {
        hkt_attention_composite(in.q, in.k, in.v, Tensor::ones({2, 3}, DType::Float64), Tensor());
      },
      "alpha must be [H, L] = [2,2], got [2,3]");
  require_error(
      [&] {
        hkt_attention_fused(in.q, in.k, in.v, in.alpha, Tensor::ones({1, 7}));
      },
      "key_mask must be [B, T] = [1,8]");
}

TEST_CASE("attention ops: NaN or inf in a masked key's K or V reaches no output and no gradient",
          "[attention][reliability]") {
  // T = 12, the last 4 keys of sequence 1 padded: their V rows and the K_l rows made only
  // of them (level 1: rows 4, 5; level 2: row 2) hold NaN and +-inf. Outputs and every
  // gradient must equal those with these rows set to 0.
  const double bad[] = {std::numeric_limits<double>::quiet_NaN(), HUGE_VAL, -HUGE_VAL};
  for (int L : {1, 3}) {
    const std::int64_t B = 2, H = 2, T = 12, dh = 4, padded = 4;
    std::vector<double> keep(static_cast<std::size_t>(B * T), 1.0);
    for (std::int64_t j = T - padded; j < T; ++j) keep[static_cast<std::size_t>(T + j)] = 0.0;
    const Tensor mask = Tensor::from_vector(keep, {B, T}, DType::Float64);
    Generator gen(5);
    std::vector<Tensor> base;  // q (L), k (L), v, alpha
    for (int part = 0; part < 2; ++part)
      for (int l = 0; l < L; ++l)
        base.push_back(Tensor::normal({B, H, (T + (1 << l) - 1) >> l, dh}, gen, 0, 1, DType::Float64));
    base.push_back(Tensor::normal({B, H, T, dh}, gen, 0, 1, DType::Float64));
    base.push_back(Tensor::uniform({H, L}, gen, 0.1, 1.0, DType::Float64));
    // Poison (or zero) sequence 1's masked rows: V rows T - 4..T - 1, K_l rows from (T - 4) >> l.
    const auto fill = [&](bool poison) {
      std::vector<Tensor> x = base;
      for (int part = 0; part <= L; ++part) {  // k[0..L-1], then v
        Tensor& t = part < L ? x[static_cast<std::size_t>(L + part)] : x[static_cast<std::size_t>(2 * L)];
        const int l = part < L ? part : 0;
        auto values = t.to_vector();
        const std::int64_t rows = t.shape()[2];
        for (std::int64_t h = 0; h < H; ++h)
          for (std::int64_t u = (T - padded) >> l; u < rows; ++u)
            for (std::int64_t d = 0; d < dh; ++d)
              values[static_cast<std::size_t>(((H + h) * rows + u) * dh + d)] = poison ? bad[(u + d) % 3] : 0.0;
        t = Tensor::from_vector(values, t.shape(), DType::Float64);
      }
      return x;
    };
    const auto poisoned = fill(true), zeroed = fill(false);
    for (bool fused : {false, true})
      for (DType dtype : {DType::Float32, DType::Float64}) {
        INFO("L " << L << (fused ? " fused" : " composite") << (dtype == DType::Float32 ? " float32" : " float64"));
        const auto run = [&](const std::vector<Tensor>& in) {
          std::vector<Tensor> x;
          for (const auto& t : in) {
            x.push_back(t.to(dtype).detach());
            x.back().set_requires_grad(true);
          }
          const auto n = static_cast<std::ptrdiff_t>(L);
          HktAttentionOptions opt;
          opt.block_q = opt.block_k = 4;  // several tiles, one of them all padding
          const std::vector<Tensor> q(x.begin(), x.begin() + n), k(x.begin() + n, x.begin() + 2 * n);
          Tensor y = fused ? hkt_attention_fused(q, k, x[2 * L], x[2 * L + 1], mask, opt)
                           : hkt_attention_composite(q, k, x[2 * L], x[2 * L + 1], mask, opt);
          Generator gg(6);
          y.backward(Tensor::normal(y.shape(), gg, 0, 1, DType::Float64).to(dtype));
          std::vector<std::vector<double>> all{y.to_vector()};
          for (const auto& t : x) all.push_back(t.grad().to_vector());
          return all;
        };
        const auto a = run(poisoned), b = run(zeroed);
        for (std::size_t i = 0; i < a.size(); ++i) {
          INFO("tensor " << i << " (0 = output)");
          CHECK(std::all_of(a[i].begin(), a[i].end(), [](double e) { return std::isfinite(e); }));
          CHECK(a[i] == b[i]);
        }
      }
  }
}

TEST_CASE("attention ops: a key_mask other than 0/1 and a non-finite scale are refused", "[attention][reliability]") {
  const Problem p{1, 1, 3, 2, 1, false, false};
  const Inputs in = make_inputs(p, 1);
  const Tensor nan_mask = Tensor::from_vector({1.0, std::nan(""), 1.0}, {1, 3}, DType::Float64);
  require_error([&] { hkt_attention_fused(in.q, in.k, in.v, in.alpha, nan_mask); },
                "hkt_attention_fused: key_mask must hold 0 (padding) or 1 (a real key), got nan at [0, 1]");
  const Tensor half = Tensor::from_vector({1.0, 1.0, 0.5}, {1, 3}, DType::Float64);
  require_error([&] { hkt_attention_composite(in.q, in.k, in.v, in.alpha, half); }, "got 0.500000 at [0, 2]");
  HktAttentionOptions opt;
  opt.scale = std::numeric_limits<double>::infinity();
  require_error([&] { hkt_attention_fused(in.q, in.k, in.v, in.alpha, Tensor(), opt); },
                "scale must be finite, got inf");
}
