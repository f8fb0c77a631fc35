// ops.h: every tensor operation of the engine. Each is differentiable unless it says
// otherwise; float ops accept float32 and float64 (both inputs the same dtype) and throw
// hkt::Error naming the op for a wrong dtype, device or shape. Each op's forward,
// backward and dispatch live together in one file under engine/ops/ (named below).
// Conventions where mathematics leaves a choice are those of docs/engine.md
// ("Conventions"), referred to as "convention N". Convention 3 (a zero upstream gradient
// gives a zero input gradient even where the local derivative is infinite) holds for
// every elementwise op, masking and softmax; a matmul or conv1d whose other operand holds
// inf already has a non-finite forward, which training reports as an error.
// Float32 reductions (sum, mean, layer norm statistics, softmax sums) accumulate in double.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd.h"
#include "tensor.h"

namespace hkt {

// ---- elementwise, binary, numpy broadcasting (ops/binary.cpp) ----------------------
// Shapes broadcast as in numpy: aligned on the right, each pair equal or one of them
// 1. Output: the broadcast shape. Gradients are summed back to each input's shape.
Tensor add(const Tensor& a, const Tensor& b);  ///< a + b
Tensor sub(const Tensor& a, const Tensor& b);  ///< a - b
Tensor mul(const Tensor& a, const Tensor& b);  ///< a * b
Tensor div(const Tensor& a, const Tensor& b);  ///< a / b (IEEE: x/0 = +-inf, 0/0 = nan)

// ---- scalar variants (ops/scalar.cpp) ------------------------------------------------
Tensor add(const Tensor& x, double s);   ///< x + s
Tensor sub(const Tensor& x, double s);   ///< x - s
Tensor rsub(const Tensor& x, double s);  ///< s - x
Tensor mul(const Tensor& x, double s);   ///< x * s
Tensor div(const Tensor& x, double s);   ///< x / s
Tensor rdiv(const Tensor& x, double s);  ///< s / x
Tensor pow(const Tensor& x, double p);   ///< x^p; d/dx = p x^(p-1)

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& x, double s);
Tensor operator-(const Tensor& x, double s);
Tensor operator*(const Tensor& x, double s);
Tensor operator/(const Tensor& x, double s);
Tensor operator+(double s, const Tensor& x);
Tensor operator-(double s, const Tensor& x);
Tensor operator*(double s, const Tensor& x);
Tensor operator/(double s, const Tensor& x);
Tensor operator-(const Tensor& x);

// ---- elementwise, unary (ops/unary.cpp) ----------------------------------------------
Tensor neg(const Tensor& x);      ///< -x
Tensor exp(const Tensor& x);      ///< e^x
Tensor log(const Tensor& x);      ///< natural log; log 0 = -inf, log(<0) = nan
Tensor sqrt(const Tensor& x);     ///< square root
Tensor tanh(const Tensor& x);     ///< hyperbolic tangent
Tensor sigmoid(const Tensor& x);  ///< 1 / (1 + e^-x)
Tensor relu(const Tensor& x);     ///< max(x, 0), NaN stays NaN; gradient 0 at x = 0 (PyTorch's choice)

/// GELU (Hendrycks & Gimpel 2016). Erf: x Phi(x) = x/2 (1 + erf(x/sqrt 2)), PyTorch's
/// default. Tanh: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), approximate="tanh".
/// Erf in float32 on the CPU is computed as x/2 erfc(-x/sqrt 2) with a vectorised erfc
/// (engine/attention/vector_math.h): the value within (6e-7 + 1.2e-7 x^2) relative of the
/// exact one, the gradient within that fraction of |Phi(x)| + |x phi(x)| (the gradient
/// itself crosses 0 near x = -0.75); float64 and CUDA use std::erf.
enum class GeluApproximation { Erf, Tanh };
Tensor gelu(const Tensor& x, GeluApproximation approximation = GeluApproximation::Erf);

// ---- matrix product (ops/matmul.cpp) --------------------------------------------------
/// Batched matrix product through BLAS (sgemm/dgemm). a: [..., m, k], b: [..., k, n]
/// (rank >= 2 each; batch dimensions broadcast as in numpy) -> [..., m, n].
/// Throws "matmul: [2,3] x [4,5]: inner sizes 3 and 4 differ" style errors.
Tensor matmul(const Tensor& a, const Tensor& b);

/// Affine map y = x W^T + b with PyTorch's nn.Linear layout (ops/linear.cpp).
/// x: [..., in], weight: [out, in], bias: [out] or undefined -> [..., out].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- layout (ops/layout.cpp) ---------------------------------------------------------
/// A view of x with a new shape of the same numel; one size may be -1 (inferred).
Tensor reshape(const Tensor& x, const Shape& shape);
/// Output dimension i is input dimension dims[i]; dims must be a permutation of 0..rank-1.
Tensor permute(const Tensor& x, const std::vector<int>& dims);
/// Swaps two dimensions (negative axes count from the end).
Tensor transpose(const Tensor& x, int axis0, int axis1);
/// Elements start..end-1 along axis (0 <= start <= end <= size; negative start/end count
/// from the end). Gradient: zero outside the slice.
Tensor slice(const Tensor& x, int axis, std::int64_t start, std::int64_t end);
/// Joins tensors of the same dtype along axis; all other sizes must match.
Tensor concat(const std::vector<Tensor>& xs, int axis);

