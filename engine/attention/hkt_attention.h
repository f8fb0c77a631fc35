// hkt_attention.h: the core of hierarchical attention, "scores" fusion
// (docs/hkt-attention.md sections 2, 3 and 6), in two implementations with
// one meaning:
//   * hkt_attention_composite: built only from engine ops and differentiated by autodiff;
//     it materialises the T x T score matrices. The definition and the test oracle.
//   * hkt_attention_fused: tiled exactly as the kernel algorithm of section 6 (online
//     softmax, saved log-sum-exp, FlashAttention-2 backward), never allocating T x T;
//     the fast CPU path, and the reference the CUDA kernels are tested against.
// With L = 1 both are standard multi-head attention: the baseline MHA is this code.
//
// Shapes (B batch, H heads, T tokens, T_l = ceil(T / 2^l), d_h head width, L levels):
//   q[l], k[l]: [B, H, T_l, d_h] for l = 0..L-1 (the level-l queries and keys)
//   v:          [B, H, T, d_h]
//   alpha:      [H, L] level weights (rows are convex weights; any values are accepted)
//   key_mask:   [B, T], nonzero = real token, or undefined (all real)
//   result O:   [B, H, T, d_h]
// Per head h:  S = sum_l alpha[h, l] Lift_l(scale Q_l K_l^T),  P = softmax_j(S + mask),
// O = P V, with key j masked where key_mask[b, j] = 0 or (causal and j > i). A query
// row with every key masked outputs 0 and gets zero gradients (docs/engine.md convention 5).
#pragma once

#include <cstdint>
#include <vector>

#include "../tensor.h"

namespace hkt {

/// The precision of the fused op's products on a GPU (config `model.attention_precision`,
/// docs/config.md). Fp32: the tensors' own dtype throughout (kernel v1). Bf16: for float32
/// CUDA tensors, the tensor-core kernels of kernels/backend/attention_v2.cpp (Q_l, K_l, V,
/// dO, P and dS rounded to bfloat16 as they enter a product, float32 accumulation and
/// softmax; error within 2x of an unfused bf16 computation's). The CPU op and float64
/// tensors ignore it and keep their full precision.
enum class AttentionPrecision { Fp32, Bf16 };

struct HktAttentionOptions {
  bool causal = false;
  AttentionPrecision precision = AttentionPrecision::Fp32;
  /// Multiplies every level's scores; 0 means 1/sqrt(d_h).
  double scale = 0.0;
  /// Query and key tile sizes of the fused CPU op; rounded up to a multiple of 2^(L-1).
  /// 128 x 256 was the fastest of the sizes from 64 x 64 to 256 x 512 tried for forward +
  /// backward at T = 1024 and 2048, d_h = 32 and 64, L = 1 and 3 (docs/attention.md,
  /// "Inside a tile"): larger tiles make fewer, larger BLAS calls, and a thread's scratch
  /// (float32, L = 3: 0.2 MiB in the forward, 0.35 to 0.45 MiB in the backward) still
  /// fits in L2.
  std::int64_t block_q = 128;
  std::int64_t block_k = 256;
};

/// The reference: composite of engine ops (materialises [B, H, T, T]). Throws hkt::Error
/// naming the argument whose shape, dtype or device does not fit.
Tensor hkt_attention_composite(const std::vector<Tensor>& q, const std::vector<Tensor>& k, const Tensor& v,
                               const Tensor& alpha, const Tensor& key_mask, const HktAttentionOptions& options = {});

/// The fused op: same result, memory O(T d_h) per (batch, head) plus the LSE; the
/// backward of docs/hkt-attention.md section 6 gives dq[l], dk[l], dv and dalpha. Deterministic: each
/// (batch, head) is one OpenMP task writing only its own gradients; dalpha is reduced
/// over the batch in a fixed order.
Tensor hkt_attention_fused(const std::vector<Tensor>& q, const std::vector<Tensor>& k, const Tensor& v,
                           const Tensor& alpha, const Tensor& key_mask, const HktAttentionOptions& options = {});

/// Checks the arguments of either implementation (shapes above, one floating dtype and
/// device, key_mask of 0s and 1s, a finite scale) and returns the scale to use. Throws
/// hkt::Error naming what does not fit.
double check_hkt_attention_args(const char* op, const std::vector<Tensor>& q, const std::vector<Tensor>& k,
                                const Tensor& v, const Tensor& alpha, const Tensor& key_mask,
                                const HktAttentionOptions& options);

/// k[l] and v with the rows of masked keys set to 0: V's row j where key_mask[b, j] = 0,
/// and K_l's coarse row u where every fine key under it (u 2^l .. (u + 1) 2^l - 1) is
/// masked. Through masked_fill, so their gradients are 0 too. A masked key then reaches
/// no output and no gradient even when its K or V holds NaN or inf (its probability is
/// 0, but 0 times NaN is NaN). The inputs themselves when nothing is masked.
struct MaskedKeys {
  std::vector<Tensor> k;
  Tensor v;
};
MaskedKeys zero_masked_keys(const std::vector<Tensor>& k, const Tensor& v, const Tensor& key_mask);

/// Counted floating-point operations (multiply-add = 2) of one attention call,
/// docs/hkt-attention.md section 5. score_flops: sum_l 2 B H T_l^2 d_h (the Q K^T products of every level);
/// total_flops (the forward) adds the P V product, 2 B H T^2 d_h. backward_flops: the fused
/// backward's products (FlashAttention-2's structure, section 6): the scores recomputed,
/// dP = dO V^T, dV = P^T dO, and each level's dQ_l and dK_l, each as large as its scores:
/// 3 score_flops + 2 (2 B H T^2 d_h). Causality is not discounted.
struct AttentionFlops {
  double score_flops = 0;
  double total_flops = 0;
  double backward_flops = 0;
};
AttentionFlops hkt_attention_flops(std::int64_t B, std::int64_t H, std::int64_t T, std::int64_t d_h, int L);

}  // namespace hkt
