#include "theory.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "ops.h"

namespace hkt::theory {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double max_abs(const Matrix& a) {
  double m = 0;
  for (double v : a.values) m = std::max(m, std::fabs(v));
  return m;
}

// The parameter `name` of a module ("w_q.0.weight"); hkt::Error when it has none.
Tensor parameter(const Module& m, const std::string& name) {
  for (const auto& [n, t] : m.named_parameters())
    if (n == name) return t;
  throw Error("theory: the attention module has no parameter '" + name + "'");
}

// Overwrites a float64 parameter's values in place (the constructed cases).
void set_values(const Tensor& param, const std::vector<double>& values) {
  check(param.dtype() == DType::Float64 && static_cast<std::size_t>(param.numel()) == values.size(),
        "theory: set_values needs a float64 tensor of " + std::to_string(values.size()) + " values");
  std::copy(values.begin(), values.end(), param.data<double>());
}

// The d x d identity, row-major.
std::vector<double> identity(std::int64_t d) {
  std::vector<double> eye(static_cast<std::size_t>(d * d), 0.0);
  for (std::int64_t i = 0; i < d; ++i) eye[static_cast<std::size_t>(i * d + i)] = 1.0;
  return eye;
}

std::int64_t head_width(const HierarchicalAttention& attn) { return attn.config().d_model / attn.config().n_heads; }

// [1, T, d] -> [1, H, T, d_h] and back.
Tensor split_heads(const Tensor& x, std::int64_t H) {
  const std::int64_t T = x.shape()[1], d = x.shape()[2];
  return permute(reshape(x, {1, T, H, d / H}), {0, 2, 1, 3});
}
Tensor merge_heads(const Tensor& o) {
  const std::int64_t H = o.shape()[1], T = o.shape()[2], dh = o.shape()[3];
  return reshape(permute(o, {0, 2, 1, 3}), {1, T, H * dh});
}

// The additive causal mask [n, n]: 0 where j <= i, -inf above the diagonal.
Tensor causal_mask(std::int64_t n, DType dtype) {
  std::vector<double> m(static_cast<std::size_t>(n * n), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = i + 1; j < n; ++j)
      m[static_cast<std::size_t>(i * n + j)] = -std::numeric_limits<double>::infinity();
  return Tensor::from_vector(m, {n, n}, dtype);
}

// Checks that x is one example [1, T, d] for this module.
void check_example(const HierarchicalAttention& attn, const Tensor& x, const char* who) {
  check(x.defined() && x.dim() == 3 && x.shape()[0] == 1 && x.shape()[2] == attn.config().d_model,
        std::string(who) + ": x must be one example [1, T, d = " + std::to_string(attn.config().d_model) + "], got " +
            (x.defined() ? shape_str(x.shape()) : "undefined"));
}

void check_head(const HierarchicalAttention& attn, int level, std::int64_t head, const char* who) {
  check(level >= 0 && level < attn.config().levels, std::string(who) + ": level " + std::to_string(level) +
                                                        " is outside 0.." + std::to_string(attn.config().levels - 1));
  check(head >= 0 && head < attn.config().n_heads, std::string(who) + ": head " + std::to_string(head) +
                                                       " is outside 0.." + std::to_string(attn.config().n_heads - 1));
}

}  // namespace

// ---- linear algebra ----------------------------------------------------------------------

Matrix to_matrix(const Tensor& t) {
  check(t.defined() && t.dim() == 2,
        "to_matrix: expected a rank-2 tensor, got " + (t.defined() ? shape_str(t.shape()) : std::string("undefined")));
  Matrix m(t.shape()[0], t.shape()[1]);
  m.values = t.to_vector();
  return m;
}

std::vector<double> symmetric_eigenvalues(const Matrix& input) {
  check(input.rows == input.cols, "symmetric_eigenvalues: the matrix must be square, got " +
                                      std::to_string(input.rows) + " x " + std::to_string(input.cols));
  const std::int64_t n = input.rows;
  const double scale = max_abs(input);
  for (std::size_t i = 0; i < input.values.size(); ++i)
    check(std::isfinite(input.values[i]), "symmetric_eigenvalues: entry " + std::to_string(i) + " is not finite");
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < i; ++j)
      check(std::fabs(input(i, j) - input(j, i)) <= 1e-12 * scale,
            "symmetric_eigenvalues: the matrix is not symmetric (entries (" + std::to_string(i) + ", " +
                std::to_string(j) + ") and (" + std::to_string(j) + ", " + std::to_string(i) + ") differ)");
  Matrix a = input;
  double total = 0;  // ||a||_F^2, invariant under the rotations
  for (double v : a.values) total += v * v;
  auto off_diagonal = [&] {
    double off = 0;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i + 1; j < n; ++j) off += 2 * a(i, j) * a(i, j);
    return off;
  };
  // Converged when the off-diagonal part's Frobenius norm is below n 1e-15 ||a||_F: by
  // Weyl's inequality no eigenvalue then moves by more than that.
  const double tolerance = std::pow(1e-15 * static_cast<double>(std::max<std::int64_t>(n, 1)), 2) * total;
  constexpr int kMaxSweeps = 100;
  for (int sweep = 0; sweep < kMaxSweeps && off_diagonal() > tolerance; ++sweep) {
    for (std::int64_t p = 0; p < n; ++p)
      for (std::int64_t q = p + 1; q < n; ++q) {
        const double apq = a(p, q);
        if (apq == 0.0) continue;
        // The rotation (c, s) in the (p, q) plane that zeroes a_pq: t = tan(angle) is the
        // smaller root of t^2 + 2 theta t - 1 = 0, theta = (a_qq - a_pp) / (2 a_pq).
        const double theta = (a(q, q) - a(p, p)) / (2 * apq);
        const double t = std::fabs(theta) > 1e150
                             ? 1 / (2 * theta)
                             : std::copysign(1.0, theta) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (std::int64_t k = 0; k < n; ++k) {  // rows/columns p and q of a (kept symmetric)
          if (k == p || k == q) continue;
          const double akp = a(k, p), akq = a(k, q);
          a(k, p) = a(p, k) = c * akp - s * akq;
          a(k, q) = a(q, k) = s * akp + c * akq;
        }
        a(p, p) -= t * apq;
        a(q, q) += t * apq;
        a(p, q) = a(q, p) = 0.0;
      }
  }
  check(off_diagonal() <= tolerance,
        "symmetric_eigenvalues: no convergence after " + std::to_string(kMaxSweeps) + " sweeps");
  std::vector<double> eigenvalues(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) eigenvalues[static_cast<std::size_t>(i)] = a(i, i);
  std::sort(eigenvalues.begin(), eigenvalues.end());
  return eigenvalues;
}

