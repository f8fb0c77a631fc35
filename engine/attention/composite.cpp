// composite.cpp: hierarchical attention ("scores" fusion) composed of engine ops, the
// definition every faster path is tested against; plus the argument checks and the
// FLOP count shared by both implementations.
#include <algorithm>
#include <cmath>
#include <limits>

#include "../ops.h"
#include "hkt_attention.h"

namespace hkt {

double check_hkt_attention_args(const char* op, const std::vector<Tensor>& q, const std::vector<Tensor>& k,
                                const Tensor& v, const Tensor& alpha, const Tensor& key_mask,
                                const HktAttentionOptions& options) {
  const std::string o(op);
  check(!q.empty(), o + ": no levels given (q is empty)");
  check(q.size() == k.size(),
        o + ": " + std::to_string(q.size()) + " query levels but " + std::to_string(k.size()) + " key levels");
  check(v.defined() && v.dim() == 4,
        o + ": v must be [B, H, T, d_h], got " + (v.defined() ? shape_str(v.shape()) : "undefined"));
  const std::int64_t B = v.shape()[0], H = v.shape()[1], T = v.shape()[2], dh = v.shape()[3];
  const int L = static_cast<int>(q.size());
  check(T >= 1, o + ": T must be >= 1, got v of shape " + shape_str(v.shape()));
  check(is_floating(v.dtype()), o + ": v must be float32 or float64, got " + dtype_name(v.dtype()));
  for (int l = 0; l < L; ++l) {
    const std::int64_t Tl = (T + (std::int64_t{1} << l) - 1) >> l;
    const Shape want{B, H, Tl, dh};
    for (const auto* t : {&q[static_cast<std::size_t>(l)], &k[static_cast<std::size_t>(l)]}) {
      const char* name = t == &q[static_cast<std::size_t>(l)] ? "q" : "k";
      check(t->defined(), o + ": " + name + "[" + std::to_string(l) + "] is undefined");
      check(t->shape() == want, o + ": " + name + "[" + std::to_string(l) + "] has shape " + shape_str(t->shape()) +
                                    ", expected " + shape_str(want) + " (T_" + std::to_string(l) + " = ceil(" +
                                    std::to_string(T) + " / 2^" + std::to_string(l) + "))");
      check(t->dtype() == v.dtype() && t->device() == v.device(),
            o + ": " + name + "[" + std::to_string(l) + "] must have v's dtype and device");
    }
  }
  check(alpha.defined() && alpha.shape() == Shape({H, L}),
        o + ": alpha must be [H, L] = " + shape_str({H, L}) + ", got " +
            (alpha.defined() ? shape_str(alpha.shape()) : "undefined"));
  check(alpha.dtype() == v.dtype() && alpha.device() == v.device(),
        o + ": alpha must have v's dtype " + dtype_name(v.dtype()) + " and device " + device_name(v.device()));
  if (key_mask.defined())
    check(key_mask.shape() == Shape({B, T}) && key_mask.device() == Device::CPU,
          o + ": key_mask must be [B, T] = " + shape_str({B, T}) + " on the cpu, got " + shape_str(key_mask.shape()));
  if (key_mask.defined()) {
    const auto keep = key_mask.to_vector();
    for (std::size_t i = 0; i < keep.size(); ++i)
      check(keep[i] == 0.0 || keep[i] == 1.0, o + ": key_mask must hold 0 (padding) or 1 (a real key), got " +
                                                  std::to_string(keep[i]) + " at [" +
                                                  std::to_string(i / static_cast<std::size_t>(T)) + ", " +
                                                  std::to_string(i % static_cast<std::size_t>(T)) + "]");
  }
  check(options.block_q >= 1 && options.block_k >= 1, o + ": block sizes must be >= 1");
  check(std::isfinite(options.scale), o + ": scale must be finite, got " + std::to_string(options.scale));
  return options.scale != 0.0 ? options.scale : 1.0 / std::sqrt(static_cast<double>(dh));
}

MaskedKeys zero_masked_keys(const std::vector<Tensor>& k, const Tensor& v, const Tensor& key_mask) {
  MaskedKeys out{k, v};
  if (!key_mask.defined()) return out;
  const auto keep = key_mask.to_vector();
  const std::int64_t B = v.shape()[0], T = v.shape()[2];
  if (std::all_of(keep.begin(), keep.end(), [](double x) { return x != 0.0; })) return out;
  for (std::size_t l = 0; l < k.size(); ++l) {
    const std::int64_t Tl = k[l].shape()[2];
    std::vector<double> dead(static_cast<std::size_t>(B * Tl), 1.0);  // 1: every fine key under the row is masked
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t j = 0; j < T; ++j)
        if (keep[static_cast<std::size_t>(b * T + j)] != 0.0) dead[static_cast<std::size_t>(b * Tl + (j >> l))] = 0.0;
    const Tensor mask = Tensor::from_vector(dead, {B, 1, Tl, 1}, DType::Float64).to(v.device());
    out.k[l] = masked_fill(k[l], mask, 0.0);
    if (l == 0) out.v = masked_fill(v, mask, 0.0);
  }
  return out;
}

