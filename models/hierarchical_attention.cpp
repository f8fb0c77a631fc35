#include "hierarchical_attention.h"

#include "attention/fused_cuda.h"

#include <cmath>

#include "ops.h"

namespace hkt {

namespace {

void check_config(const AttentionConfig& c) {
  check(c.d_model >= 1 && c.n_heads >= 1 && c.d_model % c.n_heads == 0,
        "attention config: d_model (" + std::to_string(c.d_model) + ") must be a positive multiple of n_heads (" +
            std::to_string(c.n_heads) + ")");
  check(c.levels >= 1 && c.levels <= kMaxLevels,
        "attention config: levels must be in 1.." + std::to_string(kMaxLevels) + ", got " + std::to_string(c.levels));
  if (c.level_weights == LevelWeights::Fixed) {
    check(static_cast<int>(c.fixed_weights.size()) == c.levels,
          "attention config: fixed_weights needs " + std::to_string(c.levels) + " values (one per level), got " +
              std::to_string(c.fixed_weights.size()));
    double total = 0;
    for (double w : c.fixed_weights) {
      check(w >= 0 && std::isfinite(w), "attention config: fixed_weights must be non-negative");
      total += w;
    }
    check(std::fabs(total - 1.0) < 1e-9, "attention config: fixed_weights must sum to 1, got " + std::to_string(total));
  }
  check(c.kernel_size >= 1, "attention config: kernel_size must be >= 1, got " + std::to_string(c.kernel_size));
  check(c.scale >= 0 && std::isfinite(c.scale), "attention config: scale must be >= 0 (0 = 1/sqrt(d_h))");
}

// Dense causal downsampling: y[t] = b + sum_r x[2t - r] W_r^T, x[p < 0] = 0.
Tensor dense_downsample(const Tensor& x, const Tensor& w, const Tensor& b) {
  const std::int64_t B = x.shape()[0], T = x.shape()[1], d = x.shape()[2], k = w.shape()[0];
  const std::int64_t T_out = (T + 1) / 2;
  Tensor y;
  for (std::int64_t r = 0; r < k; ++r) {
    // shifted[p] = x[p - r]: r zero rows in front, cut to 2 T_out rows (pad at the end
    // when T is odd), then keep the even rows p = 2t.
    Tensor front = Tensor::zeros({B, r, d}, x.dtype(), x.device());
    Tensor shifted = concat({front, x, Tensor::zeros({B, 2 * T_out, d}, x.dtype(), x.device())}, 1);
    shifted = slice(shifted, 1, 0, 2 * T_out);
    Tensor even = reshape(slice(reshape(shifted, {B, T_out, 2, d}), 2, 0, 1), {B, T_out, d});
    Tensor wr = reshape(slice(w, 0, r, r + 1), {d, d});
    Tensor term = linear(even, wr);
    y = y.defined() ? add(y, term) : term;
  }
  return add(y, b);
}

}  // namespace

Tensor lift_rows(const Tensor& o, int level, std::int64_t T) {
  if (level == 0) return o;
  return slice(repeat_interleave(o, std::int64_t{1} << level, 2), 2, 0, T);
}

Tensor coarse_key_mask(const Tensor& key_mask, int level) {
  if (!key_mask.defined() || level == 0) return key_mask;
  const std::int64_t B = key_mask.shape()[0], T = key_mask.shape()[1], step = std::int64_t{1} << level;
  const std::int64_t Tl = (T + step - 1) / step;
  const auto m = key_mask.to_vector();
  std::vector<std::int64_t> out(static_cast<std::size_t>(B * Tl));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < Tl; ++t)
      out[static_cast<std::size_t>(b * Tl + t)] = m[static_cast<std::size_t>(b * T + t * step)] != 0.0;
  return Tensor::from_indices(out, {B, Tl});
}