SymAnti split_sym_anti(const Matrix& a) {
  check(a.rows == a.cols,
        "split_sym_anti: the matrix must be square, got " + std::to_string(a.rows) + " x " + std::to_string(a.cols));
  SymAnti out{Matrix(a.rows, a.cols), Matrix(a.rows, a.cols)};
  for (std::int64_t i = 0; i < a.rows; ++i)
    for (std::int64_t j = 0; j < a.cols; ++j) {
      out.sym(i, j) = (a(i, j) + a(j, i)) / 2;   // a + b == b + a exactly: sym is symmetric
      out.anti(i, j) = (a(i, j) - a(j, i)) / 2;  // b - a == -(a - b) exactly: anti is antisymmetric
    }
  return out;
}

double frobenius(const Matrix& a) {
  double s = 0;
  for (double v : a.values) s += v * v;
  return std::sqrt(s);
}

double mardia_kurtosis(const Matrix& x) {
  const std::int64_t n = x.rows, p = x.cols;
  check(p >= 1 && n > p,
        "mardia_kurtosis: needs more rows than columns, got n = " + std::to_string(n) + ", p = " + std::to_string(p));
  std::vector<double> mean(static_cast<std::size_t>(p), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < p; ++j) mean[static_cast<std::size_t>(j)] += x(i, j) / static_cast<double>(n);
  Matrix c(n, p);  // centred rows
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < p; ++j) c(i, j) = x(i, j) - mean[static_cast<std::size_t>(j)];
  Matrix cov(p, p);  // biased covariance (1/n) C^T C
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < p; ++j)
      for (std::int64_t k = 0; k <= j; ++k) cov(j, k) += c(i, j) * c(i, k) / static_cast<double>(n);
  // Cholesky cov = L L^T (lower triangle of cov reused for L).
  Matrix L(p, p);
  for (std::int64_t j = 0; j < p; ++j) {
    double diag = cov(j, j);
    for (std::int64_t k = 0; k < j; ++k) diag -= L(j, k) * L(j, k);
    check(diag > 1e-12 * cov(j, j) && diag > 0, "mardia_kurtosis: the covariance is singular (column " +
                                                    std::to_string(j) + " is a linear combination of the others)");
    L(j, j) = std::sqrt(diag);
    for (std::int64_t i = j + 1; i < p; ++i) {
      double v = cov(i, j);
      for (std::int64_t k = 0; k < j; ++k) v -= L(i, k) * L(j, k);
      L(i, j) = v / L(j, j);
    }
  }
  // (x - mean)^T cov^-1 (x - mean) = ||y||^2 with L y = x - mean (forward substitution).
  double b2 = 0;
  std::vector<double> y(static_cast<std::size_t>(p));
  for (std::int64_t i = 0; i < n; ++i) {
    double d2 = 0;
    for (std::int64_t j = 0; j < p; ++j) {
      double v = c(i, j);
      for (std::int64_t k = 0; k < j; ++k) v -= L(j, k) * y[static_cast<std::size_t>(k)];
      y[static_cast<std::size_t>(j)] = v / L(j, j);
      d2 += y[static_cast<std::size_t>(j)] * y[static_cast<std::size_t>(j)];
    }
    b2 += d2 * d2 / static_cast<double>(n);
  }
  return b2;
}

// ---- the module in float64 ------------------------------------------------------------

int copy_parameters(const Module& from, const Module& to) {
  const auto source = from.named_parameters();
  int copied = 0;
  for (const auto& [name, dst] : to.named_parameters())
    for (const auto& [n, src] : source)
      if (n == name && src.shape() == dst.shape()) {
        const auto v = src.to_vector();
        if (dst.dtype() == DType::Float64) {
          std::copy(v.begin(), v.end(), dst.data<double>());
        } else {
          float* p = dst.data<float>();
          for (std::size_t i = 0; i < v.size(); ++i) p[i] = static_cast<float>(v[i]);
        }
        ++copied;
        break;
      }
  return copied;
}

