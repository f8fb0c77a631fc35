#include "attention_maps.h"

#include <cmath>
#include <cstdio>

#include "ops.h"

namespace hkt {

namespace {

double round5(double v) {  // 5 significant digits keep the JSON small
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.5g", v);
  return std::strtod(buf, nullptr);
}

// m [H, n, n] -> [h][i][j] for i, j < keep.
config::Json head_maps(const Tensor& m, std::int64_t keep) {
  const auto v = m.to_vector();
  const std::int64_t H = m.shape()[0], n = m.shape()[1];
  keep = std::min(keep, n);
  config::Json out = config::Json::array();
  for (std::int64_t h = 0; h < H; ++h) {
    config::Json rows = config::Json::array();
    for (std::int64_t i = 0; i < keep; ++i) {
      config::Json row = config::Json::array();
      for (std::int64_t j = 0; j < keep; ++j) row.push_back(round5(v[static_cast<std::size_t>((h * n + i) * n + j)]));
      rows.push_back(std::move(row));
    }
    out.push_back(std::move(rows));
  }
  return out;
}

}  // namespace

config::Json attention_maps(const Classifier& model, const data::Dataset& split, std::int64_t crop) {
  check(split.size() > 0, "attention maps: the " + split.split + " split is empty");
  std::int64_t index = 0;
  for (std::int64_t i = 0; i < split.size(); ++i)
    if (split.length(i) >= 24 && split.length(i) <= 128) {
      index = i;
      break;
    }
  const data::Dataset one = split.subset({index}, split.split);
  const data::Batch batch = data::Loader(one, 1, false, 0, true, model.dtype()).batch(0, 0);
  NoGradGuard no_grad;
  Tensor key_mask;
  const Tensor x = model.attention_inputs(batch.tokens, batch.features, batch.mask, &key_mask)[0];  // [1, T, d]
  const HierarchicalAttention& attn = model.blocks()[0]->attention();
  const auto scores = attn.level_scores(x, key_mask);  // l: [1, H, T_l, T_l]
  const Tensor alpha = attn.level_weights();           // [H, L]
  const std::int64_t H = alpha.shape()[0], T = x.shape()[1];
  const int L = static_cast<int>(scores.size());

  // A causal model never attends to later keys: mask j > i (coarse: t' > t) as it does.
  auto causal_softmax = [&](const Tensor& s) {  // s [H, n, n]
    if (!attn.config().causal) return softmax(s);
    const std::int64_t n = s.shape()[1];
    std::vector<double> m(static_cast<std::size_t>(n * n), 0.0);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i + 1; j < n; ++j) m[static_cast<std::size_t>(i * n + j)] = -INFINITY;
    return softmax(s, Tensor::from_vector(m, {1, n, n}, s.dtype()));
  };
  config::Json levels = config::Json::array();
  Tensor fused;  // sum_l alpha_l Lift_l(S^(l)), [H, T, T]
  for (int l = 0; l < L; ++l) {
    const Tensor s = reshape(scores[static_cast<std::size_t>(l)], {H, scores[static_cast<std::size_t>(l)].shape()[2],
                                                                   scores[static_cast<std::size_t>(l)].shape()[3]});
    const std::int64_t keep = (crop + (std::int64_t{1} << l) - 1) >> l;  // ceil(crop / 2^l)
    levels.push_back(head_maps(causal_softmax(s), keep));
    // Lift_l(S)[i, j] = S[i >> l, j >> l]: repeat rows and columns 2^l times, cut to T.
    const std::int64_t r = std::int64_t{1} << l;
    const Tensor lifted = slice(slice(repeat_interleave(repeat_interleave(s, r, 1), r, 2), 1, 0, T), 2, 0, T);
    const Tensor term = mul(lifted, reshape(slice(alpha, 1, l, l + 1), {H, 1, 1}));
    fused = fused.defined() ? add(fused, term) : term;
  }
  const auto a = alpha.to_vector();
  config::Json alpha_json = config::Json::array();
  for (std::int64_t h = 0; h < H; ++h) {
    config::Json row = config::Json::array();
    for (int l = 0; l < L; ++l) row.push_back(round5(a[static_cast<std::size_t>(h * L + l)]));
    alpha_json.push_back(row);
  }
  const bool scores_fusion = attn.config().fusion == Fusion::Scores;
  return {{"example", index},
          {"length", split.length(index)},
          {"label", split.labels[static_cast<std::size_t>(index)]},
          {"crop", crop},
          {"levels", L},
          {"alpha", alpha_json},
          {"level", levels},
          {"fused", scores_fusion ? head_maps(causal_softmax(fused), crop) : config::Json()}};
}

}  // namespace hkt
