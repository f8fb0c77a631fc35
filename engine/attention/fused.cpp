// fused.cpp: the fused hierarchical attention op on the CPU, tiled exactly as the
// kernel algorithm of ../shared/design/hkt-attention.md section 6. It reads as the CPU
// mirror of the CUDA kernel: one (batch, head) per task (a thread block there), query
// tiles of block_q rows, key tiles of block_k columns, both multiples of 2^(L-1) so
// that a tile covers whole coarse rows and columns at every level.
//
// Forward, per query tile I, over key tiles J:
//   s = alpha_0 scale Q0[I] K0[J]^T; for l >= 1 the coarse tile alpha_l scale
//   Q_l[I/2^l] K_l[J/2^l]^T is added to each 2^l x 2^l block of s; mask; online softmax
//   (running max m and sum l); acc += p V[J]. Store O = acc / l and LSE = m + log l.
// Backward (FlashAttention-2): D_i = rowsum(dO_i O_i); per key tile J, per query tile I:
//   recompute s, p = exp(s - LSE); dV[J] += p^T dO[I]; dp = dO[I] V[J]^T;
//   ds = p (dp - D); level 0: dQ0[I] += alpha_0 scale ds K0[J], dK0[J] += alpha_0 scale
//   ds^T Q0[I]; level l: ds_l = block sums of ds, dQ_l += alpha_l scale ds_l K_l,
//   dK_l += alpha_l scale ds_l^T Q_l; dalpha_l += sum ds_l (.) scale Q_l K_l^T.
// Memory: the tiles, K^T and V^T of one head per thread, O and the LSE: O(T d_h).
#include <algorithm>
#include <cmath>
#include <limits>

#include "../autograd.h"
#include "../ops/cpu_kernels.h"
#include "hkt_attention.h"