std::unique_ptr<HierarchicalAttention> to_float64(const HierarchicalAttention& attn) {
  Generator unused(0);  // every parameter is overwritten
  auto copy = std::make_unique<HierarchicalAttention>(attn.config(), unused, DType::Float64);
  copy_parameters(attn, *copy);
  return copy;
}

Matrix bilinear_form(const HierarchicalAttention& attn, int level, std::int64_t head) {
  check_head(attn, level, head, "bilinear_form");
  const Matrix wq = to_matrix(parameter(attn, "w_q." + std::to_string(level) + ".weight"));  // [d, d]
  const Matrix wk = to_matrix(parameter(attn, "w_k." + std::to_string(level) + ".weight"));
  const std::int64_t d = wq.cols, dh = head_width(attn);
  Matrix m(d, d);  // M(i, j) = sum_r Wq[r, i] Wk[r, j] over head h's rows r
  for (std::int64_t r = head * dh; r < (head + 1) * dh; ++r)
    for (std::int64_t i = 0; i < d; ++i)
      for (std::int64_t j = 0; j < d; ++j) m(i, j) += wq(r, i) * wk(r, j);
  return m;
}

Matrix lift(const Matrix& s, int level, std::int64_t T) {
  Matrix out(T, T);
  for (std::int64_t i = 0; i < T; ++i)
    for (std::int64_t j = 0; j < T; ++j) out(i, j) = s(i >> level, j >> level);
  return out;
}

Matrix fused_scores(const std::vector<Matrix>& levels, const std::vector<double>& alpha, std::int64_t T) {
  check(levels.size() == alpha.size() && !levels.empty(), "fused_scores: needs one weight per level");
  Matrix s(T, T);
  for (std::size_t l = 0; l < levels.size(); ++l) {
    const Matrix lifted = lift(levels[l], static_cast<int>(l), T);
    for (std::size_t i = 0; i < s.values.size(); ++i) s.values[i] += alpha[l] * lifted.values[i];
  }
  return s;
}

std::vector<Matrix> head_level_scores(const HierarchicalAttention& attn, const Tensor& x, std::int64_t head) {
  check_example(attn, x, "head_level_scores");
  check_head(attn, 0, head, "head_level_scores");
  NoGradGuard no_grad;
  std::vector<Matrix> out;
  for (const Tensor& s : attn.level_scores(x, Tensor())) {  // [1, H, T_l, T_l]
    const std::int64_t Tl = s.shape()[2];
    out.push_back(to_matrix(reshape(slice(s, 1, head, head + 1), {Tl, Tl})));
  }
  return out;
}

std::vector<std::vector<double>> level_weights(const HierarchicalAttention& attn) {
  NoGradGuard no_grad;
  const Tensor a = attn.level_weights();  // [H, L]
  const auto v = a.to_vector();
  const std::int64_t H = a.shape()[0], L = a.shape()[1];
  std::vector<std::vector<double>> out(static_cast<std::size_t>(H));
  for (std::int64_t h = 0; h < H; ++h)
    out[static_cast<std::size_t>(h)].assign(v.begin() + h * L, v.begin() + (h + 1) * L);
  return out;
}

// ---- Prop. 3.1 ------------------------------------------------------------------------

Spectrum spectrum(const Matrix& sym) {
  Spectrum s;
  s.eigenvalues = symmetric_eigenvalues(sym);
  s.lambda_min = s.eigenvalues.front();
  s.lambda_max = s.eigenvalues.back();
  const double biggest = std::max(std::fabs(s.lambda_min), std::fabs(s.lambda_max));
  s.relative_min = biggest > 0 ? s.lambda_min / biggest : 0.0;
  return s;
}

Spectrum bilinear_form_spectrum(const HierarchicalAttention& attn, int level, std::int64_t head) {
  return spectrum(split_sym_anti(bilinear_form(attn, level, head)).sym);
}

Spectrum fused_score_spectrum(const HierarchicalAttention& attn, const Tensor& x, std::int64_t head,
                              std::int64_t max_positions) {
  check(max_positions >= 1, "fused_score_spectrum: max_positions must be >= 1");
  const std::int64_t T = std::min(x.shape()[1], max_positions);
  const Matrix s =
      fused_scores(head_level_scores(attn, x, head), level_weights(attn)[static_cast<std::size_t>(head)], T);
  return spectrum(split_sym_anti(s).sym);
}

RowCentred centre_rows(const Matrix& s, bool causal) {
  check(s.rows == s.cols,
        "centre_rows: the matrix must be square, got " + std::to_string(s.rows) + " x " + std::to_string(s.cols));
  const std::int64_t n = s.rows;
  RowCentred out{Matrix(n, n), std::vector<double>(static_cast<std::size_t>(n), 0.0), 0.0};
  double total = 0, means = 0;  // sum of S_ij^2 and of |A_i| m_i^2 over the seen entries
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t seen = causal ? i + 1 : n;  // A_i = {0..seen-1}
    double sum = 0;
    for (std::int64_t j = 0; j < seen; ++j) {
      sum += s(i, j);
      total += s(i, j) * s(i, j);
    }
    const double m = sum / static_cast<double>(seen);
    out.row_means[static_cast<std::size_t>(i)] = m;
    means += static_cast<double>(seen) * m * m;
    for (std::int64_t j = 0; j < n; ++j) out.centred(i, j) = s(i, j) - m;
  }
  out.row_mean_share = total > 0 ? std::sqrt(means / total) : 0.0;
  return out;
}