// ---- reductions (ops/reduce.cpp) -----------------------------------------------------
/// Sum over `axes` (all axes when empty); keepdim keeps them as size 1.
Tensor sum(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
/// Mean over `axes` (all when empty). The mean over zero elements is nan, as in PyTorch.
Tensor mean(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
/// Maximum over `axes` (all when empty). Ties: the gradient is split evenly among the
/// tied elements (docs/engine.md convention 1). Throws for a reduction over zero elements.
Tensor max(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
/// Sums a broadcast result back to `shape` (the reverse of broadcasting). Differentiable.
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- softmax family (ops/softmax.cpp) -------------------------------------------------
/// softmax over the last axis of (x + mask). mask (optional, same dtype) broadcasts to
/// x and is a constant (it gets no gradient): use 0 to keep and -inf to mask. A row that
/// is entirely -inf gives 0 and a zero gradient (docs/engine.md convention 2).
Tensor softmax(const Tensor& x, const Tensor& mask = Tensor());
/// log softmax over the last axis of (x + mask), computed as (x + mask) - LSE. A row
/// that is entirely -inf gives -inf and a zero gradient (docs/engine.md convention 2). A masked entry
/// (x + mask = -inf) is the constant -inf whatever x is, so its input gets gradient 0
/// and its upstream gradient is left out of the row sum. PyTorch differs here: it passes
/// the upstream gradient of a -inf output straight through to x (both agree when that
/// upstream gradient is 0, the case in any loss that ignores masked entries).
Tensor log_softmax(const Tensor& x, const Tensor& mask = Tensor());

/// Mean cross entropy of class logits [..., C] against int64 targets [...]:
/// loss = mean over non-ignored targets of -((1 - eps) log p[target] + eps/C sum_c log p[c]),
/// eps = label_smoothing (PyTorch's formula). Targets equal to ignore_index are skipped;
/// if all are, loss 0 and zero gradient (docs/engine.md convention 4; PyTorch gives nan). Throws for a
/// target outside [0, C) naming its position and value. Output: rank 0.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, std::int64_t ignore_index = -100,
                     double label_smoothing = 0.0);

// ---- normalisation (ops/layer_norm.cpp) -----------------------------------------------
/// Layer norm over the last axis (Ba et al. 2016): (x - mean) / sqrt(var + eps) * weight
/// + bias, var the biased variance. x: [..., D]; weight, bias: [D] or undefined.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

// ---- indexing (ops/embedding.cpp, ops/gather.cpp) -------------------------------------
/// Rows of weight [V, D] picked by int64 indices [...] -> [..., D]. Backward adds each
/// output row's gradient into its weight row (deterministic, no atomics). Throws for an
/// index outside [0, V) naming its position and value.
Tensor embedding(const Tensor& weight, const Tensor& indices);
/// out[...i..] = x[...index[...i..]..] along axis (torch.gather). index: int64 of x's rank,
/// same sizes as x except along axis. Backward scatter-adds (deterministic).
Tensor gather(const Tensor& x, int axis, const Tensor& index);
/// Repeats each element `repeats` times along axis: [a, b] -> [a, a, b, b] for 2. This is
/// the "lift" of docs/hkt-attention.md section 2 (then slice to T). Backward:
/// sum over each group of repeats.
Tensor repeat_interleave(const Tensor& x, std::int64_t repeats, int axis);

// ---- masking and dropout (ops/masking.cpp) ---------------------------------------------
/// x where mask == 0, `value` where mask != 0. mask broadcasts to x (any dtype); it is
/// not differentiated. The gradient is 0 at filled positions (docs/engine.md convention 3).
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
/// Inverted dropout: each element is kept with probability 1 - p and scaled by 1/(1-p).
/// Element i is dropped when uniform24_at(gen.seed, offset, i) < p (word i % 4 of Philox
/// block offset + i / 4, random.h), so the mask is the same on every device and thread
/// count; gen advances by ceil(numel / 4).
/// Identity when !training or p == 0. Throws for p outside [0, 1).
Tensor dropout(const Tensor& x, double p, Generator& gen, bool training = true);

// ---- the downsampler (ops/conv1d.cpp) ---------------------------------------------------
/// Depthwise causal strided conv1d (docs/hkt-attention.md section 1):
/// y[b, t, c] = bias[c] + sum_{r=0}^{k-1} weight[c, r] * x[b, stride*t - r, c],
/// t = 0..ceil(T/stride)-1, positions below 0 contribute 0. x: [B, T, C],
/// weight: [C, k] (tap r multiplies the input r steps back), bias: [C] or undefined.
/// PyTorch's conv1d(groups=C, padding=k-1) weight[c, 0, j] equals our weight[c, k-1-j].
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, std::int64_t stride);

// ---- not differentiable ---------------------------------------------------------------
/// In place: dst += src (same shape and dtype). Used for gradient accumulation and
/// optimizers; never recorded, so only for tensors outside the graph.
void add_(Tensor& dst, const Tensor& src);
/// 1 where a == b, else 0 (broadcasting), in a's dtype; float32 or float64 inputs. A
/// constant: no gradient.
Tensor eq(const Tensor& a, const Tensor& b);

}  // namespace hkt
