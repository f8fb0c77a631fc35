// classifier.h: the sequence classifier of the paper's experiments: an input map
// (token embedding or a linear map of real-valued features), positions, pre-LayerNorm
// transformer blocks with "mha" or "hkt" attention, a final LayerNorm, pooling and a
// linear head. Parameter names and layouts follow PyTorch (named_parameters() lists them,
// e.g. "blocks.0.attn.w_q.0.weight" [d, d]; the constructors in classifier.cpp and
// hierarchical_attention.cpp make them).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hierarchical_attention.h"
#include "module.h"
#include "random.h"

namespace hkt {

/// Position information added to the input map: a learned table [max_len, d] ("learned")
/// or the fixed sinusoids of Vaswani et al. 2017 ("sinusoidal").
enum class Positions { Learned, Sinusoidal };
inline constexpr EnumName<Positions> kPositionsNames[] = {{Positions::Learned, "learned"},
                                                          {Positions::Sinusoidal, "sinusoidal"}};
constexpr std::span<const EnumName<Positions>> enum_names(Positions) { return kPositionsNames; }

/// How the final token states [B, T, d] become one vector per sequence: the mean over real
/// tokens ("mean"), a learned vector prepended as token 0 ("cls"), or the last real token
/// ("last").
enum class Pooling { Mean, Cls, Last };
inline constexpr EnumName<Pooling> kPoolingNames[] = {
    {Pooling::Mean, "mean"}, {Pooling::Cls, "cls"}, {Pooling::Last, "last"}};
constexpr std::span<const EnumName<Pooling>> enum_names(Pooling) { return kPoolingNames; }

/// The blocks' attention: standard multi-head attention ("mha", the HKT module with one
/// level) or hierarchical attention with the levels of ClassifierConfig::hkt ("hkt").
enum class AttentionKind { Mha, Hkt };
inline constexpr EnumName<AttentionKind> kAttentionKindNames[] = {{AttentionKind::Mha, "mha"},
                                                                  {AttentionKind::Hkt, "hkt"}};
constexpr std::span<const EnumName<AttentionKind>> enum_names(AttentionKind) { return kAttentionKindNames; }

/// Every field is checked by the Classifier's constructor (errors name the field).
struct ClassifierConfig {
  // Input: vocab_size > 0 for tokens, or num_features > 0 for real-valued steps.
  std::int64_t vocab_size = 0;
  std::int64_t num_features = 0;
  std::int64_t max_len = 512;  ///< longest sequence (positions table size)
  std::int64_t num_classes = 2;
  std::int64_t d_model = 64;
  std::int64_t n_heads = 4;
  std::int64_t n_layers = 2;
  std::int64_t d_ff = 128;  ///< MLP hidden width
  double dropout = 0.0;     ///< after attention and after the MLP (residual branches)
  Positions positions = Positions::Learned;
  Pooling pooling = Pooling::Mean;
  double layer_norm_eps = 1e-5;
  AttentionKind attention = AttentionKind::Hkt;
  AttentionConfig hkt;  ///< levels, fusion, level weights, downsampler, causal; d_model and n_heads are copied in
  AttentionImpl impl = AttentionImpl::Fused;
};

/// x + Dropout(Attention(LN(x))), then x + Dropout(MLP(LN(x))), MLP = Linear -> GELU
/// (erf form) -> Linear. Parameters: ln1.{weight,bias}, attn.*, ln2.{weight,bias},
/// mlp.fc1.{weight [d_ff, d], bias [d_ff]}, mlp.fc2.{weight [d, d_ff], bias [d]}.
class TransformerBlock : public Module {
 public:
  TransformerBlock(const ClassifierConfig& config, const AttentionConfig& attention, Generator& gen, DType dtype);
  /// x [B, T, d], key_mask [B, T] or undefined; dropout draws from gen when training.
  Tensor forward(const Tensor& x, const Tensor& key_mask, bool training, Generator& gen) const;
  /// LN1(x): what the attention sublayer of this block sees, [B, T, d].
  Tensor attention_input(const Tensor& x) const;
  const HierarchicalAttention& attention() const { return *attn_; }

 private:
  const ClassifierConfig& config_;
  std::unique_ptr<HierarchicalAttention> attn_;
  Tensor ln1_w_, ln1_b_, ln2_w_, ln2_b_, fc1_w_, fc1_b_, fc2_w_, fc2_b_;
};

class Classifier : public Module {
 public:
  /// Initialisation (seeded by gen): linear weights and biases uniform in +-1/sqrt(fan_in)
  /// (PyTorch's nn.Linear), embeddings and learned positions normal(0, 0.02) (as GPT-2),
  /// the CLS vector normal(0, 0.02), LayerNorm weight 1 and bias 0, attention as
  /// HierarchicalAttention documents. Throws hkt::Error naming a config field out of range.
  Classifier(const ClassifierConfig& config, Generator& gen, DType dtype = DType::Float32);

  /// Class logits [B, num_classes].
  /// tokens: int64 [B, T] (token mode) or features: float [B, T, F] (feature mode);
  /// mask: int64 [B, T], 1 on real steps (padding on the right); T <= max_len.
  /// training turns dropout on (drawing from gen). The logits of an example do not depend
  /// on how much padding follows it (mean pooling and attention ignore padded steps).
  Tensor forward(const Tensor& tokens, const Tensor& features, const Tensor& mask, bool training, Generator& gen) const;

  /// The input of every block's attention sublayer (after its LayerNorm), one [B, T', d]
  /// tensor per block (T' = T, or T + 1 with "cls" pooling), and the key mask [B, T'] it
  /// uses, from an evaluation-mode forward (no dropout). Arguments as forward. For
  /// inspection: attention maps and the theory checks read the level scores from these.
  std::vector<Tensor> attention_inputs(const Tensor& tokens, const Tensor& features, const Tensor& mask,
                                       Tensor* key_mask = nullptr) const;

  const ClassifierConfig& config() const { return config_; }
  const std::vector<std::unique_ptr<TransformerBlock>>& blocks() const { return blocks_; }
  DType dtype() const { return dtype_; }

 private:
  ClassifierConfig config_;
  DType dtype_;
  std::vector<std::unique_ptr<TransformerBlock>> blocks_;
  // The input map, positions and (for "cls") the prepended vector: x [B, T', d] and its key mask.
  Tensor embed(const Tensor& tokens, const Tensor& features, const Tensor& mask, Tensor& key_mask) const;
  Tensor embedding_, input_w_, input_b_, positions_, cls_, lnf_w_, lnf_b_, head_w_, head_b_;
};

/// The sinusoidal position table [n, d] of Vaswani et al. (2017), float64 values:
/// pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(p / 10000^(2i/d)).
Tensor sinusoidal_positions(std::int64_t n, std::int64_t d, DType dtype);

}  // namespace hkt