FusedSpectra fused_score_spectra(const HierarchicalAttention& attn, const Tensor& x, std::int64_t head,
                                 std::int64_t max_positions) {
  check(max_positions >= 1, "fused_score_spectra: max_positions must be >= 1");
  check_example(attn, x, "fused_score_spectra");
  const std::int64_t T = x.shape()[1], n = std::min(T, max_positions);
  const Matrix s =
      fused_scores(head_level_scores(attn, x, head), level_weights(attn)[static_cast<std::size_t>(head)], T);
  const RowCentred c = centre_rows(s, attn.config().causal);
  auto leading = [n](const Matrix& a) {  // the leading n x n principal submatrix
    Matrix out(n, n);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) out(i, j) = a(i, j);
    return out;
  };
  FusedSpectra out;
  out.raw = spectrum(split_sym_anti(leading(s)).sym);
  out.centred = spectrum(split_sym_anti(leading(c.centred)).sym);
  out.row_mean_share = c.row_mean_share;
  out.positions = n;
  return out;
}

ConstructedPsd constructed_psd_case(bool holds, std::uint64_t seed) {
  AttentionConfig c;
  c.d_model = 16;
  c.n_heads = 2;
  c.levels = 3;
  c.level_weights = LevelWeights::Fixed;
  c.fixed_weights = {0.5, 0.3, 0.2};
  Generator gen(seed);
  HierarchicalAttention attn(c, gen, DType::Float64);
  for (int l = 0; l < c.levels; ++l) {  // W_K^(l) = +-W_Q^(l)
    auto wq = parameter(attn, "w_q." + std::to_string(l) + ".weight").to_vector();
    if (!holds)
      for (double& v : wq) v = -v;
    set_values(parameter(attn, "w_k." + std::to_string(l) + ".weight"), wq);
  }
  const Tensor x = Tensor::normal({1, 37, c.d_model}, gen, 0.0, 1.0, DType::Float64);
  ConstructedPsd out;
  out.worst_m.relative_min = out.worst_s.relative_min = std::numeric_limits<double>::infinity();
  for (std::int64_t h = 0; h < c.n_heads; ++h) {
    for (int l = 0; l < c.levels; ++l) {
      Spectrum m = bilinear_form_spectrum(attn, l, h);
      if (m.relative_min < out.worst_m.relative_min) out.worst_m = std::move(m);
    }
    Spectrum s = fused_score_spectrum(attn, x, h);
    if (s.relative_min < out.worst_s.relative_min) out.worst_s = std::move(s);
  }
  return out;
}

// ---- Props. 3.5-3.6 ------------------------------------------------------------------------

Decomposition decompose(const Matrix& a) {
  const SymAnti parts = split_sym_anti(a);
  Decomposition d;
  const double norm = frobenius(a), biggest = max_abs(a);
  d.sym_share = norm > 0 ? frobenius(parts.sym) / norm : 0.0;
  d.anti_share = norm > 0 ? frobenius(parts.anti) / norm : 0.0;
  if (biggest == 0) return d;
  for (std::int64_t i = 0; i < a.rows; ++i)
    for (std::int64_t j = 0; j < a.cols; ++j) {
      d.reconstruction_error =
          std::max(d.reconstruction_error, std::fabs(parts.sym(i, j) + parts.anti(i, j) - a(i, j)) / biggest);
      d.sym_asymmetry = std::max(d.sym_asymmetry, std::fabs(parts.sym(i, j) - parts.sym(j, i)) / biggest);
      d.anti_symmetry_error = std::max(d.anti_symmetry_error, std::fabs(parts.anti(i, j) + parts.anti(j, i)) / biggest);
    }
  return d;
}

// ---- Prop. 3.4 -----------------------------------------------------------------------------

SubsumeStandard subsume_standard(const HierarchicalAttention& source, const Tensor& x, int levels) {
  check_example(source, x, "subsume_standard");
  check(levels >= 2 && levels <= 4, "subsume_standard: levels must be in 2..4, got " + std::to_string(levels));
  AttentionConfig hkt_config = source.config();
  hkt_config.levels = levels;
  hkt_config.fusion = Fusion::Scores;
  hkt_config.level_weights = LevelWeights::Fixed;
  hkt_config.fixed_weights.assign(static_cast<std::size_t>(levels), 0.0);
  hkt_config.fixed_weights[0] = 1.0;  // alpha = (1, 0, ...)
  AttentionConfig mha_config = source.config();
  mha_config.levels = 1;
  mha_config.level_weights = LevelWeights::PerHead;
  mha_config.fixed_weights.clear();
  Generator gen(1);  // levels the source lacks get seeded weights; alpha = 0 ignores them
  HierarchicalAttention hkt_attn(hkt_config, gen, DType::Float64), mha(mha_config, gen, DType::Float64);
  copy_parameters(source, hkt_attn);
  copy_parameters(source, mha);  // w_q.0, w_k.0, w_v, w_o
  NoGradGuard no_grad;
  const Tensor x64 = x.to(DType::Float64);
  const Matrix y_hkt = to_matrix(reshape(hkt_attn.forward(x64, Tensor()), {x.shape()[1], x.shape()[2]}));
  const Matrix y_mha = to_matrix(reshape(mha.forward(x64, Tensor()), {x.shape()[1], x.shape()[2]}));
  SubsumeStandard out;
  out.levels = levels;
  Matrix diff = y_hkt;
  for (std::size_t i = 0; i < diff.values.size(); ++i) diff.values[i] -= y_mha.values[i];
  out.max_abs_error = max_abs(diff);
  const double norm = frobenius(y_mha);
  out.relative_error = norm > 0 ? frobenius(diff) / norm : frobenius(diff);
  return out;
}

