#include "classifier.h"

#include <cmath>

#include "ops.h"

namespace hkt {

namespace {

void check_config(const ClassifierConfig& c) {
  auto field = [](const std::string& name, const std::string& why) { return "model config: " + name + " " + why; };
  check((c.vocab_size > 0) != (c.num_features > 0),
        field("vocab_size/num_features", "exactly one must be > 0 (tokens or real-valued features), got " +
                                             std::to_string(c.vocab_size) + " and " + std::to_string(c.num_features)));
  check(c.vocab_size <= 65536, field("vocab_size", "must be at most 65536"));
  check(c.max_len >= 1, field("max_len", "must be >= 1"));
  check(c.num_classes >= 2, field("num_classes", "must be >= 2"));
  check(c.d_model >= 1, field("d_model", "must be >= 1"));
  check(c.n_heads >= 1 && c.d_model % c.n_heads == 0,
        field("n_heads", std::string("(") + std::to_string(c.n_heads) + ") must divide d_model (" +
                             std::to_string(c.d_model) + ")"));
  check(c.n_layers >= 1, field("n_layers", "must be >= 1"));
  check(c.d_ff >= 1, field("d_ff", "must be >= 1"));
  check(c.dropout >= 0 && c.dropout < 1, field("dropout", "must be in [0, 1)"));
  check(c.layer_norm_eps > 0, field("layer_norm_eps", "must be > 0"));
  check(c.positions != Positions::Sinusoidal || c.d_model % 2 == 0,
        field("d_model", "must be even for sinusoidal positions"));
}

// PyTorch's nn.Linear initialisation: weight and bias uniform in +-1/sqrt(fan_in).
Tensor linear_weight(std::int64_t out, std::int64_t in, Generator& gen, DType dtype) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  return Tensor::uniform({out, in}, gen, -bound, bound, dtype);
}
Tensor linear_bias(std::int64_t out, std::int64_t in, Generator& gen, DType dtype) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  return Tensor::uniform({out}, gen, -bound, bound, dtype);
}

}  // namespace

Tensor sinusoidal_positions(std::int64_t n, std::int64_t d, DType dtype) {
  std::vector<double> pe(static_cast<std::size_t>(n * d));
  for (std::int64_t p = 0; p < n; ++p)
    for (std::int64_t i = 0; 2 * i < d; ++i) {
      const double angle =
          static_cast<double>(p) / std::pow(10000.0, static_cast<double>(2 * i) / static_cast<double>(d));
      pe[static_cast<std::size_t>(p * d + 2 * i)] = std::sin(angle);
      if (2 * i + 1 < d) pe[static_cast<std::size_t>(p * d + 2 * i + 1)] = std::cos(angle);
    }
  return Tensor::from_vector(pe, {n, d}, dtype);
}

TransformerBlock::TransformerBlock(const ClassifierConfig& config, const AttentionConfig& attention, Generator& gen,
                                   DType dtype)
    : config_(config) {
  const std::int64_t d = config.d_model, f = config.d_ff;
  auto* ln1 = add_group("ln1");
  ln1_w_ = ln1->add("weight", Tensor::ones({d}, dtype));
  ln1_b_ = ln1->add("bias", Tensor::zeros({d}, dtype));
  attn_ = std::make_unique<HierarchicalAttention>(attention, gen, dtype);
  register_module("attn", attn_.get());
  auto* ln2 = add_group("ln2");
  ln2_w_ = ln2->add("weight", Tensor::ones({d}, dtype));
  ln2_b_ = ln2->add("bias", Tensor::zeros({d}, dtype));
  auto* mlp = add_group("mlp");
  auto* fc1 = mlp->group("fc1");
  fc1_w_ = fc1->add("weight", linear_weight(f, d, gen, dtype));
  fc1_b_ = fc1->add("bias", linear_bias(f, d, gen, dtype));
  auto* fc2 = mlp->group("fc2");
  fc2_w_ = fc2->add("weight", linear_weight(d, f, gen, dtype));
  fc2_b_ = fc2->add("bias", linear_bias(d, f, gen, dtype));
}