namespace {

// The additive mask [B, 1, T, T] of 0 (attend) and -inf (masked): key j is masked where
// key_mask[b, j] = 0, or where j > i when causal. A constant: it needs no gradient.
Tensor additive_mask(const Tensor& key_mask, std::int64_t B, std::int64_t T, bool causal, DType dtype) {
  std::vector<double> m(static_cast<std::size_t>(B * T * T), 0.0);
  const std::vector<double> keep =
      key_mask.defined() ? key_mask.to_vector() : std::vector<double>(static_cast<std::size_t>(B * T), 1.0);
  const double inf = std::numeric_limits<double>::infinity();
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < T; ++i)
      for (std::int64_t j = 0; j < T; ++j)
        if (keep[static_cast<std::size_t>(b * T + j)] == 0.0 || (causal && j > i))
          m[static_cast<std::size_t>((b * T + i) * T + j)] = -inf;
  return Tensor::from_vector(m, {B, 1, T, T}, dtype);
}

// Lift_l(S)[i, j] = S[floor(i / 2^l), floor(j / 2^l)] for i, j < T: repeat each coarse
// row and column 2^l times, then cut the last (partial) block to T.
Tensor lift(const Tensor& s, int level, std::int64_t T) {
  if (level == 0) return s;
  const std::int64_t r = std::int64_t{1} << level;
  Tensor rows = slice(repeat_interleave(s, r, -2), -2, 0, T);
  return slice(repeat_interleave(rows, r, -1), -1, 0, T);
}

}  // namespace

Tensor hkt_attention_composite(const std::vector<Tensor>& q, const std::vector<Tensor>& k_in, const Tensor& v_in,
                               const Tensor& alpha, const Tensor& key_mask, const HktAttentionOptions& options) {
  const double scale = check_hkt_attention_args("hkt_attention_composite", q, k_in, v_in, alpha, key_mask, options);
  const auto [k, v] = zero_masked_keys(k_in, v_in, key_mask);  // a NaN in a masked key reaches nothing
  const std::int64_t B = v.shape()[0], H = v.shape()[1], T = v.shape()[2];
  const int L = static_cast<int>(q.size());
  Tensor s;  // [B, H, T, T]
  for (int l = 0; l < L; ++l) {
    const auto li = static_cast<std::size_t>(l);
    Tensor level_scores = mul(matmul(q[li], transpose(k[li], -1, -2)), scale);  // [B, H, T_l, T_l]
    Tensor weight = reshape(slice(alpha, 1, l, l + 1), {1, H, 1, 1});           // alpha[:, l]
    Tensor term = mul(lift(level_scores, l, T), weight);
    s = s.defined() ? add(s, term) : term;
  }
  Tensor p =
      softmax(s, additive_mask(key_mask, B, T, options.causal, v.dtype()).to(v.device()));  // fully masked rows: 0
  return matmul(p, v);
}

AttentionFlops hkt_attention_flops(std::int64_t B, std::int64_t H, std::int64_t T, std::int64_t d_h, int L) {
  AttentionFlops f;
  for (int l = 0; l < L; ++l) {
    const double Tl = static_cast<double>((T + (std::int64_t{1} << l) - 1) >> l);
    f.score_flops += 2.0 * static_cast<double>(B * H) * Tl * Tl * static_cast<double>(d_h);
  }
  const double pv = 2.0 * static_cast<double>(B * H) * static_cast<double>(T) * static_cast<double>(T) *
                    static_cast<double>(d_h);  // P V, and each of dP and dV
  f.total_flops = f.score_flops + pv;
  f.backward_flops = 3.0 * f.score_flops + 2.0 * pv;
  return f;
}

}  // namespace hkt
