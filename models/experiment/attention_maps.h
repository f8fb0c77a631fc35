// attention_maps.h: the per-level attention maps of one example, for plots
// (docs/experiments.md, "Outputs") and for reading what each level attends to.
#pragma once

#include "classifier.h"
#include "config.h"
#include "dataset.h"

namespace hkt {

/// Attention maps of one example of `split` through `model`'s first block, every head.
/// The example is the first with 24..128 steps (ListOps, IMDB), else example 0 (images:
/// every example has the same length). It runs alone (batch of 1, no padding), so
/// per level l (docs/hkt-attention.md section 2):
///   level[l][h] = softmax_j(S^(l)_h)          T_l x T_l, each row sums to 1
/// and, for "scores" fusion,
///   fused[h]    = softmax_j(sum_l alpha_{h,l} Lift_l(S^(l)_h))   T x T
/// (for "outputs" fusion "fused" is null: there is no single map). A causal model's maps
/// mask keys after the query (j > i, at every level), as its attention does. Maps are cropped to
/// their first ceil(crop / 2^l) rows and columns (crop = 128 fine positions; a cropped
/// row sums to at most 1). Returns {"example", "length", "label", "crop", "levels": L,
/// "alpha": [H][L], "level": [l][h][i][j], "fused": [h][i][j] | null}, values rounded
/// to 5 significant digits. Throws hkt::Error for an empty split.
config::Json attention_maps(const Classifier& model, const data::Dataset& split, std::int64_t crop = 128);

}  // namespace hkt