ConvolutionLimit subsume_convolution(const HierarchicalAttention& source, int level,
                                     const std::vector<double>& scales) {
  const int L = std::max(source.config().levels, 2);
  check(level >= 0 && level < L,
        "subsume_convolution: level " + std::to_string(level) + " is outside 0.." + std::to_string(L - 1));
  for (double s : scales) check(s > 0 && std::isfinite(s), "subsume_convolution: scales must be positive and finite");
  const std::int64_t d = source.config().d_model, T = std::min<std::int64_t>(d, 64);
  AttentionConfig c = source.config();
  c.n_heads = 1;
  c.levels = L;
  c.fusion = Fusion::Outputs;
  c.level_weights = LevelWeights::Fixed;
  c.fixed_weights.assign(static_cast<std::size_t>(L), 0.0);
  c.fixed_weights[static_cast<std::size_t>(level)] = 1.0;  // alpha = e_level
  c.causal = false;
  auto build = [&](double scale) {
    c.scale = scale;
    Generator gen(2);  // levels the source lacks keep this seeded downsampler (an average)
    auto attn = std::make_unique<HierarchicalAttention>(c, gen, DType::Float64);
    copy_parameters(source, *attn);  // downsampler, W_V, W_O (and W_Q, W_K, replaced next)
    for (int l = 0; l < L; ++l) {
      set_values(parameter(*attn, "w_q." + std::to_string(l) + ".weight"), identity(d));
      set_values(parameter(*attn, "w_k." + std::to_string(l) + ".weight"), identity(d));
    }
    return attn;
  };
  auto input = [&](double amplitude) {  // X [1, T, d], X[p] = A e_p
    std::vector<double> one_hot(static_cast<std::size_t>(T * d), 0.0);
    for (std::int64_t p = 0; p < T; ++p) one_hot[static_cast<std::size_t>(p * d + p)] = amplitude;
    return Tensor::from_vector(one_hot, {1, T, d}, DType::Float64);
  };
  NoGradGuard no_grad;
  const auto reference = build(1.0);
  // The smallest amplitude whose level scores G = X^(level) X^(level)T (W_Q = W_K = I)
  // have G_tt >= 1 and G_tt - G_ts >= G_tt / 4 for every t and s != t.
  ConvolutionLimit out;
  Tensor x, xl;
  for (;; out.amplitude *= 2) {
    check(out.amplitude <= 0x1p30, "subsume_convolution: no input amplitude makes level " + std::to_string(level) +
                                       "'s scores diagonally dominant (the construction needs the windows of a "
                                       "depthwise downsampler with kernel_size <= 2 "
                                       "and no zero tap)");
    x = input(out.amplitude);
    xl = reference->downsample(x, Tensor())[static_cast<std::size_t>(level)];  // [1, T_l, d]
    const Matrix z = to_matrix(reshape(xl, {xl.shape()[1], d}));
    bool dominant = true;
    for (std::int64_t t = 0; t < z.rows && dominant; ++t) {
      double own = 0;
      for (std::int64_t i = 0; i < d; ++i) own += z(t, i) * z(t, i);
      dominant = own >= 1;
      for (std::int64_t s = 0; s < z.rows && dominant; ++s) {
        if (s == t) continue;
        double other = 0;
        for (std::int64_t i = 0; i < d; ++i) other += z(t, i) * z(s, i);
        dominant = own - other >= own / 4;
      }
    }
    if (dominant) break;
  }
  // The limit: LiftRows_level(X^(level)) W_V^T W_O^T.
  const Tensor conv = linear(linear(xl, parameter(*reference, "w_v.weight")), parameter(*reference, "w_o.weight"));
  const Tensor lifted = slice(repeat_interleave(conv, std::int64_t{1} << level, 1), 1, 0, T);
  const Matrix y_conv = to_matrix(reshape(lifted, {T, d}));
  const double norm = frobenius(y_conv);
  for (double s : scales) {
    const Matrix y = to_matrix(reshape(build(s)->forward(x, Tensor()), {T, d}));
    Matrix diff = y;
    for (std::size_t i = 0; i < diff.values.size(); ++i) diff.values[i] -= y_conv.values[i];
    out.errors.push_back({s, norm > 0 ? frobenius(diff) / norm : frobenius(diff)});
  }
  return out;
}

// ---- Thm. 4.3 empirics ------------------------------------------------------------------