Tensor TransformerBlock::forward(const Tensor& x, const Tensor& key_mask, bool training, Generator& gen) const {
  const double eps = config_.layer_norm_eps, p = config_.dropout;
  Tensor a = attn_->forward(layer_norm(x, ln1_w_, ln1_b_, eps), key_mask, config_.impl);
  Tensor h = add(x, dropout(a, p, gen, training));
  Tensor m = linear(gelu(linear(layer_norm(h, ln2_w_, ln2_b_, eps), fc1_w_, fc1_b_)), fc2_w_, fc2_b_);
  return add(h, dropout(m, p, gen, training));
}

Tensor TransformerBlock::attention_input(const Tensor& x) const {
  return layer_norm(x, ln1_w_, ln1_b_, config_.layer_norm_eps);
}

Classifier::Classifier(const ClassifierConfig& config, Generator& gen, DType dtype) : config_(config), dtype_(dtype) {
  check_config(config);
  check(is_floating(dtype), "Classifier: dtype must be float32 or float64");
  const std::int64_t d = config.d_model;
  AttentionConfig attention = config.hkt;
  attention.d_model = d;
  attention.n_heads = config.n_heads;
  if (config.attention == AttentionKind::Mha) {  // standard attention: the same module at one level
    attention.levels = 1;
    attention.level_weights = LevelWeights::PerHead;
    attention.fixed_weights.clear();
  }
  if (config.vocab_size > 0) {
    embedding_ = add_group("embedding")->add("weight", Tensor::normal({config.vocab_size, d}, gen, 0.0, 0.02, dtype));
  } else {
    auto* proj = add_group("input_proj");
    input_w_ = proj->add("weight", linear_weight(d, config.num_features, gen, dtype));
    input_b_ = proj->add("bias", linear_bias(d, config.num_features, gen, dtype));
  }
  const std::int64_t n_positions = config.max_len + (config.pooling == Pooling::Cls ? 1 : 0);
  if (config.positions == Positions::Learned)
    positions_ = add_group("pos_embedding")->add("weight", Tensor::normal({n_positions, d}, gen, 0.0, 0.02, dtype));
  else
    positions_ = register_buffer(sinusoidal_positions(n_positions, d, dtype));  // a constant, not a parameter
  if (config.pooling == Pooling::Cls) cls_ = register_parameter("cls", Tensor::normal({d}, gen, 0.0, 0.02, dtype));
  auto* blocks = add_group("blocks");
  for (std::int64_t i = 0; i < config.n_layers; ++i) {
    blocks_.push_back(std::make_unique<TransformerBlock>(config_, attention, gen, dtype));
    blocks->adopt(std::to_string(i), blocks_.back().get());  // blocks.{i}.attn.w_q.0.weight, ...
  }
  auto* ln_f = add_group("ln_f");
  lnf_w_ = ln_f->add("weight", Tensor::ones({d}, dtype));
  lnf_b_ = ln_f->add("bias", Tensor::zeros({d}, dtype));
  auto* head = add_group("head");
  head_w_ = head->add("weight", linear_weight(config.num_classes, d, gen, dtype));
  head_b_ = head->add("bias", linear_bias(config.num_classes, d, gen, dtype));
}