HierarchicalAttention::HierarchicalAttention(const AttentionConfig& config, Generator& gen, DType dtype)
    : config_(config), dtype_(dtype) {
  check_config(config);
  check(is_floating(dtype), "HierarchicalAttention: dtype must be float32 or float64");
  const std::int64_t d = config.d_model, H = config.n_heads, k = config.kernel_size;
  const int L = config.levels;
  const double bound = 1.0 / std::sqrt(static_cast<double>(d));
  auto projection = [&] { return Tensor::uniform({d, d}, gen, -bound, bound, dtype); };
  auto holder = [&](const std::string& name) { return add_group(name); };
  auto* wq = holder("w_q");
  auto* wk = holder("w_k");
  for (int l = 0; l < L; ++l) {
    w_q_.push_back(wq->group(std::to_string(l))->add("weight", projection()));
    w_k_.push_back(wk->group(std::to_string(l))->add("weight", projection()));
  }
  w_v_ = holder("w_v")->add("weight", projection());
  w_o_ = holder("w_o")->add("weight", projection());
  if (L > 1) {
    auto* down = holder("downsample");
    for (int l = 1; l < L; ++l) {
      auto* dl = down->group(std::to_string(l));
      if (config.downsampler == Downsampler::Depthwise) {
        down_w_.push_back(dl->add("weight", Tensor::full({d, k}, 1.0 / static_cast<double>(k), dtype)));
      } else {
        // Each tap W_r = I / k: the dense downsampler starts as the same average.
        std::vector<double> eye(static_cast<std::size_t>(k * d * d), 0.0);
        for (std::int64_t r = 0; r < k; ++r)
          for (std::int64_t i = 0; i < d; ++i)
            eye[static_cast<std::size_t>((r * d + i) * d + i)] = 1.0 / static_cast<double>(k);
        down_w_.push_back(dl->add("weight", Tensor::from_vector(eye, {k, d, d}, dtype)));
      }
      down_b_.push_back(dl->add("bias", Tensor::zeros({d}, dtype)));
    }
  }
  if (config.level_weights == LevelWeights::Fixed) {
    std::vector<double> a;
    for (std::int64_t h = 0; h < H; ++h) a.insert(a.end(), config.fixed_weights.begin(), config.fixed_weights.end());
    fixed_alpha_ = register_buffer(Tensor::from_vector(a, {H, L}, dtype));
  } else if (L > 1) {
    level_logits_ =
        register_parameter("level_logits", config.level_weights == LevelWeights::PerHead ? Tensor::zeros({H, L}, dtype)
                                                                                         : Tensor::zeros({L}, dtype));
  }
}

Tensor HierarchicalAttention::level_weights() const {
  const std::int64_t H = config_.n_heads;
  const int L = config_.levels;
  if (fixed_alpha_.defined()) return fixed_alpha_;
  if (!level_logits_.defined()) return Tensor::ones({H, 1}, dtype_, w_o_.device());  // L = 1: the single level
  if (config_.level_weights == LevelWeights::PerHead) return softmax(level_logits_);
  // per_layer: one softmax shared by every head, broadcast to [H, L].
  return mul(reshape(softmax(level_logits_), {1, L}), Tensor::ones({H, 1}, dtype_, w_o_.device()));
}

std::vector<Tensor> HierarchicalAttention::downsample(const Tensor& x, const Tensor& key_mask) const {
  Tensor x0 = x;
  if (key_mask.defined()) {  // X^(0) = X with padded rows set to 0
    const std::int64_t B = x.shape()[0], T = x.shape()[1];
    const auto m = key_mask.to_vector();
    std::vector<std::int64_t> pad(m.size());
    for (std::size_t i = 0; i < m.size(); ++i) pad[i] = m[i] == 0.0;
    x0 = masked_fill(x, Tensor::from_indices(pad, {B, T, 1}), 0.0);
  }
  std::vector<Tensor> levels{x0};
  for (int l = 1; l < config_.levels; ++l) {
    const auto i = static_cast<std::size_t>(l - 1);
    const Tensor& prev = levels.back();
    levels.push_back(config_.downsampler == Downsampler::Depthwise ? causal_conv1d(prev, down_w_[i], down_b_[i], 2)
                                                                   : dense_downsample(prev, down_w_[i], down_b_[i]));
  }
  return levels;
}

std::vector<Tensor> HierarchicalAttention::level_scores(const Tensor& x, const Tensor& key_mask) const {
  const auto xs = downsample(x, key_mask);
  const double scale =
      config_.scale > 0 ? config_.scale : 1.0 / std::sqrt(static_cast<double>(config_.d_model / config_.n_heads));
  std::vector<Tensor> scores;
  for (std::size_t l = 0; l < xs.size(); ++l) {
    const Tensor q = heads(linear(xs[l], w_q_[l])), k = heads(linear(xs[l], w_k_[l]));  // [B, H, T_l, d_h]
    scores.push_back(mul(matmul(q, transpose(k, 2, 3)), scale));                        // [B, H, T_l, T_l]
  }
  return scores;
}

Tensor HierarchicalAttention::heads(const Tensor& x) const {
  const std::int64_t B = x.shape()[0], T = x.shape()[1], H = config_.n_heads;
  return permute(reshape(x, {B, T, H, config_.d_model / H}), {0, 2, 1, 3});
}