Matrix level_projection_rows(const HierarchicalAttention& attn, const std::vector<Tensor>& xs, int level,
                             std::int64_t head, bool keys) {
  check_head(attn, level, head, "level_projection_rows");
  const Matrix w =
      to_matrix(parameter(attn, std::string(keys ? "w_k." : "w_q.") + std::to_string(level) + ".weight"));  // [d, d]
  const std::int64_t d = w.cols, dh = head_width(attn);
  std::vector<double> rows;
  std::int64_t n = 0;
  NoGradGuard no_grad;
  for (const Tensor& x : xs) {
    check_example(attn, x, "level_projection_rows");
    const Tensor xl_t = attn.downsample(x, Tensor())[static_cast<std::size_t>(level)];  // [1, T_l, d]
    const Matrix xl = to_matrix(reshape(xl_t, {xl_t.shape()[1], d}));
    for (std::int64_t t = 0; t < xl.rows; ++t, ++n)
      for (std::int64_t r = 0; r < dh; ++r) {  // (x W_h^T)[r] = sum_i x[i] W[h dh + r, i]
        double v = 0;
        for (std::int64_t i = 0; i < d; ++i) v += xl(t, i) * w(head * dh + r, i);
        rows.push_back(v);
      }
  }
  Matrix out(n, dh);
  out.values = std::move(rows);
  return out;
}

Matrix truncated_output(const HierarchicalAttention& attn, const Tensor& x, int kept) {
  check_example(attn, x, "truncated_output");
  const AttentionConfig& c = attn.config();
  check(kept >= 1 && kept <= c.levels,
        "truncated_output: kept levels " + std::to_string(kept) + " is outside 1.." + std::to_string(c.levels));
  NoGradGuard no_grad;
  const std::int64_t T = x.shape()[1], H = c.n_heads;
  const DType dt = x.dtype();
  const auto scores = attn.level_scores(x, Tensor());  // l: [1, H, T_l, T_l]
  const auto xs = attn.downsample(x, Tensor());        // l: [1, T_l, d]
  const Tensor w_v = parameter(attn, "w_v.weight"), w_o = parameter(attn, "w_o.weight");
  // alpha' [H, kept]: the first `kept` weights of each head, renormalised to sum 1.
  const auto alpha = level_weights(attn);
  std::vector<double> a;
  for (const auto& row : alpha) {
    const double total = std::accumulate(row.begin(), row.begin() + kept, 0.0);
    for (int l = 0; l < kept; ++l) a.push_back(row[static_cast<std::size_t>(l)] / total);
  }
  auto weight = [&](int l) {  // alpha'_l as [1, H, 1, 1]
    std::vector<double> w;
    for (std::int64_t h = 0; h < H; ++h) w.push_back(a[static_cast<std::size_t>(h * kept + l)]);
    return Tensor::from_vector(w, {1, H, 1, 1}, dt);
  };
  auto mask = [&](std::int64_t n) { return c.causal ? causal_mask(n, dt) : Tensor(); };
  Tensor o;  // [1, H, T, d_h]
  if (c.fusion == Fusion::Scores) {
    Tensor s;  // sum_l alpha'_l Lift_l(S^(l)), [1, H, T, T]
    for (int l = 0; l < kept; ++l) {
      const std::int64_t r = std::int64_t{1} << l;
      const Tensor lifted =
          slice(slice(repeat_interleave(repeat_interleave(scores[static_cast<std::size_t>(l)], r, 2), r, 3), 2, 0, T),
                3, 0, T);
      const Tensor term = mul(lifted, weight(l));
      s = s.defined() ? add(s, term) : term;
    }
    o = matmul(softmax(s, mask(T)), split_heads(linear(xs[0], w_v), H));
  } else {
    for (int l = 0; l < kept; ++l) {  // each level attends at its own resolution
      const auto li = static_cast<std::size_t>(l);
      const Tensor ol = matmul(softmax(scores[li], mask(scores[li].shape()[2])), split_heads(linear(xs[li], w_v), H));
      const Tensor term = mul(lift_rows(ol, l, T), weight(l));
      o = o.defined() ? add(o, term) : term;
    }
  }
  return to_matrix(reshape(linear(merge_heads(o), w_o), {T, c.d_model}));
}

double geometric_rate(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() < 2 || x.size() != y.size()) return kNaN;
  const auto n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    mx += x[i] / n;
    my += std::log(y[i]) / n;
  }
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (std::log(y[i]) - my);
    sxx += (x[i] - mx) * (x[i] - mx);
  }
  return sxx > 0 ? std::exp(sxy / sxx) : kNaN;
}

Truncation truncation_errors(const HierarchicalAttention& attn, const std::vector<Tensor>& xs) {
  const int L = attn.config().levels;
  std::vector<double> err2(static_cast<std::size_t>(L), 0.0);
  double norm2 = 0;
  for (const Tensor& x : xs) {
    const Matrix full = truncated_output(attn, x, L);
    norm2 += std::pow(frobenius(full), 2);
    for (int kept = 1; kept <= L; ++kept) {
      Matrix diff = truncated_output(attn, x, kept);
      for (std::size_t i = 0; i < diff.values.size(); ++i) diff.values[i] -= full.values[i];
      err2[static_cast<std::size_t>(kept - 1)] += std::pow(frobenius(diff), 2);
    }
  }
  Truncation t;
  std::vector<double> fit_x, fit_y;
  for (int kept = 1; kept <= L; ++kept) {
    const double e = norm2 > 0 ? std::sqrt(err2[static_cast<std::size_t>(kept - 1)] / norm2) : 0.0;
    t.errors.push_back(e);
    if (kept < L && e > 0) {
      fit_x.push_back(kept);
      fit_y.push_back(e);
    }
  }
  t.rate = geometric_rate(fit_x, fit_y);
  return t;
}

// ---- analyse -----------------------------------------------------------------------------