namespace hkt {

namespace {

// Everything the kernels need about one call, independent of the element type.
struct Geometry {
  std::int64_t B = 0, H = 0, T = 0, dh = 0;
  int L = 1;
  std::vector<std::int64_t> Tl;  // T_l = ceil(T / 2^l)
  std::int64_t block_q = 64, block_k = 64;
  bool causal = false;
  double scale = 1.0;
};

// One (batch, head) of every input, as row-major matrices.
template <class T>
struct Head {
  std::vector<const T*> q, k;    // level l: [T_l, d_h]
  const T* v = nullptr;          // [T, d_h]
  const T* alpha = nullptr;      // [L], this head's level weights
  const unsigned char* keep = nullptr;  // [T], 1 = real key; nullptr = all real
  std::vector<std::vector<T>> kt;  // level l: K_l transposed, [d_h, T_l]
};

// Rounds n up to a multiple of m.
std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

// One score tile: rows i0..i1-1, columns j0..j1-1 (at most bq x bk).
//   raw[l]: the coarse tile scale Q_l K_l^T (needed again for dalpha), [rows_l x cols_l]
//   s:      the fused, masked tile, [bq x bk] row-major with row stride bk
template <class T>
struct ScoreTile {
  std::vector<std::vector<T>> raw;
  std::vector<std::int64_t> r0, rows, c0, cols;  // coarse origin and extent per level
  std::vector<T> s;
};

template <class T>
void compute_scores(const Geometry& g, const Head<T>& hd, std::int64_t i0, std::int64_t i1, std::int64_t j0,
                    std::int64_t j1, ScoreTile<T>& tile) {
  const std::int64_t bk = g.block_k, dh = g.dh;
  const T scale = static_cast<T>(g.scale);
  for (int l = 0; l < g.L; ++l) {
    const auto li = static_cast<std::size_t>(l);
    const std::int64_t r0 = i0 >> l, r1 = ((i1 - 1) >> l) + 1, c0 = j0 >> l, c1 = ((j1 - 1) >> l) + 1;
    tile.r0[li] = r0;
    tile.rows[li] = r1 - r0;
    tile.c0[li] = c0;
    tile.cols[li] = c1 - c0;
    const std::int64_t nc = c1 - c0;
    T* raw = tile.raw[li].data();
    std::fill(raw, raw + (r1 - r0) * nc, T(0));
    const T* kt = hd.kt[li].data();
    const std::int64_t Tl = g.Tl[li];
    // raw[r][c] = scale * sum_d q[r][d] kt[d][c]: the inner loop runs over contiguous c.
    for (std::int64_t r = 0; r < r1 - r0; ++r) {
      const T* qr = hd.q[li] + (r0 + r) * dh;
      T* out = raw + r * nc;
      for (std::int64_t d = 0; d < dh; ++d) {
        const T qv = qr[d];
        const T* ktd = kt + d * Tl + c0;
        for (std::int64_t c = 0; c < nc; ++c) out[c] += qv * ktd[c];
      }
      for (std::int64_t c = 0; c < nc; ++c) out[c] *= scale;
    }
  }
  // Fuse: s[i][j] = sum_l alpha_l raw_l[i >> l][j >> l]  (the lift), then mask.
  const T inf = std::numeric_limits<T>::infinity();
  for (std::int64_t i = i0; i < i1; ++i) {
    T* srow = tile.s.data() + (i - i0) * bk;
    const T a0 = hd.alpha[0];
    const T* raw0 = tile.raw[0].data() + (i - i0) * tile.cols[0];
    for (std::int64_t j = j0; j < j1; ++j) srow[j - j0] = a0 * raw0[j - j0];
    for (int l = 1; l < g.L; ++l) {
      const auto li = static_cast<std::size_t>(l);
      const T al = hd.alpha[l];
      const T* rawl = tile.raw[li].data() + ((i >> l) - tile.r0[li]) * tile.cols[li];
      for (std::int64_t j = j0; j < j1; ++j) srow[j - j0] += al * rawl[(j >> l) - tile.c0[li]];
    }
    for (std::int64_t j = j0; j < j1; ++j)
      if ((hd.keep && !hd.keep[j]) || (g.causal && j > i)) srow[j - j0] = -inf;
  }
}

template <class T>
ScoreTile<T> make_tile(const Geometry& g) {
  ScoreTile<T> t;
  const auto L = static_cast<std::size_t>(g.L);
  t.raw.resize(L);
  for (std::size_t l = 0; l < L; ++l)
    t.raw[l].resize(static_cast<std::size_t>(((g.block_q >> l) + 1) * ((g.block_k >> l) + 1)));
  t.r0.resize(L);
  t.rows.resize(L);
  t.c0.resize(L);
  t.cols.resize(L);
  t.s.resize(static_cast<std::size_t>(g.block_q * g.block_k));
  return t;
}

// The per-head views of the inputs, with K_l^T built for the score loops.
template <class T>
Head<T> head_view(const Geometry& g, const std::vector<Tensor>& q, const std::vector<Tensor>& k, const Tensor& v,
                  const Tensor& alpha, const std::vector<unsigned char>& keep, std::int64_t b, std::int64_t h) {
  Head<T> hd;
  const std::int64_t bh = b * g.H + h;
  for (int l = 0; l < g.L; ++l) {
    const auto li = static_cast<std::size_t>(l);
    const std::int64_t Tl = g.Tl[li];
    hd.q.push_back(q[li].data<T>() + bh * Tl * g.dh);
    hd.k.push_back(k[li].data<T>() + bh * Tl * g.dh);
    std::vector<T> kt(static_cast<std::size_t>(g.dh * Tl));
    for (std::int64_t t = 0; t < Tl; ++t)
      for (std::int64_t d = 0; d < g.dh; ++d) kt[static_cast<std::size_t>(d * Tl + t)] = hd.k[li][t * g.dh + d];
    hd.kt.push_back(std::move(kt));
  }
  hd.v = v.data<T>() + bh * g.T * g.dh;
  hd.alpha = alpha.data<T>() + h * g.L;
  hd.keep = keep.empty() ? nullptr : keep.data() + b * g.T;
  return hd;
}

template <class T>
void forward_head(const Geometry& g, const Head<T>& hd, T* out, T* lse) {
  const std::int64_t T_ = g.T, dh = g.dh, bq = g.block_q, bk = g.block_k;
  const T inf = std::numeric_limits<T>::infinity();
  ScoreTile<T> tile = make_tile<T>(g);
  std::vector<T> m(static_cast<std::size_t>(bq)), l(static_cast<std::size_t>(bq)), acc(static_cast<std::size_t>(bq * dh));
  for (std::int64_t i0 = 0; i0 < T_; i0 += bq) {
    const std::int64_t i1 = std::min(i0 + bq, T_);
    std::fill(m.begin(), m.end(), -inf);
    std::fill(l.begin(), l.end(), T(0));
    std::fill(acc.begin(), acc.end(), T(0));
    const std::int64_t j_end = g.causal ? i1 : T_;  // keys after the last query are all masked
    for (std::int64_t j0 = 0; j0 < j_end; j0 += bk) {
      const std::int64_t j1 = std::min(j0 + bk, T_);
      compute_scores(g, hd, i0, i1, j0, j1, tile);
      for (std::int64_t r = 0; r < i1 - i0; ++r) {
        T* srow = tile.s.data() + r * bk;
        T row_max = -inf;
        for (std::int64_t c = 0; c < j1 - j0; ++c) row_max = std::max(row_max, srow[c]);
        const T m_new = std::max(m[r], row_max);
        if (m_new == -inf) continue;  // every key so far masked: nothing to add
        const T correction = std::exp(m[r] - m_new);  // exp(-inf) = 0 on the first live tile
        T row_sum = 0;
        for (std::int64_t c = 0; c < j1 - j0; ++c) {
          srow[c] = std::exp(srow[c] - m_new);  // p; masked entries give exp(-inf) = 0
          row_sum += srow[c];
        }
        l[r] = l[r] * correction + row_sum;
        m[r] = m_new;
        T* a = acc.data() + r * dh;
        for (std::int64_t d = 0; d < dh; ++d) a[d] *= correction;
        for (std::int64_t c = 0; c < j1 - j0; ++c) {
          const T p = srow[c];
          if (p == T(0)) continue;
          const T* vr = hd.v + (j0 + c) * dh;
          for (std::int64_t d = 0; d < dh; ++d) a[d] += p * vr[d];
        }
      }
    }
    for (std::int64_t r = 0; r < i1 - i0; ++r) {
      T* o = out + (i0 + r) * dh;
      const bool dead = l[r] == T(0);  // every key masked: output 0, LSE -inf
      for (std::int64_t d = 0; d < dh; ++d) o[d] = dead ? T(0) : acc[r * dh + d] / l[r];
      lse[i0 + r] = dead ? -inf : m[r] + std::log(l[r]);
    }
  }
}

// Gradients of one head. dq[l], dk[l]: [T_l, d_h]; dv: [T, d_h] (all zeroed by the
// caller); dalpha: [L] accumulated in double.
template <class T>
void backward_head(const Geometry& g, const Head<T>& hd, const T* out, const T* lse, const T* dout,
                   const std::vector<T*>& dq, const std::vector<T*>& dk, T* dv, double* dalpha) {
  const std::int64_t T_ = g.T, dh = g.dh, bq = g.block_q, bk = g.block_k;
  const T inf = std::numeric_limits<T>::infinity();
  const T scale = static_cast<T>(g.scale);
  // D_i = rowsum(dO_i (.) O_i), and V^T for dp = dO V^T with contiguous inner loops.
  std::vector<T> D(static_cast<std::size_t>(T_)), vt(static_cast<std::size_t>(dh * T_));
  for (std::int64_t i = 0; i < T_; ++i) {
    T s = 0;
    for (std::int64_t d = 0; d < dh; ++d) s += dout[i * dh + d] * out[i * dh + d];
    D[static_cast<std::size_t>(i)] = s;
    for (std::int64_t d = 0; d < dh; ++d) vt[static_cast<std::size_t>(d * T_ + i)] = hd.v[i * dh + d];
  }
  ScoreTile<T> tile = make_tile<T>(g);
  std::vector<T> ds(static_cast<std::size_t>(bq * bk)), dsl(tile.raw[0].size());
  for (std::int64_t j0 = 0; j0 < T_; j0 += bk) {
    const std::int64_t j1 = std::min(j0 + bk, T_), nc = j1 - j0;
    // With causality, query tiles that end before j0 see none of these keys.
    const std::int64_t i_start = g.causal ? j0 / bq * bq : 0;
    for (std::int64_t i0 = i_start; i0 < T_; i0 += bq) {
      const std::int64_t i1 = std::min(i0 + bq, T_), nr = i1 - i0;
      compute_scores(g, hd, i0, i1, j0, j1, tile);
      // p = exp(s - LSE), kept in tile.s; 0 for masked entries and dead rows.
      for (std::int64_t r = 0; r < nr; ++r) {
        T* srow = tile.s.data() + r * bk;
        const T row_lse = lse[i0 + r];
        for (std::int64_t c = 0; c < nc; ++c) srow[c] = row_lse == -inf || srow[c] == -inf ? T(0) : std::exp(srow[c] - row_lse);
      }
      // dV[J] += p^T dO[I]
      for (std::int64_t r = 0; r < nr; ++r) {
        const T* dor = dout + (i0 + r) * dh;
        for (std::int64_t c = 0; c < nc; ++c) {
          const T p = tile.s[static_cast<std::size_t>(r * bk + c)];
          if (p == T(0)) continue;
          T* dvr = dv + (j0 + c) * dh;
          for (std::int64_t d = 0; d < dh; ++d) dvr[d] += p * dor[d];
        }
      }
      // dp = dO[I] V[J]^T, then ds = p (dp - D)
      for (std::int64_t r = 0; r < nr; ++r) {
        T* dsr = ds.data() + r * bk;
        std::fill(dsr, dsr + nc, T(0));
        const T* dor = dout + (i0 + r) * dh;
        for (std::int64_t d = 0; d < dh; ++d) {
          const T x = dor[d];
          const T* vtd = vt.data() + d * T_ + j0;
          for (std::int64_t c = 0; c < nc; ++c) dsr[c] += x * vtd[c];
        }
        const T* pr = tile.s.data() + r * bk;
        const T Di = D[static_cast<std::size_t>(i0 + r)];
        for (std::int64_t c = 0; c < nc; ++c) dsr[c] = pr[c] == T(0) ? T(0) : pr[c] * (dsr[c] - Di);
      }
      // Per level: ds_l = block sums of ds (level 0: ds itself); dalpha_l, dQ_l, dK_l.
      for (int l = 0; l < g.L; ++l) {
        const auto li = static_cast<std::size_t>(l);
        const std::int64_t rl = tile.rows[li], cl = tile.cols[li], r0 = tile.r0[li], c0 = tile.c0[li];
        const T* dsl_p = ds.data();
        std::int64_t stride = bk;
        if (l > 0) {
          std::fill(dsl.begin(), dsl.begin() + rl * cl, T(0));
          for (std::int64_t r = 0; r < nr; ++r)
            for (std::int64_t c = 0; c < nc; ++c)
              dsl[static_cast<std::size_t>((((i0 + r) >> l) - r0) * cl + ((j0 + c) >> l) - c0)] += ds[static_cast<std::size_t>(r * bk + c)];
          dsl_p = dsl.data();
          stride = cl;
        }
        const T* raw = tile.raw[li].data();
        double da = 0.0;
        for (std::int64_t r = 0; r < rl; ++r)
          for (std::int64_t c = 0; c < cl; ++c) da += static_cast<double>(dsl_p[r * stride + c]) * static_cast<double>(raw[r * cl + c]);
        dalpha[l] += da;
        const T w = hd.alpha[l] * scale;
        for (std::int64_t r = 0; r < rl; ++r) {
          T* dqr = dq[li] + (r0 + r) * dh;
          const T* qr = hd.q[li] + (r0 + r) * dh;
          for (std::int64_t c = 0; c < cl; ++c) {
            const T x = w * dsl_p[r * stride + c];
            if (x == T(0)) continue;
            const T* kr = hd.k[li] + (c0 + c) * dh;
            T* dkr = dk[li] + (c0 + c) * dh;
            for (std::int64_t d = 0; d < dh; ++d) {
              dqr[d] += x * kr[d];
              dkr[d] += x * qr[d];
            }
          }
        }
      }
    }
  }
}

// key_mask as one byte per key (1 = real); empty when there is no mask.
std::vector<unsigned char> keep_bytes(const Tensor& key_mask) {
  std::vector<unsigned char> keep;
  if (!key_mask.defined()) return keep;
  for (double x : key_mask.to_vector()) keep.push_back(x != 0.0 ? 1 : 0);
  return keep;
}

}  // namespace

Tensor hkt_attention_fused(const std::vector<Tensor>& q, const std::vector<Tensor>& k, const Tensor& v,
                           const Tensor& alpha, const Tensor& key_mask, const HktAttentionOptions& options) {
  Geometry g;
  g.scale = check_hkt_attention_args("hkt_attention_fused", q, k, v, alpha, key_mask, options);
  g.B = v.shape()[0];
  g.H = v.shape()[1];
  g.T = v.shape()[2];
  g.dh = v.shape()[3];
  g.L = static_cast<int>(q.size());
  for (int l = 0; l < g.L; ++l) g.Tl.push_back(q[static_cast<std::size_t>(l)].shape()[2]);
  const std::int64_t unit = std::int64_t{1} << (g.L - 1);  // tiles hold whole coarse blocks
  g.block_q = round_up(options.block_q, unit);
  g.block_k = round_up(options.block_k, unit);
  g.causal = options.causal;
  const auto keep = keep_bytes(key_mask);

  Tensor out = Tensor::empty(v.shape(), v.dtype());
  Tensor lse = Tensor::empty({g.B, g.H, g.T}, v.dtype());
  dispatch_floating(v.dtype(), "hkt_attention_fused", [&](auto tag) {
    using T = decltype(tag);
    T *po = out.data<T>(), *pl = lse.data<T>();
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t bh = 0; bh < g.B * g.H; ++bh) {
      const Head<T> hd = head_view<T>(g, q, k, v, alpha, keep, bh / g.H, bh % g.H);
      forward_head(g, hd, po + bh * g.T * g.dh, pl + bh * g.T);
    }
  });

