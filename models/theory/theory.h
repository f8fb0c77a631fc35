// theory.h: the paper's theory results checked numerically on real weights and inputs
// (docs/hkt-attention.md section 7; docs/theory.md explains each result):
//   psd        Prop. 3.1: M_l^sym PSD for every level and alpha >= 0 => S^sym PSD; the
//              spectrum of S^sym on real inputs, raw and with each row's mean removed
//              (softmax ignores a row shift: the centred part is what attention uses)
//   decompose  Props. 3.5-3.6: each M_l and S^(l) = symmetric + antisymmetric part
//   subsume    Prop. 3.4 / docs/hkt-attention.md section 4: standard attention and causal convolution
//              are special cases of HKT
//   kurtosis   Thm. 4.3 empirics: Mardia's multivariate kurtosis of Q^(l), K^(l)
//   truncate   Thm. 4.3 / Prop. 4.4 empirics: output error of keeping L' < L levels
// Every computation runs in float64 (a float32 model is copied to float64 first), on one
// example at a time (a batch of 1, so no padding). `hkt theory` (tools/cmd_theory.cpp)
// prints the results; analyse() gathers them as JSON for tools/plot_theory.py.
//
// Notation (spec): X [T, d] the attention sublayer's input (LN1 output), H heads of width
// d_h = d / H, L levels, T_l = ceil(T / 2^l), scale = 1/sqrt(d_h) unless configured.
// Weights use PyTorch's layout, y = x W^T with W [d_out, d_in]; head h owns output rows
// h d_h .. (h+1) d_h - 1 of W_Q^(l) and W_K^(l), written W_Q,h^(l) [d_h, d]. Then
//   Q^(l)_h = X^(l) W_Q,h^T,  S^(l)_h = scale X^(l) W_Q,h^T W_K,h X^(l)T,
// so the bilinear form of Prop. 3.1 is M_l,h = W_Q,h^(l)T W_K,h^(l)  (d x d, rank <= d_h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "classifier.h"
#include "config.h"
#include "dataset.h"
#include "hierarchical_attention.h"

namespace hkt::theory {

// ---- dense float64 matrices and the linear algebra the checks need ---------------------

/// A dense row-major float64 matrix: a(i, j) = values[i * cols + j].
struct Matrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<double> values;
  Matrix() = default;
  Matrix(std::int64_t r, std::int64_t c) : rows(r), cols(c), values(static_cast<std::size_t>(r * c), 0.0) {}
  double& operator()(std::int64_t i, std::int64_t j) { return values[static_cast<std::size_t>(i * cols + j)]; }
  double operator()(std::int64_t i, std::int64_t j) const { return values[static_cast<std::size_t>(i * cols + j)]; }
};

/// A rank-2 tensor (any float dtype, CPU) as a float64 Matrix. Throws hkt::Error unless
/// t is rank 2.
Matrix to_matrix(const Tensor& t);

/// Eigenvalues of a symmetric matrix a [n, n] in ascending order, by the cyclic Jacobi
/// method (Golub & Van Loan, "Matrix Computations", section 8.5): plane rotations zero
/// each off-diagonal entry in turn until the off-diagonal part's Frobenius norm is below
/// n 1e-15 ||a||_F, so that no eigenvalue is off by more than that (Weyl's inequality).
/// A few sweeps; each costs ~4 n^3 flops, so n <= ~1024. Float64.
/// Throws hkt::Error when a is not square, has a non-finite entry, is not symmetric
/// (|a_ij - a_ji| > 1e-12 max|a|), or does not converge within 100 sweeps.
std::vector<double> symmetric_eigenvalues(const Matrix& a);

/// The symmetric and antisymmetric parts of a square matrix (Props. 3.5-3.6):
/// sym = (a + a^T) / 2, anti = (a - a^T) / 2, so a = sym + anti up to one rounding,
/// sym^T == sym and anti^T == -anti exactly. Throws hkt::Error for a non-square a.
struct SymAnti {
  Matrix sym, anti;
};
SymAnti split_sym_anti(const Matrix& a);

/// Frobenius norm sqrt(sum a_ij^2).
double frobenius(const Matrix& a);

/// Mardia's multivariate kurtosis (Mardia 1970) of the n rows of x [n, p]:
///   b_{2,p} = (1/n) sum_i ((x_i - mean)^T S^-1 (x_i - mean))^2,  S the biased covariance
/// (divided by n). For Gaussian samples E b_{2,p} -> p (p + 2) with standard error
/// sqrt(8 p (p + 2) / n) (the values Thm. 4.3's Gaussian term assumes). Float64.
/// Throws hkt::Error when n <= p or S is singular (not positive definite).
double mardia_kurtosis(const Matrix& x);