Tensor HierarchicalAttention::merge_heads(const Tensor& o) const {
  const std::int64_t B = o.shape()[0], T = o.shape()[2];
  return reshape(permute(o, {0, 2, 1, 3}), {B, T, config_.d_model});
}

namespace {

// True when key_mask is defined, on the host and every entry is nonzero (no padded key).
bool every_key_real(const Tensor& key_mask) {
  if (!key_mask.defined() || key_mask.device() != Device::CPU) return false;
  for (double m : key_mask.to_vector())
    if (m == 0.0) return false;
  return true;
}

}  // namespace

Tensor HierarchicalAttention::forward(const Tensor& x, const Tensor& key_mask_in, AttentionImpl impl) const {
  check(x.defined() && x.dim() == 3 && x.shape()[2] == config_.d_model,
        "attention: input must be [B, T, d_model = " + std::to_string(config_.d_model) + "], got " +
            (x.defined() ? shape_str(x.shape()) : "undefined"));
  check(x.dtype() == dtype_,
        "attention: input dtype " + dtype_name(x.dtype()) + " differs from the parameters' " + dtype_name(dtype_));
  const std::int64_t T = x.shape()[1];
  check(T >= 1, "attention: T must be >= 1");
  if (key_mask_in.defined())
    check(key_mask_in.shape() == Shape({x.shape()[0], T}),
          "attention: key_mask must be [B, T] = " + shape_str({x.shape()[0], T}) + ", got " +
              shape_str(key_mask_in.shape()));
  // A mask with no padded key changes no value; without it the passes that apply it (the
  // downsampler's masked_fill, the coarse masks, the fused op's mask bytes) are skipped.
  const Tensor key_mask = every_key_real(key_mask_in) ? Tensor() : key_mask_in;
  const int L = config_.levels;
  const auto xs = downsample(x, key_mask);
  std::vector<Tensor> q, k;
  for (int l = 0; l < L; ++l) {
    const auto li = static_cast<std::size_t>(l);
    q.push_back(heads(linear(xs[li], w_q_[li])));
    k.push_back(heads(linear(xs[li], w_k_[li])));
  }
  const Tensor alpha = level_weights();
  HktAttentionOptions options;
  options.causal = config_.causal;
  options.scale = config_.scale;
  options.precision = config_.precision;
  // On the GPU the fused kernels cover L <= 4 and d_h <= 128; beyond that the
  // composite op runs (engine ops, all with CUDA kernels).
  const std::int64_t d_h = config_.d_model / config_.n_heads;
  const bool fused =
      impl == AttentionImpl::Fused && (x.device() == Device::CPU || attention::fused_cuda_supports(L, d_h));
  // bf16 lives in the fused kernels: asked for where the composite would run instead, it
  // would silently be float32, so it is refused.
  check(fused || x.device() == Device::CPU || impl == AttentionImpl::Composite ||
            config_.precision != AttentionPrecision::Bf16 || x.dtype() != DType::Float32,
        "attention: model.attention_precision = \"bf16\" needs the fused CUDA kernels, which take L <= 4 levels and "
        "d_h <= 128, got d_h = " +
            std::to_string(d_h) + " (d_model / n_heads); use \"fp32\"");
  auto core = [&](const std::vector<Tensor>& qs, const std::vector<Tensor>& ks, const Tensor& v, const Tensor& a,
                  const Tensor& mask) {
    return fused ? hkt_attention_fused(qs, ks, v, a, mask, options)
                 : hkt_attention_composite(qs, ks, v, a, mask, options);
  };
  Tensor o;  // [B, H, T, d_h]
  if (config_.fusion == Fusion::Scores) {
    o = core(q, k, heads(linear(xs[0], w_v_)), alpha, key_mask);
  } else {
    // "outputs": each level attends at its own resolution (the L = 1 core), its rows are
    // lifted to T, and the levels are mixed with alpha.
    const std::int64_t H = config_.n_heads;
    const Tensor one = Tensor::ones({H, 1}, dtype_, w_o_.device());
    for (int l = 0; l < L; ++l) {
      const auto li = static_cast<std::size_t>(l);
      Tensor ol = core({q[li]}, {k[li]}, heads(linear(xs[li], w_v_)), one, coarse_key_mask(key_mask, l));
      Tensor term = mul(lift_rows(ol, l, T), reshape(slice(alpha, 1, l, l + 1), {1, H, 1, 1}));
      o = o.defined() ? add(o, term) : term;
    }
  }
  return linear(merge_heads(o), w_o_);
}

}  // namespace hkt
