// cases.cpp: the test registry of every differentiable op. Each op has cases at several
// shapes (size 1 and odd sizes included), checked by finite differences and on the CUDA
// backend against the CPU, larger shapes for the CUDA comparison only, and one OpInfo
// line (its PyTorch reference name and CUDA error class; gradcheck.h). Inputs are moved
// away from an op's kinks (relu at 0, ties of max, poles of log/sqrt/division) so that
// finite differences are valid there, rather than excusing failures.
#include <cmath>

#include "../error.h"
#include "../attention/hkt_attention.h"
#include "../ops.h"
#include "gradcheck.h"

namespace hkt::gradcheck {

namespace {

Tensor randn(Generator& gen, const Shape& shape) { return Tensor::normal(shape, gen, 0.0, 1.0, DType::Float64); }

// Uniform in [low, high): for inputs that must stay positive (log, sqrt, powers).
Tensor positive(Generator& gen, const Shape& shape, double low = 0.5, double high = 2.0) {
  return Tensor::uniform(shape, gen, low, high, DType::Float64);
}

// Normal samples pushed at least `gap` away from 0 (relu's kink, division poles).
Tensor away_from_zero(Generator& gen, const Shape& shape, double gap = 0.1) {
  auto v = randn(gen, shape).to_vector();
  for (auto& x : v) x = x >= 0 ? x + gap : x - gap;
  return Tensor::from_vector(v, shape, DType::Float64);
}

// Distinct values at least 0.08 apart in random order: max has no ties within eps.
Tensor distinct(Generator& gen, const Shape& shape) {
  const auto n = static_cast<std::size_t>(numel(shape));
  const auto u = Tensor::uniform({static_cast<std::int64_t>(2 * n)}, gen, 0.0, 1.0, DType::Float64).to_vector();
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = 0.1 * static_cast<double>(i) + 0.02 * u[i] - 0.05 * static_cast<double>(n);
  for (std::size_t i = n; i-- > 1;) std::swap(v[i], v[static_cast<std::size_t>(u[n + i] * static_cast<double>(i + 1))]);
  return Tensor::from_vector(v, shape, DType::Float64);
}

Tensor indices(const std::vector<std::int64_t>& v, const Shape& shape) { return Tensor::from_indices(v, shape); }

using Inputs = std::vector<Tensor>;

std::vector<Case> build_cases() {
  std::vector<Case> c;
  auto add_case = [&](std::string op, std::string shape, std::function<Inputs(Generator&)> make, Function f) {
    c.push_back(Case{std::move(op), std::move(shape), std::move(make), std::move(f), false});
  };
  // A shape for the CUDA consistency harness only (Case::large).
  auto add_large_case = [&](std::string op, std::string shape, std::function<Inputs(Generator&)> make, Function f) {
    c.push_back(Case{std::move(op), std::move(shape) + " (large)", std::move(make), std::move(f), true});
  };
  auto two = [](Shape a, Shape b) { return [a, b](Generator& g) { return Inputs{randn(g, a), randn(g, b)}; }; };
  auto one = [](Shape a) { return [a](Generator& g) { return Inputs{randn(g, a)}; }; };

  // ---- binary with broadcasting
  for (auto [sa, sb, name] : {std::tuple{Shape{2, 3}, Shape{2, 3}, "[2,3]+[2,3]"},
                              {Shape{2, 3}, Shape{3}, "[2,3]+[3]"},
                              {Shape{4, 1, 3}, Shape{2, 1}, "[4,1,3]+[2,1]"},
                              {Shape{1}, Shape{}, "[1]+[]"}}) {
    add_case("add", name, two(sa, sb), [](const Inputs& x) { return add(x[0], x[1]); });
  }
  add_case("sub", "[2,3]-[2,1]", two({2, 3}, {2, 1}), [](const Inputs& x) { return sub(x[0], x[1]); });
  add_case("sub", "[3]-[2,3]", two({3}, {2, 3}), [](const Inputs& x) { return sub(x[0], x[1]); });
  add_case("mul", "[2,3]*[2,3]", two({2, 3}, {2, 3}), [](const Inputs& x) { return mul(x[0], x[1]); });
  add_case("mul", "[2,1,3]*[4,1]", two({2, 1, 3}, {4, 1}), [](const Inputs& x) { return mul(x[0], x[1]); });
  add_case(
      "div", "[2,3]/[3]",
      [](Generator& g) {
        return Inputs{randn(g, {2, 3}), away_from_zero(g, {3}, 0.5)};
      },
      [](const Inputs& x) { return div(x[0], x[1]); });
  add_case(
      "div", "[1,5]/[3,1]",
      [](Generator& g) {
        return Inputs{randn(g, {1, 5}), away_from_zero(g, {3, 1}, 0.5)};
      },
      [](const Inputs& x) { return div(x[0], x[1]); });

  // ---- scalar variants
  add_case("add_scalar", "[2,3]+2.5", one({2, 3}), [](const Inputs& x) { return add(x[0], 2.5); });
  add_case("sub_scalar", "[5]-1.5", one({5}), [](const Inputs& x) { return sub(x[0], 1.5); });
  add_case("rsub_scalar", "3-[2,2]", one({2, 2}), [](const Inputs& x) { return rsub(x[0], 3.0); });
  add_case("mul_scalar", "[3,1]*-0.7", one({3, 1}), [](const Inputs& x) { return mul(x[0], -0.7); });
  add_case("div_scalar", "[4]/3", one({4}), [](const Inputs& x) { return div(x[0], 3.0); });
  add_case(
      "rdiv_scalar", "2/[2,3]",
      [](Generator& g) {
        return Inputs{away_from_zero(g, {2, 3}, 0.5)};
      },
      [](const Inputs& x) { return rdiv(x[0], 2.0); });
  add_case(
      "pow", "[2,3]^2.5",
      [](Generator& g) {
        return Inputs{positive(g, {2, 3})};
      },
      [](const Inputs& x) { return pow(x[0], 2.5); });
  add_case(
      "pow", "[5]^-1.5", [](Generator& g) { return Inputs{positive(g, {5})}; },
      [](const Inputs& x) { return pow(x[0], -1.5); });
  add_case("pow", "[7]^3", one({7}), [](const Inputs& x) { return pow(x[0], 3.0); });

  // ---- unary
  const std::vector<std::pair<Shape, std::string>> unary_shapes = {{{7}, "[7]"}, {{2, 3, 5}, "[2,3,5]"}, {{1}, "[1]"}};
  for (const auto& shape_and_name : unary_shapes) {
    // Named copies: clang 14 cannot capture structured bindings in lambdas.
    const Shape s = shape_and_name.first;
    const std::string& name = shape_and_name.second;
    add_case("neg", name, one(s), [](const Inputs& x) { return neg(x[0]); });
    add_case("exp", name, one(s), [](const Inputs& x) { return exp(x[0]); });
    add_case(
        "log", name, [s](Generator& g) { return Inputs{positive(g, s, 0.2, 3.0)}; },
        [](const Inputs& x) { return log(x[0]); });
    add_case(
        "sqrt", name, [s](Generator& g) { return Inputs{positive(g, s, 0.2, 3.0)}; },
        [](const Inputs& x) { return sqrt(x[0]); });
    add_case("tanh", name, one(s), [](const Inputs& x) { return tanh(x[0]); });
    add_case("sigmoid", name, one(s), [](const Inputs& x) { return sigmoid(x[0]); });
    add_case(
        "relu", name, [s](Generator& g) { return Inputs{away_from_zero(g, s)}; },
        [](const Inputs& x) { return relu(x[0]); });
    add_case("gelu_erf", name, one(s), [](const Inputs& x) { return gelu(x[0], GeluApproximation::Erf); });
    add_case("gelu_tanh", name, one(s), [](const Inputs& x) { return gelu(x[0], GeluApproximation::Tanh); });
  }

  // ---- matmul (batch broadcasting included)
  add_case("matmul", "[2,3]x[3,4]", two({2, 3}, {3, 4}), [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_case("matmul", "[2,1,2,3]x[4,3,2]", two({2, 1, 2, 3}, {4, 3, 2}),
           [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_case("matmul", "[3,5,4]x[4,2]", two({3, 5, 4}, {4, 2}), [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_case("matmul", "[1,1]x[1,1]", two({1, 1}, {1, 1}), [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_case("matmul", "[2,3,33]x[33,31]", two({2, 3, 33}, {33, 31}), [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_case("matmul", "[64,65]x[65,48] (projection)", two({64, 65}, {65, 48}),
           [](const Inputs& x) { return matmul(x[0], x[1]); });

  add_case(
      "linear", "[2,3,4]W[5,4]+b[5]",
      [](Generator& g) {
        return Inputs{randn(g, {2, 3, 4}), randn(g, {5, 4}), randn(g, {5})};
      },
      [](const Inputs& x) { return linear(x[0], x[1], x[2]); });
  add_case("linear", "[3]W[2,3] no bias", two({3}, {2, 3}), [](const Inputs& x) { return linear(x[0], x[1]); });

  // ---- layout
  add_case("reshape", "[2,3,4]->[4,-1]", one({2, 3, 4}), [](const Inputs& x) { return reshape(x[0], {4, -1}); });
  add_case("permute", "[2,3,4](2,0,1)", one({2, 3, 4}), [](const Inputs& x) { return permute(x[0], {2, 0, 1}); });
  add_case("permute", "[1,3,1,2](3,1,0,2)", one({1, 3, 1, 2}), [](const Inputs& x) {
    return permute(x[0], {3, 1, 0, 2});
  });
  add_case("transpose", "[3,5](0,1)", one({3, 5}), [](const Inputs& x) { return transpose(x[0], 0, 1); });
  add_case("transpose", "[2,3,4](-1,-3)", one({2, 3, 4}), [](const Inputs& x) { return transpose(x[0], -1, -3); });
  add_case("slice", "[5,3][1:4,:]", one({5, 3}), [](const Inputs& x) { return slice(x[0], 0, 1, 4); });
  add_case("slice", "[2,7][:,-5:]", one({2, 7}), [](const Inputs& x) { return slice(x[0], -1, -5, 7); });
  add_case(
      "concat", "[2,3]|[2,1]|[2,2] axis 1",
      [](Generator& g) {
        return Inputs{randn(g, {2, 3}), randn(g, {2, 1}), randn(g, {2, 2})};
      },
      [](const Inputs& x) { return concat(x, 1); });
  add_case("concat", "[1,2]|[3,2] axis 0", two({1, 2}, {3, 2}), [](const Inputs& x) { return concat(x, 0); });

  // ---- reductions
  add_case("sum", "[3,4] all", one({3, 4}), [](const Inputs& x) { return sum(x[0]); });
  add_case("sum", "[2,3,5] axes (0,2) keepdim", one({2, 3, 5}), [](const Inputs& x) {
    return sum(x[0], {0, 2}, true);
  });
  add_case("sum", "[3,1,4] axis -2", one({3, 1, 4}), [](const Inputs& x) { return sum(x[0], {-2}); });
  add_case("mean", "[2,3,4] axis 1", one({2, 3, 4}), [](const Inputs& x) { return mean(x[0], {1}); });
  add_case("mean", "[5] all", one({5}), [](const Inputs& x) { return mean(x[0]); });
  add_case(
      "max", "[3,5] axis 1",
      [](Generator& g) {
        return Inputs{distinct(g, {3, 5})};
      },
      [](const Inputs& x) { return max(x[0], {1}); });
  add_case(
      "max", "[2,3,4] all",
      [](Generator& g) {
        return Inputs{distinct(g, {2, 3, 4})};
      },
      [](const Inputs& x) { return max(x[0]); });
  add_case(
      "max", "[2,3,4] axes (0,2) keepdim",
      [](Generator& g) {
        return Inputs{distinct(g, {2, 3, 4})};
      },
      [](const Inputs& x) {
        return max(x[0], {0, 2}, true);
      });

  add_case("sum_to", "[2,3,4]->[3,1]", one({2, 3, 4}), [](const Inputs& x) { return sum_to(x[0], {3, 1}); });
  add_case("clone", "[2,3]", one({2, 3}), [](const Inputs& x) { return x[0].clone(); });

  // ---- softmax family. Masks: -inf at some entries, and one row fully masked.
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor mask35 = Tensor::from_vector({0, -inf, 0, 0, -inf, -inf, -inf, -inf, -inf, -inf, 0, 0, 0, 0, -inf},
                                            {3, 5}, DType::Float64);
  const Tensor masked35 = Tensor::from_indices({0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}, {3, 5});
  add_case("softmax", "[3,5]", one({3, 5}), [](const Inputs& x) { return softmax(x[0]); });
  add_case("softmax", "[2,1,7]", one({2, 1, 7}), [](const Inputs& x) { return softmax(x[0]); });
  add_case("softmax", "[3,5] masked, one dead row", one({3, 5}),
           [mask35](const Inputs& x) { return softmax(x[0], mask35.to(x[0].dtype())); });
  add_case("log_softmax", "[4,6]", one({4, 6}), [](const Inputs& x) { return log_softmax(x[0]); });
  add_case("log_softmax", "[1]", one({1}), [](const Inputs& x) { return log_softmax(x[0]); });
  // -inf outputs would make finite differences nan: fill them with 0 after the op.
  add_case("log_softmax", "[3,5] masked, one dead row", one({3, 5}), [mask35, masked35](const Inputs& x) {
    return masked_fill(log_softmax(x[0], mask35.to(x[0].dtype())), masked35, 0.0);
  });
  // Rows longer than the CPU's 16 summing lanes (kernels/common/lane_sums.h), so that the
  // vectorised loop of the backward's masked sum runs (a miscompiled form of it is
  // described in kernels/common/rows.h).
  add_case("log_softmax", "[3,40] masked", one({3, 40}), [](const Inputs& x) {
    std::vector<double> mask(3 * 40, 0.0);
    std::vector<std::int64_t> masked(3 * 40, 0);
    for (std::size_t i = 0; i < mask.size(); ++i)
      if (i % 5 == 2) {
        mask[i] = -std::numeric_limits<double>::infinity();
        masked[i] = 1;
      }
    return masked_fill(log_softmax(x[0], Tensor::from_vector(mask, {3, 40}, x[0].dtype())), indices(masked, {3, 40}),
                       0.0);
  });
  add_case("cross_entropy", "[5,4] one ignored", one({5, 4}), [](const Inputs& x) {
    return cross_entropy(x[0], indices({3, -100, 0, 1, 3}, {5}));
  });
  add_case("cross_entropy", "[2,3,4] smoothing 0.1", one({2, 3, 4}), [](const Inputs& x) {
    return cross_entropy(x[0], indices({0, 1, 2, 3, 3, 1}, {2, 3}), -100, 0.1);
  });
  add_case("cross_entropy", "[1,3]", one({1, 3}),
           [](const Inputs& x) { return cross_entropy(x[0], indices({2}, {1})); });

  // ---- layer norm
  add_case(
      "layer_norm", "[3,5] weight+bias",
      [](Generator& g) {
        return Inputs{randn(g, {3, 5}), randn(g, {5}), randn(g, {5})};
      },
      [](const Inputs& x) { return layer_norm(x[0], x[1], x[2]); });
  add_case("layer_norm", "[2,2,4] no affine", one({2, 2, 4}),
           [](const Inputs& x) { return layer_norm(x[0], Tensor(), Tensor()); });
  add_case("layer_norm", "[1,3] weight only", two({1, 3}, {3}),
           [](const Inputs& x) { return layer_norm(x[0], x[1], Tensor()); });

  // ---- indexing
  add_case("embedding", "[6,3] by [2,4] (repeats)", one({6, 3}), [](const Inputs& x) {
    return embedding(x[0], indices({0, 5, 2, 5, 1, 1, 0, 3}, {2, 4}));
  });
  add_case("embedding", "[1,1] by [3]", one({1, 1}), [](const Inputs& x) {
    return embedding(x[0], indices({0, 0, 0}, {3}));
  });
  add_case("gather", "[3,4] axis 1 by [3,2]", one({3, 4}), [](const Inputs& x) {
    return gather(x[0], 1, indices({3, 3, 0, 2, 1, 0}, {3, 2}));
  });
  add_case("gather", "[3,2,2] axis 0 by [4,2,2]", one({3, 2, 2}), [](const Inputs& x) {
    return gather(x[0], 0, indices({0, 1, 2, 2, 1, 1, 0, 0, 2, 0, 1, 2, 0, 2, 2, 1}, {4, 2, 2}));
  });
  add_case("repeat_interleave", "[2,3] x2 axis 1", one({2, 3}),
           [](const Inputs& x) { return repeat_interleave(x[0], 2, 1); });
  add_case("repeat_interleave", "[3,2,2] x3 axis 0", one({3, 2, 2}),
           [](const Inputs& x) { return repeat_interleave(x[0], 3, 0); });

  // ---- masking, dropout
  add_case("masked_fill", "[3,4] by [4]", one({3, 4}), [](const Inputs& x) {
    return masked_fill(x[0], indices({0, 1, 1, 0}, {4}), -1.0);
  });
  add_case("dropout", "[4,5] p=0.3", one({4, 5}), [](const Inputs& x) {
    Generator gen(7);  // built inside, so every evaluation draws the same mask
    return dropout(x[0], 0.3, gen);
  });
  add_case("dropout", "[1] p=0.5", one({1}), [](const Inputs& x) {
    Generator gen(3);
    return dropout(x[0], 0.5, gen);
  });

  // ---- the downsampler
  add_case(
      "causal_conv1d", "x[2,7,3] w[3,2] b stride 2",
      [](Generator& g) {
        return Inputs{randn(g, {2, 7, 3}), randn(g, {3, 2}), randn(g, {3})};
      },
      [](const Inputs& x) { return causal_conv1d(x[0], x[1], x[2], 2); });
  add_case(
      "causal_conv1d", "x[1,6,2] w[2,3] b stride 1",
      [](Generator& g) {
        return Inputs{randn(g, {1, 6, 2}), randn(g, {2, 3}), randn(g, {2})};
      },
      [](const Inputs& x) { return causal_conv1d(x[0], x[1], x[2], 1); });
  add_case("causal_conv1d", "x[2,5,1] w[1,2] stride 4", two({2, 5, 1}, {1, 2}),
           [](const Inputs& x) { return causal_conv1d(x[0], x[1], Tensor(), 4); });

  // ---- hierarchical attention (q[0..L-1], k[0..L-1], v, alpha), B sequences of H = 2 heads,
  // the last `padded` keys of the last sequence masked out.
  struct AttentionShape {
    int L;
    std::int64_t B, T, dh, block, padded;
    bool causal;
  };
  const auto attention_inputs = [](AttentionShape a) {
    return [a](Generator& g) {
      Inputs in;
      for (int part = 0; part < 2; ++part)
        for (int l = 0; l < a.L; ++l) in.push_back(randn(g, {a.B, 2, (a.T + (1 << l) - 1) >> l, a.dh}));
      in.push_back(randn(g, {a.B, 2, a.T, a.dh}));
      in.push_back(positive(g, {2, a.L}, 0.1, 1.0));
      return in;
    };
  };
  // `fused` picks the op: the fused tiled op, or the composite of engine ops.
  const auto attention_op = [](AttentionShape a, bool fused) {
    return [a, fused](const Inputs& x) {
      const auto n = static_cast<std::ptrdiff_t>(a.L);
      std::vector<std::int64_t> keep(static_cast<std::size_t>(a.B * a.T), 1);
      for (std::int64_t j = a.T - a.padded; j < a.T; ++j) keep[static_cast<std::size_t>((a.B - 1) * a.T + j)] = 0;
      HktAttentionOptions opt;
      opt.causal = a.causal;
      if (fused) opt.block_q = opt.block_k = a.block;
      const std::vector<Tensor> q(x.begin(), x.begin() + n), k(x.begin() + n, x.begin() + 2 * n);
      const Tensor mask = indices(keep, {a.B, a.T});
      return fused ? hkt_attention_fused(q, k, x[2 * a.L], x[2 * a.L + 1], mask, opt)
                   : hkt_attention_composite(q, k, x[2 * a.L], x[2 * a.L + 1], mask, opt);
    };
  };
  for (auto [a, name] : {std::pair{AttentionShape{3, 1, 9, 3, 4, 1, true}, "B1 H2 T9 dh3 L3 causal padded"},
                         {AttentionShape{1, 1, 6, 3, 4, 1, false}, "B1 H2 T6 dh3 L1 (MHA) padded"},
                         {AttentionShape{4, 1, 5, 3, 4, 1, false}, "B1 H2 T5 dh3 L4 padded"}})
    add_case("hkt_attention_fused", name, attention_inputs(a), attention_op(a, true));
  // The composite: what models run on the GPU where the fused kernels do not apply
  // (L > 4 or d_h > 128).
  for (auto [a, name] : {std::pair{AttentionShape{3, 2, 13, 4, 0, 1, true}, "B2 H2 T13 dh4 L3 causal padded"},
                         {AttentionShape{1, 2, 9, 4, 0, 1, false}, "B2 H2 T9 dh4 L1 (MHA) padded"}})
    add_case("hkt_attention_composite", name, attention_inputs(a), attention_op(a, false));

  // ---- larger shapes, for the CUDA consistency harness only: many GPU threads, grid-stride
  // loops that wrap, rows of hundreds of elements, attention kernels looping over many keys
  // and wide heads.
  add_large_case("add", "[257,33]+[33]", two({257, 33}, {33}), [](const Inputs& x) { return add(x[0], x[1]); });
  add_large_case("gelu_erf", "[70001]", one({70001}), [](const Inputs& x) { return gelu(x[0]); });
  add_large_case("softmax", "[37,513]", one({37, 513}), [](const Inputs& x) { return softmax(x[0]); });
  // A warp per row on the GPU: rows shorter than a warp, one of 32, and one of 300 (10
  // elements a lane and a remainder), with masked entries and a dead row.
  add_large_case("log_softmax", "[9,300] masked, one dead row", one({9, 300}), [](const Inputs& x) {
    std::vector<double> mask(9 * 300, 0.0);
    std::vector<std::int64_t> masked(9 * 300, 0);
    for (std::size_t i = 0; i < mask.size(); ++i)
      if (i % 7 == 3 || i / 300 == 4) {
        mask[i] = -std::numeric_limits<double>::infinity();
        masked[i] = 1;
      }
    const Tensor m = Tensor::from_vector(mask, {9, 300}, x[0].dtype());
    return masked_fill(log_softmax(x[0], m), indices(masked, {9, 300}), 0.0);
  });
  add_large_case("softmax", "[50,32]", one({50, 32}), [](const Inputs& x) { return softmax(x[0]); });
  add_large_case(
      "layer_norm", "[65,129]",
      [](Generator& g) {
        return Inputs{randn(g, {65, 129}), randn(g, {129}), randn(g, {129})};
      },
      [](const Inputs& x) { return layer_norm(x[0], x[1], x[2]); });
  // 600 rows: the weight and bias gradients' column sums span three chunks of 256 rows
  // and two blocks of 32 columns on the GPU.
  add_large_case(
      "layer_norm", "[600,37]",
      [](Generator& g) {
        return Inputs{randn(g, {600, 37}), randn(g, {37}), randn(g, {37})};
      },
      [](const Inputs& x) { return layer_norm(x[0], x[1], x[2]); });
  add_large_case("matmul", "[3,65,130]x[130,67]", two({3, 65, 130}, {130, 67}),
                 [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_large_case("sum", "[300,301] axis 0", one({300, 301}), [](const Inputs& x) { return sum(x[0], {0}); });
  add_large_case(
      "causal_conv1d", "x[3,101,17] w[17,3] b stride 2",
      [](Generator& g) {
        return Inputs{randn(g, {3, 101, 17}), randn(g, {17, 3}), randn(g, {17})};
      },
      [](const Inputs& x) { return causal_conv1d(x[0], x[1], x[2], 2); });
  add_large_case("embedding", "[50,9] by [400]", one({50, 9}), [](const Inputs& x) {
    std::vector<std::int64_t> idx(400);
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<std::int64_t>((i * 7 + 3) % 50);
    return embedding(x[0], indices(idx, {400}));
  });
  add_large_case("dropout", "[100,100] p=0.1", one({100, 100}), [](const Inputs& x) {
    Generator gen(11);
    return dropout(x[0], 0.1, gen);
  });
  for (auto [a, name] : {std::pair{AttentionShape{3, 2, 37, 16, 16, 3, true}, "B2 H2 T37 dh16 L3 causal padded"},
                         {AttentionShape{4, 2, 64, 64, 16, 3, false}, "B2 H2 T64 dh64 L4 padded"},
                         {AttentionShape{2, 2, 21, 128, 16, 3, false}, "B2 H2 T21 dh128 L2 padded"}})
    add_large_case("hkt_attention_fused", name, attention_inputs(a), attention_op(a, true));
  return c;
}

}  // namespace

const std::vector<Case>& all_cases() {
  static const std::vector<Case> cases = build_cases();
  return cases;
}

const std::vector<OpInfo>& op_infos() {
  using enum Summation;
  const std::string composite_of = "a composite of ops with references: ";
  // One line per op, in the order of build_cases().
  static const std::vector<OpInfo> infos = {
      {"add", "add", "", Exact},
      {"sub", "sub", "", Exact},
      {"mul", "mul", "", Exact},
      {"div", "div", "", Exact},
      {"add_scalar", "add_scalar", "", Exact},
      {"sub_scalar", "sub_scalar", "", Exact},
      {"rsub_scalar", "rsub_scalar", "", Exact},
      {"mul_scalar", "mul_scalar", "", Exact},
      {"div_scalar", "div_scalar", "", Exact},
      {"rdiv_scalar", "rdiv_scalar", "", Exact},
      {"pow", "pow", "", Exact},
      {"neg", "neg", "", Exact},
      {"exp", "exp", "", Exact},
      {"log", "log", "", Exact},
      {"sqrt", "sqrt", "", Exact},
      {"tanh", "tanh", "", Exact},
      {"sigmoid", "sigmoid", "", Exact},
      {"relu", "relu", "", Exact},
      {"gelu_erf", "gelu", "", Exact},  // the reference file's gelu cases cover both forms
      {"gelu_tanh", "gelu", "", Exact},
      {"matmul", "matmul", "", Reordered},
      {"linear", "", composite_of + "matmul and add", Reordered},
      {"reshape", "reshape", "", Exact},
      {"permute", "permute", "", Exact},
      {"transpose", "transpose", "", Exact},
      {"slice", "slice", "", Exact},
      {"concat", "concat", "", Exact},
      {"sum", "sum", "", Exact},
      {"mean", "mean", "", Exact},
      {"max", "max", "", Exact},
      {"sum_to", "", "the reduction of broadcasting's backward, checked through add, sub, mul and div", Exact},
      {"clone", "", "a copy (tests/test_autograd.cpp)", Exact},
      {"softmax", "softmax", "", Reordered},
      {"log_softmax", "log_softmax", "", Reordered},
      {"cross_entropy", "cross_entropy", "", Reordered},
      {"layer_norm", "layer_norm", "", Reordered},
      {"embedding", "embedding", "", FloatSums},
      {"gather", "gather", "", FloatSums},
      {"repeat_interleave", "repeat_interleave", "", Exact},
      {"masked_fill", "masked_fill", "", Exact},
      {"dropout", "", "random: its scaling and keep rate are tested in tests/test_ops_conventions.cpp", Exact},
      {"causal_conv1d", "causal_conv1d", "", FloatSums},
      {"hkt_attention_fused", "",
       "HKT is not a PyTorch op: the fused op is checked against the composite in float64 "
       "(tests/test_hkt_attention_core.cpp) and whole models against PyTorch (tests/test_golden.cpp)",
       Reordered},
      {"hkt_attention_composite", "", composite_of + "matmul, softmax, repeat_interleave, slice, masked_fill",
       Reordered},
  };
  return infos;
}

const OpInfo& op_info(const std::string& op) {
  for (const auto& info : op_infos())
    if (info.op == op) return info;
  std::string known;
  for (const auto& info : op_infos()) known += (known.empty() ? "" : ", ") + info.op;
  throw Error("gradcheck: no op named '" + op + "' (known ops: " + known + ")");
}

}  // namespace hkt::gradcheck