// ---- the attention module in float64 --------------------------------------------------

/// A float64 copy of an attention module: same config, every parameter copied by name
/// (converted to float64). All checks below run on such a copy.
std::unique_ptr<HierarchicalAttention> to_float64(const HierarchicalAttention& attn);

/// Copies every parameter of `from` whose name and shape match one of `to` into `to`'s
/// storage (converted to to's dtype), in place. Returns how many were copied; the others
/// keep their values. For building the constructed cases from real weights.
int copy_parameters(const Module& from, const Module& to);

/// M_l,h = W_Q,h^(l)T W_K,h^(l) [d, d] (the header's notation; docs/hkt-attention.md section 7), from the
/// module's parameters w_q.{l}.weight and w_k.{l}.weight. Float64. Throws hkt::Error for
/// a level or head out of range.
Matrix bilinear_form(const HierarchicalAttention& attn, int level, std::int64_t head);

/// Lift_l(S)[i, j] = S[floor(i / 2^l), floor(j / 2^l)] for i, j < T (docs/hkt-attention.md section 2):
/// s [T_l, T_l] -> [T, T].
Matrix lift(const Matrix& s, int level, std::int64_t T);

/// The fused score matrix of one head (docs/hkt-attention.md section 3, "scores" fusion), before masking:
///   S_h = sum_{l < levels.size()} alpha_l Lift_l(S^(l)_h)   [T, T]
/// from the level scores of one example (levels[l] = S^(l)_h [T_l, T_l]) and weights alpha.
Matrix fused_scores(const std::vector<Matrix>& levels, const std::vector<double>& alpha, std::int64_t T);

/// The level scores of head h of one example, as matrices: S^(l)_h [T_l, T_l] for every
/// level, from HierarchicalAttention::level_scores(x, undefined mask). x: [1, T, d] in the
/// module's dtype.
std::vector<Matrix> head_level_scores(const HierarchicalAttention& attn, const Tensor& x, std::int64_t head);

/// The level weights alpha [H][L] the module uses (softmax of the logits, or fixed).
std::vector<std::vector<double>> level_weights(const HierarchicalAttention& attn);

// ---- Prop. 3.1: positive semidefiniteness ---------------------------------------------

/// Extremes of a symmetric matrix's spectrum. relative_min = lambda_min / max|lambda|
/// (0 for the zero matrix): the scale-free number the PSD verdicts use.
struct Spectrum {
  double lambda_min = 0, lambda_max = 0, relative_min = 0;
  std::vector<double> eigenvalues;  ///< ascending
};
/// The spectrum of a symmetric matrix (symmetric_eigenvalues).
Spectrum spectrum(const Matrix& sym);

/// A relative_min at or above -kPsdTolerance counts as PSD: float64 rounding of products
/// of O(1) values is ~1e-16 relative; 1e-10 leaves room for the sums of d to 1024 terms.
inline constexpr double kPsdTolerance = 1e-10;

/// The spectrum of M_l,h^sym = (M + M^T) / 2 (Prop. 3.1's condition, per level and head).
Spectrum bilinear_form_spectrum(const HierarchicalAttention& attn, int level, std::int64_t head);

/// The spectrum of S_h^sym = (S_h + S_h^T) / 2 of the fused scores of head h on input x
/// [1, T, d] (module dtype), restricted to the first `max_positions` positions (a
/// principal submatrix: PSD whenever the whole matrix is; its lambda_min is >= the
/// whole's). "scores" fusion's S_h is used whatever the module's fusion (Prop. 3.1 is
/// about that matrix).
Spectrum fused_score_spectrum(const HierarchicalAttention& attn, const Tensor& x, std::int64_t head,
                              std::int64_t max_positions = 256);