Tensor Classifier::forward(const Tensor& tokens, const Tensor& features, const Tensor& mask, bool training,
                           Generator& gen) const {
  Tensor key_mask;
  Tensor x = embed(tokens, features, mask, key_mask);
  const std::int64_t B = x.shape()[0], T_all = x.shape()[1], d = config_.d_model;
  for (const auto& block : blocks_) x = block->forward(x, key_mask, training, gen);
  x = layer_norm(x, lnf_w_, lnf_b_, config_.layer_norm_eps);
  Tensor pooled;  // [B, d]
  if (config_.pooling == Pooling::Cls) {
    pooled = reshape(slice(x, 1, 0, 1), {B, d});
  } else {
    // [B, T], 1 on real steps: m_here where the mask is (the host, for batches from the
    // loader), m beside x. The counts below come from m_here, so a GPU model reads no
    // device memory back for them (no wait for the device).
    const Tensor m_here = key_mask.to(dtype_);
    const Tensor m = m_here.to(x.device());
    if (config_.pooling == Pooling::Mean) {
      // Sum over real steps divided by their count, a constant (a sequence with no real
      // step divides by 1 and pools to 0). Padding contributes nothing, so the result
      // does not depend on how much padding follows.
      Tensor total = sum(mul(x, reshape(m, {B, T_all, 1})), {1});          // [B, d]
      std::vector<double> counts = sum(m_here.detach(), {1}).to_vector();  // a constant
      for (auto& c : counts) c = std::max(c, 1.0);
      pooled = div(total, Tensor::from_vector(counts, {B, 1}, dtype_).to(x.device()));
    } else {  // "last": the last real step of each sequence (its length - 1)
      const auto lengths = sum(m_here.detach(), {1}).to_vector();
      std::vector<std::int64_t> index(static_cast<std::size_t>(B * d));
      for (std::int64_t b = 0; b < B; ++b)
        for (std::int64_t c = 0; c < d; ++c)
          index[static_cast<std::size_t>(b * d + c)] =
              std::max<std::int64_t>(0, static_cast<std::int64_t>(lengths[static_cast<std::size_t>(b)]) - 1);
      pooled = reshape(gather(x, 1, Tensor::from_indices(index, {B, 1, d})), {B, d});
    }
  }
  return linear(pooled, head_w_, head_b_);
}

std::vector<Tensor> Classifier::attention_inputs(const Tensor& tokens, const Tensor& features, const Tensor& mask,
                                                 Tensor* key_mask_out) const {
  NoGradGuard no_grad;
  Generator unused(0);  // evaluation mode: no dropout
  Tensor key_mask;
  Tensor x = embed(tokens, features, mask, key_mask);
  std::vector<Tensor> inputs;
  for (const auto& block : blocks_) {
    inputs.push_back(block->attention_input(x));
    x = block->forward(x, key_mask, false, unused);
  }
  if (key_mask_out) *key_mask_out = key_mask;
  return inputs;
}

Tensor Classifier::embed(const Tensor& tokens, const Tensor& features, const Tensor& mask, Tensor& key_mask) const {
  const bool token_mode = config_.vocab_size > 0;
  const Tensor& input = token_mode ? tokens : features;
  check(input.defined(),
        std::string("classifier: this model takes ") + (token_mode ? "tokens" : "features") + ", none given");
  check(input.dim() == (token_mode ? 2 : 3), std::string("classifier: ") +
                                                 (token_mode ? "tokens must be [B, T]" : "features must be [B, T, F]") +
                                                 ", got " + shape_str(input.shape()));
  const std::int64_t B = input.shape()[0], T = input.shape()[1], d = config_.d_model;
  check(T >= 1 && T <= config_.max_len,
        "classifier: sequence length " + std::to_string(T) + " is outside 1.." + std::to_string(config_.max_len));
  check(mask.defined() && mask.shape() == Shape({B, T}),
        "classifier: mask must be [B, T] = " + shape_str({B, T}) +
            (mask.defined() ? ", got " + shape_str(mask.shape()) : ", got none"));
  // Inputs follow the parameters' device (batches are built on the host).
  Tensor x = token_mode ? embedding(embedding_, tokens)
                        : linear(features.to(input_w_.device()), input_w_, input_b_);  // [B, T, d]
  key_mask = mask;
  std::int64_t T_all = T;
  if (config_.pooling == Pooling::Cls) {  // prepend the learned vector as a real token at position 0
    x = concat({add(Tensor::zeros({B, 1, d}, dtype_, x.device()), reshape(cls_, {1, 1, d})), x}, 1);
    key_mask = concat({Tensor::ones({B, 1}, DType::Int64, mask.device()), mask}, 1);
    T_all = T + 1;
  }
  return add(x, slice(positions_, 0, 0, T_all));
}

}  // namespace hkt
