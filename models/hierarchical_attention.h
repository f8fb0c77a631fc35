// hierarchical_attention.h: the HKT attention sublayer with its parameters
// (docs/hkt-attention.md sections 1-3): trainable causal downsampling,
// per-level query/key projections, shared value/output projections, learned convex
// level weights, "scores" or "outputs" fusion. Standard multi-head attention is the
// same module with levels = 1.
#pragma once

#include <string>
#include <vector>

#include "attention/hkt_attention.h"
#include "enum_names.h"
#include "module.h"
#include "random.h"

namespace hkt {

/// How the levels are combined (docs/hkt-attention.md section 3): a convex combination of
/// the lifted score matrices before one softmax ("scores", the paper's reading), or of the
/// levels' attention outputs ("outputs").
enum class Fusion { Scores, Outputs };
inline constexpr EnumName<Fusion> kFusionNames[] = {{Fusion::Scores, "scores"}, {Fusion::Outputs, "outputs"}};
constexpr std::span<const EnumName<Fusion>> enum_names(Fusion) { return kFusionNames; }

/// Where the level weights alpha come from: softmax of learned logits beta [H, L]
/// ("per_head") or [L] shared by the heads ("per_layer"), or constants ("fixed").
enum class LevelWeights { PerHead, PerLayer, Fixed };
inline constexpr EnumName<LevelWeights> kLevelWeightsNames[] = {
    {LevelWeights::PerHead, "per_head"}, {LevelWeights::PerLayer, "per_layer"}, {LevelWeights::Fixed, "fixed"}};
constexpr std::span<const EnumName<LevelWeights>> enum_names(LevelWeights) { return kLevelWeightsNames; }

/// The stride-2 causal downsampler between levels (docs/hkt-attention.md section 1): one
/// k-tap filter per channel ("depthwise", weight [d, k]) or a channel-mixing convolution
/// ("dense", weight [k, d, d]).
enum class Downsampler { Depthwise, Dense };
inline constexpr EnumName<Downsampler> kDownsamplerNames[] = {{Downsampler::Depthwise, "depthwise"},
                                                              {Downsampler::Dense, "dense"}};
constexpr std::span<const EnumName<Downsampler>> enum_names(Downsampler) { return kDownsamplerNames; }

/// The most levels an HKT attention may have (the fused CUDA kernels are unrolled up to it).
inline constexpr int kMaxLevels = 4;

/// Configuration; every field is checked by HierarchicalAttention's constructor.
struct AttentionConfig {
  std::int64_t d_model = 64;
  std::int64_t n_heads = 4;  ///< d_model must be a multiple; d_h = d_model / n_heads
  int levels = 1;            ///< L in 1..kMaxLevels; level l has ceil(T / 2^l) tokens
  Fusion fusion = Fusion::Scores;
  LevelWeights level_weights = LevelWeights::PerHead;
  std::vector<double> fixed_weights;  ///< L non-negative values summing to 1, for LevelWeights::Fixed
  Downsampler downsampler = Downsampler::Depthwise;
  std::int64_t kernel_size = 2;  ///< k >= 1, taps at fine offsets 0..k-1 back
  bool causal = false;
  double scale = 0.0;                                       ///< score scale; 0 means 1 / sqrt(d_h)
  AttentionPrecision precision = AttentionPrecision::Fp32;  ///< of the fused op on a GPU (HktAttentionOptions)
};

inline constexpr EnumName<AttentionPrecision> kAttentionPrecisionNames[] = {{AttentionPrecision::Fp32, "fp32"},
                                                                            {AttentionPrecision::Bf16, "bf16"}};
constexpr std::span<const EnumName<AttentionPrecision>> enum_names(AttentionPrecision) {
  return kAttentionPrecisionNames;
}

/// Which implementation computes the "scores" fusion core (same meaning, see
/// attention/hkt_attention.h): the fused tiled op, or the composite of engine ops.
enum class AttentionImpl { Fused, Composite };
inline constexpr EnumName<AttentionImpl> kAttentionImplNames[] = {{AttentionImpl::Fused, "fused"},
                                                                  {AttentionImpl::Composite, "composite"}};
constexpr std::span<const EnumName<AttentionImpl>> enum_names(AttentionImpl) { return kAttentionImplNames; }

/// The attention sublayer. Parameters (PyTorch names and layouts, y = x W^T):
///   w_q.{l}.weight, w_k.{l}.weight  [d, d]   for l = 0..L-1 (no bias)
///   w_v.weight, w_o.weight           [d, d]   shared by every level (no bias)
///   downsample.{l}.weight            [d, k] (depthwise) or [k, d, d] (dense: tap r is
///                                    a d x d matrix applied as x W_r^T), l = 1..L-1
///   downsample.{l}.bias              [d]
///   level_logits                     [H, L] (per_head) or [L] (per_layer); absent when
///                                    levels = 1 or weights are fixed
/// Initialisation (seeded by the Generator): projections uniform in
/// [-1/sqrt(d), 1/sqrt(d)] (PyTorch's nn.Linear default); downsampler taps 1/k (an
/// average) and bias 0; level_logits 0 (uniform weights).
class HierarchicalAttention : public Module {
 public:
  /// Throws hkt::Error naming the config field that is out of range.
  HierarchicalAttention(const AttentionConfig& config, Generator& gen, DType dtype = DType::Float32);

  /// x: [B, T, d] (the sublayer input after its LayerNorm); key_mask: [B, T], nonzero =
  /// real token, padding on the right, or undefined. Returns [B, T, d]. A query whose
  /// keys are all masked gets 0 from attention (then W_O maps it to 0).
  Tensor forward(const Tensor& x, const Tensor& key_mask, AttentionImpl impl = AttentionImpl::Fused) const;

  /// The level weights alpha [H, L] in use (softmax of the logits, or the fixed values).
  Tensor level_weights() const;

  /// X^(0..L-1): the input with padded rows zeroed, then each level downsampled from the
  /// one before (docs/hkt-attention.md section 1). Level l is [B, ceil(T / 2^l), d].
  std::vector<Tensor> downsample(const Tensor& x, const Tensor& key_mask) const;

  /// The level score matrices S^(l)_h = scale * Q^(l)_h K^(l)_h^T (docs/hkt-attention.md section 2) of
  /// input x [B, T, d] (padded rows zeroed by key_mask [B, T], as in forward), unmasked
  /// and not lifted: level l is [B, H, T_l, T_l], T_l = ceil(T / 2^l). For inspection
  /// (attention maps, the theory checks); differentiable like any composite of ops.
  std::vector<Tensor> level_scores(const Tensor& x, const Tensor& key_mask) const;

  const AttentionConfig& config() const { return config_; }

 private:
  Tensor heads(const Tensor& x) const;        // [B, T, d] -> [B, H, T, d_h]
  Tensor merge_heads(const Tensor& o) const;  // [B, H, T, d_h] -> [B, T, d]
  AttentionConfig config_;
  DType dtype_;
  std::vector<Tensor> w_q_, w_k_, down_w_, down_b_;
  Tensor w_v_, w_o_, level_logits_, fixed_alpha_;
};

/// Lift of rows: y[b, h, i] = o[b, h, floor(i / 2^level)] for i < T ("outputs" fusion).
Tensor lift_rows(const Tensor& o, int level, std::int64_t T);

/// Coarse key mask of level l: m^(l)[b, t] = m[b, 2^l t] (undefined stays undefined).
Tensor coarse_key_mask(const Tensor& key_mask, int level);

}  // namespace hkt