/// A score matrix with each row's mean over the keys its softmax sees removed. Softmax
/// ignores a shift of its row (softmax(s + c 1) = softmax(s)), so
///   S_c = S - m 1^T,   m_i = mean_{j in A_i} S_ij,
/// with A_i = {0..n-1} (unmasked) or {0..i} (causal), gives every row the same attention
/// weights as S; of all per-row shifts it is the one with the least Frobenius norm over
/// the seen entries (the orthogonal projection of each seen row onto the sums-to-zero
/// vectors). Every entry of row i is shifted, the causally masked ones (j > i) too, so
/// S_c is, like S, the matrix before masking. The seen parts are Frobenius-orthogonal:
///   row_mean_share = ||m 1^T||_F / ||S||_F = sqrt(sum_i |A_i| m_i^2 / sum_{j in A_i} S_ij^2)
/// over the seen entries (0 for a zero matrix), and the centred part carries
/// sqrt(1 - row_mean_share^2). s: [n, n] float64. Throws hkt::Error for a non-square s.
struct RowCentred {
  Matrix centred;                 ///< S_c [n, n]
  std::vector<double> row_means;  ///< m [n]
  double row_mean_share = 0;
};
RowCentred centre_rows(const Matrix& s, bool causal);

/// The spectra of the fused scores of head h on input x [1, T, d] (module dtype), raw and
/// with the row means removed (docs/theory.md, psd):
///   raw       S_h^sym = (S_h + S_h^T) / 2, as fused_score_spectrum
///   centred   S_c^sym = (S_c + S_c^T) / 2, S_c = centre_rows(S_h, causal) with the
///             module's causal flag: the part of S_h that the softmax uses
/// Row means and row_mean_share are taken over all T positions (the keys each softmax row
/// really sees); both spectra are of the leading principal submatrix of the first
/// positions = min(T, max_positions) positions. "scores" fusion's S_h whatever the
/// module's fusion. Throws hkt::Error for max_positions < 1 or an x that is not one
/// example [1, T, d].
struct FusedSpectra {
  Spectrum raw, centred;
  double row_mean_share = 0;
  std::int64_t positions = 0;
};
FusedSpectra fused_score_spectra(const HierarchicalAttention& attn, const Tensor& x, std::int64_t head,
                                 std::int64_t max_positions = 256);

/// A constructed case of Prop. 3.1 with a known answer: a float64 module (d = 16, H = 2,
/// L = 3, T = 37, seeded) whose W_K^(l) = +W_Q^(l) ("holds": M = W_Q,h^T W_Q,h is PSD,
/// so S^sym must be PSD to rounding) or -W_Q^(l) ("fails": M^sym = -W_Q,h^T W_Q,h has
/// lambda_min = -sigma_max(W_Q,h)^2 < 0, and S^sym is negative semidefinite and nonzero,
/// so clearly negative). Level weights (0.5, 0.3, 0.2) for every head. Returns the worst
/// (smallest relative_min) M^sym over levels and heads and the worst S^sym over heads.
struct ConstructedPsd {
  Spectrum worst_m, worst_s;
};
ConstructedPsd constructed_psd_case(bool holds, std::uint64_t seed = 7);

// ---- Props. 3.5-3.6: symmetric / antisymmetric decomposition --------------------------

/// Shares of a matrix's two parts: sym_share = ||sym||_F / ||a||_F and anti_share
/// likewise (sym_share^2 + anti_share^2 = 1: the parts are Frobenius-orthogonal), and the
/// identity checks: max |sym + anti - a|, max |sym - sym^T|, max |anti + anti^T|, each
/// divided by max |a| (0 for a zero matrix).
struct Decomposition {
  double sym_share = 0, anti_share = 0;
  double reconstruction_error = 0, sym_asymmetry = 0, anti_symmetry_error = 0;
};
Decomposition decompose(const Matrix& a);

// ---- Prop. 3.4 / docs/hkt-attention.md section 4: HKT contains attention and convolution ---------------

/// Construction (a): an HKT module with `levels` levels and fixed alpha = (1, 0, ...)
/// ("scores" fusion) against standard attention (levels = 1) with the same W_Q^(0),
/// W_K^(0), W_V, W_O, both float64 copies of `source`'s shape and weights (levels the
/// source lacks are seeded randomly: alpha = 0 ignores them). x: [1, T, d], any float
/// dtype (converted). Returns max |Y_hkt - Y_mha| and ||Y_hkt - Y_mha||_F / ||Y_mha||_F:
/// both exactly 0 (0 * finite = 0 and s + 0 = s in IEEE arithmetic).
struct SubsumeStandard {
  int levels = 0;
  double max_abs_error = 0, relative_error = 0;
};
SubsumeStandard subsume_standard(const HierarchicalAttention& source, const Tensor& x, int levels = 3);