  std::vector<Tensor> inputs(q);
  inputs.insert(inputs.end(), k.begin(), k.end());
  inputs.push_back(v);
  inputs.push_back(alpha);
  std::vector<Tensor> saved_q, saved_k;
  for (const auto& t : q) saved_q.push_back(t.detach());
  for (const auto& t : k) saved_k.push_back(t.detach());
  record(out, "hkt_attention_fused", inputs,
         [g, saved_q, saved_k, v = v.detach(), alpha = alpha.detach(), keep, out = out.detach(), lse](
             const Tensor& grad_out, const std::vector<bool>&) {
           const auto L = static_cast<std::size_t>(g.L);
           Grads grads;
           for (std::size_t l = 0; l < 2 * L; ++l) grads.push_back(Tensor::zeros((l < L ? saved_q[l] : saved_k[l - L]).shape(), v.dtype()));
           grads.push_back(Tensor::zeros(v.shape(), v.dtype()));
           std::vector<double> dalpha_parts(static_cast<std::size_t>(g.B * g.H * g.L), 0.0);
           dispatch_floating(v.dtype(), "hkt_attention_fused backward", [&](auto tag) {
             using T = decltype(tag);
#pragma omp parallel for schedule(dynamic, 1)
             for (std::int64_t bh = 0; bh < g.B * g.H; ++bh) {
               const Head<T> hd = head_view<T>(g, saved_q, saved_k, v, alpha, keep, bh / g.H, bh % g.H);
               std::vector<T*> dq, dk;
               for (std::size_t l = 0; l < L; ++l) {
                 dq.push_back(grads[l].data<T>() + bh * g.Tl[l] * g.dh);
                 dk.push_back(grads[L + l].data<T>() + bh * g.Tl[l] * g.dh);
               }
               backward_head(g, hd, out.data<T>() + bh * g.T * g.dh, lse.data<T>() + bh * g.T,
                             grad_out.data<T>() + bh * g.T * g.dh, dq, dk, grads[2 * L].data<T>() + bh * g.T * g.dh,
                             dalpha_parts.data() + bh * g.L);
             }
           });
           // dalpha[h, l] = sum over the batch, in batch order (deterministic).
           std::vector<double> dalpha(static_cast<std::size_t>(g.H * g.L), 0.0);
           for (std::int64_t b = 0; b < g.B; ++b)
             for (std::int64_t i = 0; i < g.H * g.L; ++i)
               dalpha[static_cast<std::size_t>(i)] += dalpha_parts[static_cast<std::size_t>(b * g.H * g.L + i)];
           grads.push_back(Tensor::from_vector(dalpha, {g.H, g.L}, v.dtype()));
           return grads;
         });
  return out;
}

}  // namespace hkt