namespace {

// NaN and infinities have no JSON form: null.
config::Json number(double v) { return std::isfinite(v) ? config::Json(v) : config::Json(); }

config::Json spectrum_json(const Spectrum& s, bool with_eigenvalues) {
  config::Json j = {{"lambda_min", s.lambda_min},
                    {"lambda_max", s.lambda_max},
                    {"relative_min", s.relative_min},
                    {"psd", s.relative_min >= -kPsdTolerance}};
  if (with_eigenvalues) j["eigenvalues"] = s.eigenvalues;
  return j;
}

}  // namespace

config::Json analyse(const Classifier& model, const data::Dataset& split, const Options& options) {
  check(split.size() > 0, "theory: the " + split.split + " split is empty");
  check(options.examples >= 1, "theory: --examples must be >= 1");
  const auto& blocks = model.blocks();
  std::vector<std::unique_ptr<HierarchicalAttention>> attns;  // float64 copies, one per layer
  for (const auto& b : blocks) attns.push_back(to_float64(b->attention()));
  const AttentionConfig& ac = attns.front()->config();
  const int L = ac.levels;
  const std::int64_t H = ac.n_heads, layers = static_cast<std::int64_t>(attns.size());

  // Inputs: xs[layer][example] = LN1 output [1, T, d] in float64, one example at a time.
  const std::int64_t n_examples = std::min(options.examples, split.size());
  std::vector<std::vector<Tensor>> xs(static_cast<std::size_t>(layers));
  std::vector<std::int64_t> lengths;
  for (std::int64_t i = 0; i < n_examples; ++i) {
    const data::Dataset one = split.subset({i}, split.split);
    const data::Batch batch = data::Loader(one, 1, false, 0, true, model.dtype()).batch(0, 0);
    const auto inputs = model.attention_inputs(batch.tokens, batch.features, batch.mask);
    for (std::size_t layer = 0; layer < inputs.size(); ++layer)
      xs[layer].push_back(inputs[layer].detach().to(DType::Float64));
    lengths.push_back(inputs.front().shape()[1]);
  }

  config::Json alpha = config::Json::array();
  bool alpha_nonnegative = true;
  for (const auto& a : attns) {
    const auto w = level_weights(*a);
    for (const auto& row : w)
      for (double v : row) alpha_nonnegative &= v >= 0;
    alpha.push_back(w);
  }
  config::Json out = {{"model",
                       {{"layers", layers},
                        {"heads", H},
                        {"d_model", ac.d_model},
                        {"d_head", ac.d_model / H},
                        {"levels", L},
                        {"fusion", enum_name(ac.fusion)},
                        {"level_weights", enum_name(ac.level_weights)},
                        {"causal", ac.causal},
                        {"downsampler", enum_name(ac.downsampler)},
                        {"dtype", dtype_name(model.dtype())}}},
                      {"inputs",
                       {{"split", split.split},
                        {"examples", n_examples},
                        {"lengths", lengths},
                        {"max_positions", options.max_positions}}},
                      {"alpha", alpha}};

  if (options.psd) {
    config::Json levels = config::Json::array(), fused = config::Json::array();
    bool all_psd = true;
    for (std::int64_t layer = 0; layer < layers; ++layer)
      for (std::int64_t h = 0; h < H; ++h) {
        for (int l = 0; l < L; ++l) {
          const Spectrum s = bilinear_form_spectrum(*attns[static_cast<std::size_t>(layer)], l, h);
          all_psd &= s.relative_min >= -kPsdTolerance;
          config::Json j = spectrum_json(s, true);
          j["layer"] = layer, j["head"] = h, j["level"] = l;
          levels.push_back(j);
        }
        for (std::int64_t e = 0; e < n_examples; ++e) {
          const Tensor& x = xs[static_cast<std::size_t>(layer)][static_cast<std::size_t>(e)];
          const FusedSpectra f =
              fused_score_spectra(*attns[static_cast<std::size_t>(layer)], x, h, options.max_positions);
          config::Json j = spectrum_json(f.raw, false);
          j["layer"] = layer, j["head"] = h, j["example"] = e, j["positions"] = f.positions;
          j["centred"] = spectrum_json(f.centred, false);
          j["row_mean_share"] = f.row_mean_share;
          fused.push_back(j);
        }
      }
    const ConstructedPsd holds = constructed_psd_case(true), fails = constructed_psd_case(false);
    out["psd"] = {
        {"tolerance", kPsdTolerance},
        {"bilinear_forms", levels},
        {"all_bilinear_forms_psd", all_psd},
        {"alpha_nonnegative", alpha_nonnegative},
        {"condition_holds", all_psd && alpha_nonnegative},
        {"fused_scores", fused},
        {"constructed",
         {{"holds", {{"m", spectrum_json(holds.worst_m, false)}, {"s", spectrum_json(holds.worst_s, false)}}},
          {"fails", {{"m", spectrum_json(fails.worst_m, false)}, {"s", spectrum_json(fails.worst_s, false)}}}}}};
  }

  if (options.decompose) {
    config::Json rows = config::Json::array();
    double rec = 0, asym = 0, anti = 0;
    auto track = [&](const Decomposition& d) {
      rec = std::max(rec, d.reconstruction_error);
      asym = std::max(asym, d.sym_asymmetry);
      anti = std::max(anti, d.anti_symmetry_error);
    };
    for (std::int64_t layer = 0; layer < layers; ++layer) {
      const auto& attn = *attns[static_cast<std::size_t>(layer)];
      for (std::int64_t h = 0; h < H; ++h) {
        std::vector<double> s_sym(static_cast<std::size_t>(L), 0.0), s_anti(static_cast<std::size_t>(L), 0.0);
        for (const Tensor& x : xs[static_cast<std::size_t>(layer)]) {
          const auto scores = head_level_scores(attn, x, h);
          for (int l = 0; l < L; ++l) {
            const Decomposition d = decompose(scores[static_cast<std::size_t>(l)]);
            track(d);
            s_sym[static_cast<std::size_t>(l)] += d.sym_share / static_cast<double>(n_examples);
            s_anti[static_cast<std::size_t>(l)] += d.anti_share / static_cast<double>(n_examples);
          }
        }
        for (int l = 0; l < L; ++l) {
          const Decomposition m = decompose(bilinear_form(attn, l, h));
          track(m);
          rows.push_back({{"layer", layer},
                          {"head", h},
                          {"level", l},
                          {"m_sym_share", m.sym_share},
                          {"m_anti_share", m.anti_share},
                          {"s_sym_share", s_sym[static_cast<std::size_t>(l)]},
                          {"s_anti_share", s_anti[static_cast<std::size_t>(l)]}});
        }
      }
    }
    out["decompose"] = {{"levels", rows},
                        {"max_reconstruction_error", rec},
                        {"max_sym_asymmetry", asym},
                        {"max_anti_symmetry_error", anti}};
  }

  if (options.subsume) {
    const auto& attn = *attns.front();
    const SubsumeStandard a = subsume_standard(attn, xs.front().front(), std::max(L, 3));
    config::Json conv = config::Json::array();
    for (int l = 0; l < std::max(L, 2); ++l) {
      config::Json errors = config::Json::array();
      try {
        const ConvolutionLimit limit = subsume_convolution(attn, l, options.scales);
        for (const ScaleError& e : limit.errors)
          errors.push_back({{"scale", e.scale}, {"relative_error", e.relative_error}});
        conv.push_back({{"level", l}, {"amplitude", limit.amplitude}, {"errors", errors}});
      } catch (const Error& e) {  // e.g. a trained dense downsampler whose rows never dominate: reported, not fatal
        conv.push_back({{"level", l}, {"amplitude", nullptr}, {"errors", errors}, {"note", e.what()}});
      }
    }
    out["subsume"] = {{"standard",
                       {{"levels", a.levels},
                        {"T", xs.front().front().shape()[1]},
                        {"max_abs_error", a.max_abs_error},
                        {"relative_error", a.relative_error}}},
                      {"convolution", {{"T", std::min<std::int64_t>(ac.d_model, 64)}, {"levels", conv}}}};
  }

  if (options.kurtosis) {
    config::Json rows = config::Json::array();
    for (std::int64_t layer = 0; layer < layers; ++layer)
      for (int l = 0; l < L; ++l)
        for (std::int64_t h = 0; h < H; ++h) {
          config::Json row = {{"layer", layer}, {"level", l}, {"head", h}};
          for (const bool keys : {false, true}) {
            const Matrix rows_qk = level_projection_rows(*attns[static_cast<std::size_t>(layer)],
                                                         xs[static_cast<std::size_t>(layer)], l, h, keys);
            const double n = static_cast<double>(rows_qk.rows), p = static_cast<double>(rows_qk.cols);
            double b2 = kNaN;
            if (rows_qk.rows > rows_qk.cols + 1) {
              try {
                b2 = mardia_kurtosis(rows_qk);
              } catch (const Error&) {  // singular covariance: reported as null
              }
            }
            row["n"] = rows_qk.rows;
            row["p"] = rows_qk.cols;
            row["gaussian"] = p * (p + 2);
            row["gaussian_mean_n"] = p * (p + 2) * (n - 1) / (n + 1);  // E b_{2,p} at finite n (Mardia 1974)
            row["standard_error"] = std::sqrt(8 * p * (p + 2) / n);
            row[keys ? "k_b2" : "q_b2"] = number(b2);
            row[keys ? "k_z" : "q_z"] = number((b2 - p * (p + 2)) / std::sqrt(8 * p * (p + 2) / n));
          }
          rows.push_back(row);
        }
    out["kurtosis"] = rows;
  }

  if (options.truncate) {
    config::Json rows = config::Json::array();
    for (std::int64_t layer = 0; layer < layers; ++layer) {
      const Truncation t =
          truncation_errors(*attns[static_cast<std::size_t>(layer)], xs[static_cast<std::size_t>(layer)]);
      rows.push_back({{"layer", layer}, {"errors", t.errors}, {"rate", number(t.rate)}});
    }
    out["truncate"] = rows;
  }
  return out;
}

config::Json eval_metrics(const Classifier& model) {
  config::Json out = config::Json::array();
  NoGradGuard no_grad;
  for (const auto& block : model.blocks()) {
    const HierarchicalAttention& attn = block->attention();
    config::Json layer = config::Json::array();
    for (std::int64_t h = 0; h < attn.config().n_heads; ++h) {
      config::Json row = config::Json::array();
      for (int l = 0; l < attn.config().levels; ++l) row.push_back(decompose(bilinear_form(attn, l, h)).sym_share);
      layer.push_back(row);
    }
    out.push_back(layer);
  }
  return {{"m_sym_share", out}};
}

}  // namespace hkt::theory