/// Construction (b): "outputs" fusion with alpha = e_level, one head, W_Q^(l) = W_K^(l)
/// = I, the downsampler, W_V and W_O of `source` (float64), score scale s. Input X [T, d]
/// with T = min(d, 64) rows X[p] = A e_p (one-hot by position, amplitude A): with the
/// depthwise downsampler (k <= 2) the rows of X^(level) are A u_t + c_t with disjoint
/// supports u_t plus bias terms c_t that do not grow with A, so for A large enough each
/// row's score is highest with itself. A is the smallest power of 2 for which every row
/// has X^(level)[t] . X^(level)[t] >= 1 and beats every other row's score by at least a
/// quarter of it. Then softmax(s S) -> I as s -> infinity and
///   Y -> LiftRows_level(X^(level)) W_V^T W_O^T,
/// the lifted stride-2^level causal convolution of X (the downsampler) times W_V then W_O.
/// Returns A and, per scale, ||Y_s - Y_conv||_F / ||Y_conv||_F (falling toward 0).
/// Throws hkt::Error for a level outside 0..L-1 (L = max(source levels, 2)), a
/// non-positive scale, or when no A <= 2^30 makes the diagonal dominant (overlapping
/// windows when kernel_size > 2, a dense downsampler, or a zero tap).
struct ScaleError {
  double scale = 0, relative_error = 0;
};
struct ConvolutionLimit {
  double amplitude = 1;
  std::vector<ScaleError> errors;
};
ConvolutionLimit subsume_convolution(const HierarchicalAttention& source, int level, const std::vector<double>& scales);

// ---- Thm. 4.3 empirics -----------------------------------------------------------------

/// The level-l queries or keys of head h of several examples, their rows stacked:
/// Q^(l)_h = X^(l) W_Q,h^T for each x in xs ([1, T, d] each), -> [sum_x T_l, d_h].
Matrix level_projection_rows(const HierarchicalAttention& attn, const std::vector<Tensor>& xs, int level,
                             std::int64_t head, bool keys);

/// The attention output Y [T, d] of one example x [1, T, d] keeping only levels 0..kept-1
/// with alpha renormalised over them (alpha'_l = alpha_l / sum_{l' < kept} alpha_l'),
/// for either fusion and causal or not (docs/hkt-attention.md section 3, computed from level_scores with
/// engine ops; at kept = L it is the module's forward up to summation order). Throws
/// hkt::Error for kept outside 1..L.
Matrix truncated_output(const HierarchicalAttention& attn, const Tensor& x, int kept);

/// Truncation errors of one layer over several examples: error[L' - 1] =
/// sqrt(sum_x ||Y_L' - Y_L||_F^2 / sum_x ||Y_L||_F^2) for L' = 1..L (error[L-1] = 0
/// exactly), and the geometric rate r of a least-squares fit log error ~ a + L' log r over
/// the L' < L with error > 0 (NaN when fewer than 2 such points).
struct Truncation {
  std::vector<double> errors;
  double rate = 0;
};
Truncation truncation_errors(const HierarchicalAttention& attn, const std::vector<Tensor>& xs);

/// exp(slope) of the least-squares line through (x_i, log y_i): the geometric rate of
/// y ~ C r^x. NaN when fewer than 2 points.
double geometric_rate(const std::vector<double>& x, const std::vector<double>& y);

// ---- everything at once, for `hkt theory` ----------------------------------------------

/// What analyse() computes.
struct Options {
  bool psd = true, decompose = true, subsume = true, kurtosis = true, truncate = true;
  std::int64_t examples = 8;                     ///< the first N examples of the split
  std::int64_t max_positions = 256;              ///< S^sym spectra use at most this many positions
  std::vector<double> scales{1, 10, 100, 1000};  ///< score scales of construction (b)
};

/// Runs the selected checks on `model` (every block's attention, in float64) with the
/// first options.examples examples of `split` as inputs (one at a time; each through
/// Classifier::attention_inputs). Returns the JSON that `hkt theory --json` prints and
/// tools/plot_theory.py reads (docs/theory.md lists its keys). Throws hkt::Error for an
/// empty split or examples < 1.
config::Json analyse(const Classifier& model, const data::Dataset& split, const Options& options);

/// The theory numbers logged at every validation of a training run (the trainer's
/// TrainOptions::eval_metrics): {"m_sym_share": [layer][head][level]}, the share
/// ||M^sym||_F / ||M||_F of the symmetric part of each bilinear form
/// M_l,h = W_Q,h^(l)T W_K,h^(l) (Props. 3.5-3.6), so that the reciprocal/directional
/// balance can be followed in training (the antisymmetric share is sqrt(1 - share^2)).
config::Json eval_metrics(const Classifier& model);

}  // namespace hkt::theory
