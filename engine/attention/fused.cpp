// fused.cpp: the fused hierarchical attention op on the CPU, tiled as the algorithm of
// docs/hkt-attention.md section 6: query tiles of block_q rows, key tiles of block_k
// columns, both multiples of 2^(L-1) so that a tile covers whole coarse rows and columns
// at every level.
//
// Forward, per query tile I, over key tiles J:
//   s = alpha_0 scale Q0[I] K0[J]^T; for l >= 1 the coarse tile alpha_l scale
//   Q_l[I/2^l] K_l[J/2^l]^T is added to each 2^l x 2^l block of s; mask; online softmax
//   (a running maximum and sum per row); acc += p V[J]. Store O = acc / sum and
//   LSE = max + log sum.
// Backward (FlashAttention-2): D_i = rowsum(dO_i O_i); per key tile J, per query tile I:
//   recompute s; dp = dO[I] V[J]^T; p = exp(s - LSE) and ds = p (dp - D) in one pass;
//   dV[J] += p^T dO[I]; per level (ds_0 = ds, ds_l = its 2^l x 2^l block sums):
//   dQ_l[I/2^l] += alpha_l scale ds_l K_l[J/2^l], dK_l[J/2^l] += alpha_l scale ds_l^T Q_l[I/2^l];
//   with G = scale ds_l K_l of the tile, dalpha_l += sum_i Q_l[i] . G[i] (in double; it
//   equals sum ds_l (.) scale Q_l K_l^T over the tile).
// Memory: K_l^T and V^T packed per key tile (the size of K and V), O, the LSE and a
// few tiles per thread: O(T d_h) per head, never T x T.
//
// Names: T is the number of tokens, as everywhere in hkt; the element type (float or
// double) of the templates below is E.
//
// Parallelism: the forward runs one task per (batch, head, query tile), the backward one
// per (batch, head); every task writes only its own rows, so results do not depend on
// the number of threads.
#include <algorithm>
#include <cmath>
#include <limits>

#include "../autograd.h"
#include "../ops/cpu_kernels.h"
#include "fused_cuda.h"
#include "hkt_attention.h"
#include "tile_gemm.h"
#include "vector_math.h"

namespace hkt {

namespace {

using attention::add_scaled;
using attention::dot_lanes;
using attention::dot_lanes_f64;
using attention::exp_shifted_sum;
using attention::fast_exp;
using attention::max_lanes;
using attention::tile_gemm;
using attention::tile_gemm_set;
using attention::tile_gemm_tn;

// Everything the kernels need about one call, independent of the element type.
struct Geometry {
  std::int64_t B = 0, H = 0, T = 0, dh = 0;
  int L = 1;
  std::vector<std::int64_t> Tl;             // T_l = ceil(T / 2^l)
  std::int64_t block_q = 64, block_k = 64;  // multiples of 2^(L-1)
  std::int64_t key_tiles = 0;               // ceil(T / block_k)
  bool causal = false;
  double scale = 1.0;
};

// A matrix [rows, dh] (K_l or V of one head) transposed tile by tile: tile t holds
// columns t*w .. t*w+w-1 of the transpose as a contiguous [dh, w] block (zeros past the
// last row). The score loops then read unit-stride rows with no power-of-two stride
// between them, which would otherwise alias in the cache.
template <class E>
std::vector<E> pack_transposed(const E* src, std::int64_t rows, std::int64_t dh, std::int64_t w, std::int64_t tiles) {
  std::vector<E> packed(static_cast<std::size_t>(tiles * dh * w), E(0));
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t t = r / w, c = r % w;
    for (std::int64_t d = 0; d < dh; ++d) packed[static_cast<std::size_t>((t * dh + d) * w + c)] = src[r * dh + d];
  }
  return packed;
}

// One (batch, head) of every input, plus its packed transposes.
template <class E>
struct Head {
  std::vector<const E*> q, k;                   // level l: [T_l, d_h]
  const E* v = nullptr;                         // [T, d_h]
  const E* alpha = nullptr;                     // [L], this head's level weights
  const unsigned char* keep = nullptr;          // [T], 1 = real key; nullptr = all real
  std::vector<std::vector<E>> kt;               // level l: K_l^T packed by key tile, width block_k / 2^l
  std::vector<E> vt;                            // V^T packed by key tile (backward only)
  std::vector<unsigned char> tile_has_padding;  // per key tile
};

template <class E>
Head<E> make_head(const Geometry& g, const std::vector<Tensor>& q, const std::vector<Tensor>& k, const Tensor& v,
                  const Tensor& alpha, const std::vector<unsigned char>& keep, std::int64_t bh, bool with_vt) {
  Head<E> hd;
  for (int l = 0; l < g.L; ++l) {
    const auto li = static_cast<std::size_t>(l);
    const std::int64_t Tl = g.Tl[li];
    hd.q.push_back(q[li].data<E>() + bh * Tl * g.dh);
    hd.k.push_back(k[li].data<E>() + bh * Tl * g.dh);
    hd.kt.push_back(pack_transposed(hd.k[li], Tl, g.dh, g.block_k >> l, g.key_tiles));
  }
  hd.v = v.data<E>() + bh * g.T * g.dh;
  if (with_vt) hd.vt = pack_transposed(hd.v, g.T, g.dh, g.block_k, g.key_tiles);
  hd.alpha = alpha.data<E>() + (bh % g.H) * g.L;
  hd.keep = keep.empty() ? nullptr : keep.data() + (bh / g.H) * g.T;
  hd.tile_has_padding.assign(static_cast<std::size_t>(g.key_tiles), 0);
  if (hd.keep)
    for (std::int64_t j = 0; j < g.T; ++j)
      if (!hd.keep[j]) hd.tile_has_padding[static_cast<std::size_t>(j / g.block_k)] = 1;
  return hd;
}

// Scratch of one score tile: query rows i0..i1-1, key columns j0..j1-1.
template <class E>
struct ScoreTile {
  std::vector<E> s;                   // the fused, masked scores (then p), [block_q x block_k]
  std::vector<std::vector<E>> fused;  // level l >= 1: F_l (compute_scores) or ds_l (the backward), [block_q/2^l x
                                      // block_k/2^l], row stride block_k/2^l
  std::vector<E> row;                 // one row of scratch, [block_k]
  // fused[0] is never used (level 0 is s itself), so it stays empty: the scratch then
  // stays in L2.
  explicit ScoreTile(const Geometry& g) {
    for (int l = 0; l < g.L; ++l)
      fused.emplace_back(l > 0 ? static_cast<std::size_t>((g.block_q >> l) * (g.block_k >> l)) : 0);
    s.resize(static_cast<std::size_t>(g.block_q * g.block_k));
    row.resize(static_cast<std::size_t>(g.block_k));
  }
};

// Row helpers of the level passes. Each is its own function with restrict-qualified
// pointers: written inline, the compiler cannot rule out that the rows overlap (they are
// all scratch of one ScoreTile) and keeps the loops scalar; these made the HKT (L = 3)
// step's fusion and block sums 2x faster.

// wide[c] = src[c / 2], c < cols: a coarse row with each entry doubled. Written as two
// stores per source entry, not as `wide[c] = src[c >> 1]`: GCC turns that form into
// gathers (compute_scores, which holds the loop, was 3.2 % of an HKT step at T = 512 with
// them, perf, and 0.6 % with this form), this one into shuffles.
template <class E>
void widen_row(E* __restrict wide, const E* __restrict src, std::int64_t cols) {
  const std::int64_t pairs = cols / 2;
  for (std::int64_t c = 0; c < pairs; ++c) {
    wide[2 * c] = src[c];
    wide[2 * c + 1] = src[c];
  }
  if (cols % 2) wide[cols - 1] = src[pairs];
}

// pair[c] = a[c] + b[c] (b = nullptr: a[c]), c < cols: two fine rows added.
template <class E>
void add_rows(E* __restrict pair, const E* __restrict a, const E* __restrict b, std::int64_t cols) {
  if (b)
    for (std::int64_t c = 0; c < cols; ++c) pair[c] = a[c] + b[c];
  else
    for (std::int64_t c = 0; c < cols; ++c) pair[c] = a[c];
}

// out[c] = pair[2c] + pair[2c + 1], c < cols: neighbouring columns added.
template <class E>
void add_column_pairs(E* __restrict out, const E* __restrict pair, std::int64_t cols) {
  for (std::int64_t c = 0; c < cols; ++c) out[c] = pair[2 * c] + pair[2 * c + 1];
}

// The backward's softmax gradient of one score row, in one pass (it was three: the exp,
// a fill of -D, and the product): p[c] = exp(s[c] - lse) written over s, and
// ds[c] = p[c] (dp[c] - d) written over dp, c < cols. Where p = 0 (a masked key, or one
// whose probability underflows) ds is 0 whatever dp holds.
template <class E>
void softmax_grad_row(E* __restrict s, E* __restrict dp, E lse, E d, std::int64_t cols) {
  for (std::int64_t c = 0; c < cols; ++c) {
    const E p = fast_exp(s[c] - lse);  // masked: exp(-inf) = 0
    s[c] = p;
    dp[c] = p == E(0) ? E(0) : p * (dp[c] - d);
  }
}

// Fills tile.s for rows i0..i1-1 and columns j0..j1-1 with
//   s = sum_l alpha_l Lift_l(scale Q_l[i0/2^l ..] K_l[j0/2^l ..]^T)
// (coarse indices exact since i0 and j0 are multiples of 2^l), -inf where masked.
// From the coarsest level down, one factor of 2 at a time:
//   F_{L-1} = alpha_{L-1} scale Q_{L-1} K_{L-1}^T,  F_l = Lift_1(F_{l+1}) + alpha_l scale Q_l K_l^T,  s = F_0,
// which equals the sum above. Each F_l is made in place: F_{l+1} lifted into its buffer
// (each coarse entry copied to a 2 x 2 block: a coarse row widened, then copied to the
// two fine rows under it), then one GEMM adds alpha_l scale Q_l K_l^T on top (beta = 1).
// No level's product is stored apart, so the fusion costs one write of each level's
// tile, and the weights ride in the GEMM's alpha (the lift of docs/hkt-attention.md section 6,
// reorganised).
template <class E>
void compute_scores(const Geometry& g, const Head<E>& hd, std::int64_t i0, std::int64_t i1, std::int64_t j0,
                    std::int64_t j1, ScoreTile<E>& tile) {
  const std::int64_t bk = g.block_k, dh = g.dh, jt = j0 / bk;
  for (int l = g.L - 1; l >= 0; --l) {
    const auto li = static_cast<std::size_t>(l);
    const std::int64_t r0 = i0 >> l, rows = ((i1 - 1) >> l) + 1 - r0, cols = ((j1 - 1) >> l) + 1 - (j0 >> l);
    const std::int64_t w = bk >> l;  // row stride of F_l
    E* out = l == 0 ? tile.s.data() : tile.fused[li].data();
    const E weight = static_cast<E>(g.scale) * hd.alpha[l];
    const E *ql = hd.q[li] + r0 * dh, *ktl = hd.kt[li].data() + jt * dh * w;
    if (l == g.L - 1) {  // the coarsest level: the GEMM writes F_l (beta = 0)
      tile_gemm_set(rows, cols, dh, weight, ql, dh, ktl, w, out, w);
      continue;
    }
    const E* coarse = tile.fused[li + 1].data();  // F_{l+1}, row stride w / 2
    for (std::int64_t cr = 0; 2 * cr < rows; ++cr) {
      widen_row(out + 2 * cr * w, coarse + cr * (w / 2), cols);
      if (2 * cr + 1 < rows) std::copy(out + 2 * cr * w, out + 2 * cr * w + cols, out + (2 * cr + 1) * w);
    }
    tile_gemm(rows, cols, dh, weight, ql, dh, ktl, w, out, w);
  }
  // Masks, only where the tile can have any: padded keys, or keys after some query.
  const bool causal_cut = g.causal && j1 - 1 > i0;
  if (causal_cut || hd.tile_has_padding[static_cast<std::size_t>(jt)]) {
    const E inf = std::numeric_limits<E>::infinity();
    const std::int64_t nr = i1 - i0, nc = j1 - j0;
    for (std::int64_t r = 0; r < nr; ++r) {
      E* srow = tile.s.data() + r * bk;
      for (std::int64_t c = 0; c < nc; ++c)
        if ((hd.keep && !hd.keep[j0 + c]) || (g.causal && j0 + c > i0 + r)) srow[c] = -inf;
    }
  }
}

// Forward of one query tile: O[i0..i1) and LSE[i0..i1) of one head. `tile` is the
// calling thread's scratch, reused across its tiles (every entry read is written first).
template <class E>
void forward_tile(const Geometry& g, const Head<E>& hd, std::int64_t i0, E* out, E* lse, ScoreTile<E>& tile) {
  const std::int64_t dh = g.dh, bk = g.block_k, i1 = std::min(i0 + g.block_q, g.T), nr = i1 - i0;
  const E inf = std::numeric_limits<E>::infinity();
  std::vector<E> run_max(static_cast<std::size_t>(nr), -inf), run_sum(static_cast<std::size_t>(nr), E(0));  // per row
  std::vector<E> acc(static_cast<std::size_t>(nr * dh), E(0));
  const std::int64_t j_end = g.causal ? i1 : g.T;  // keys after the last query are all masked
  for (std::int64_t j0 = 0; j0 < j_end; j0 += bk) {
    const std::int64_t j1 = std::min(j0 + bk, g.T), nc = j1 - j0;
    compute_scores(g, hd, i0, i1, j0, j1, tile);
    // Online softmax: new running max, rescale what was accumulated, p = exp(s - max).
    for (std::int64_t r = 0; r < nr; ++r) {
      E* srow = tile.s.data() + r * bk;
      const E row_max = max_lanes(srow, nc);
      const auto ri = static_cast<std::size_t>(r);
      const E m_new = std::max(run_max[ri], row_max);
      if (m_new == -inf) {  // every key so far masked: this tile adds nothing
        std::fill(srow, srow + nc, E(0));
        continue;
      }
      const E correction = std::exp(run_max[ri] - m_new);  // exp(-inf) = 0 on the first live tile
      const E row_sum = exp_shifted_sum(srow, nc, m_new);  // p = exp(s - m_new), masked entries exp(-inf) = 0
      run_sum[ri] = run_sum[ri] * correction + row_sum;
      run_max[ri] = m_new;
      E* a = acc.data() + r * dh;
      for (std::int64_t d = 0; d < dh; ++d) a[d] *= correction;
    }
    tile_gemm(nr, dh, nc, E(1), tile.s.data(), bk, hd.v + j0 * dh, dh, acc.data(), dh);  // acc += p V[J]
  }
  for (std::int64_t r = 0; r < nr; ++r) {
    const auto ri = static_cast<std::size_t>(r);
    const bool dead = run_sum[ri] == E(0);  // every key masked: output 0, LSE -inf
    for (std::int64_t d = 0; d < dh; ++d)
      out[(i0 + r) * dh + d] =
          dead ? E(0) : acc[ri * static_cast<std::size_t>(dh) + static_cast<std::size_t>(d)] / run_sum[ri];
    lse[i0 + r] = dead ? -inf : run_max[ri] + std::log(run_sum[ri]);
  }
}

// Gradients of one head: dq[l], dk[l] [T_l, d_h], dv [T, d_h] (zeroed by the caller);
// dalpha [L] accumulated in double, or nullptr when alpha needs no gradient.
template <class E>
void backward_head(const Geometry& g, const Head<E>& hd, const E* out, const E* lse, const E* dout,
                   const std::vector<E*>& dq, const std::vector<E*>& dk, E* dv, double* dalpha) {
  const std::int64_t T = g.T, dh = g.dh, bq = g.block_q, bk = g.block_k;
  const E inf = std::numeric_limits<E>::infinity();
  std::vector<E> D(static_cast<std::size_t>(T));  // D_i = rowsum(dO_i (.) O_i)
  for (std::int64_t i = 0; i < T; ++i) D[static_cast<std::size_t>(i)] = dot_lanes(dout + i * dh, out + i * dh, dh);
  ScoreTile<E> tile(g);
  std::vector<E> ds(static_cast<std::size_t>(bq * bk));
  std::vector<E> g_tile(dalpha ? static_cast<std::size_t>(bq * dh) : 0);  // one tile's scale ds_l K_l (dalpha only)
  for (std::int64_t j0 = 0; j0 < T; j0 += bk) {
    const std::int64_t j1 = std::min(j0 + bk, T), nc = j1 - j0, jt = j0 / bk;
    const std::int64_t i_start = g.causal ? j0 / bq * bq : 0;  // earlier query tiles see none of these keys
    for (std::int64_t i0 = i_start; i0 < T; i0 += bq) {
      const std::int64_t i1 = std::min(i0 + bq, T), nr = i1 - i0;
      compute_scores(g, hd, i0, i1, j0, j1, tile);
      // dp = dO[I] V[J]^T into ds; then, row by row in one pass, p = exp(s - LSE) over
      // tile.s and ds = p (dp - D) over dp (softmax_grad_row); 0 for masked entries and
      // dead rows.
      tile_gemm_set(nr, nc, dh, E(1), dout + i0 * dh, dh, hd.vt.data() + jt * dh * bk, bk, ds.data(), bk);
      for (std::int64_t r = 0; r < nr; ++r) {
        E *srow = tile.s.data() + r * bk, *dsr = ds.data() + r * bk;
        const E row_lse = lse[i0 + r];
        if (row_lse == -inf) {  // a dead row (every key masked): p = 0, ds = 0
          std::fill(srow, srow + nc, E(0));
          std::fill(dsr, dsr + nc, E(0));
          continue;
        }
        softmax_grad_row(srow, dsr, row_lse, D[static_cast<std::size_t>(i0 + r)], nc);
      }
      // dV[J] += p^T dO[I]
      tile_gemm_tn(nc, dh, nr, E(1), tile.s.data(), bk, dout + i0 * dh, dh, dv + j0 * dh, dh);
      // Per level: ds_l = block sums of ds (ds_0 = ds), built one factor of 2 at a time
      // (ds_l = the 2 x 2 block sums of ds_{l-1}); then dalpha_l, dQ_l, dK_l.
      const E* prev = ds.data();
      std::int64_t prev_stride = bk;
      for (int l = 0; l < g.L; ++l) {
        const auto li = static_cast<std::size_t>(l);
        const std::int64_t r0 = i0 >> l, c0 = j0 >> l;
        const std::int64_t rows = ((i1 - 1) >> l) + 1 - r0, cols = ((j1 - 1) >> l) + 1 - c0, w = bk >> l;
        E* dsl_level = tile.fused[li].data();  // reused as ds_l scratch (row stride w)
        const E* dsl_p = ds.data();
        if (l > 0) {
          const std::int64_t prev_rows = ((i1 - 1) >> (l - 1)) + 1 - (i0 >> (l - 1));
          const std::int64_t prev_cols = ((j1 - 1) >> (l - 1)) + 1 - (j0 >> (l - 1));
          E* pair = tile.row.data();
          for (std::int64_t r = 0; r < rows; ++r) {
            // Add the two fine rows (a missing second row at the edge adds nothing), then
            // the pairs of columns.
            const E* a = prev + (2 * r) * prev_stride;
            add_rows(pair, a, 2 * r + 1 < prev_rows ? a + prev_stride : nullptr, prev_cols);
            if (prev_cols % 2) pair[prev_cols] = E(0);
            add_column_pairs(dsl_level + r * w, pair, cols);
          }
          dsl_p = dsl_level;
          prev = dsl_level;
          prev_stride = w;
        }
        const std::int64_t stride = l == 0 ? bk : w;
        const E weight = hd.alpha[l] * static_cast<E>(g.scale);
        if (dalpha) {
          // G = scale ds_l K_l[J/2^l] of this tile alone; dalpha_l += sum_i Q_l[i] . G[i] in
          // double (= sum ds_l (.) scale Q_l K_l^T over the tile: no tile of level scores
          // is kept for it), then dQ_l[I/2^l] += alpha_l G. Per tile, not once per head
          // over the accumulated dQ_l: G summed over every key tile in float cancels (each
          // row of ds sums to 0), and that dalpha had 2.6 times the composite's float32
          // error in a build without FMA contraction (the test allows 2).
          E* gt = g_tile.data();
          tile_gemm_set(rows, dh, cols, static_cast<E>(g.scale), dsl_p, stride, hd.k[li] + c0 * dh, dh, gt, dh);
          // The tile's rows of Q_l, G and dQ_l are each one contiguous block of rows * dh.
          const std::int64_t n = rows * dh;
          dalpha[l] += dot_lanes_f64(hd.q[li] + r0 * dh, gt, n);
          add_scaled(dq[li] + r0 * dh, gt, hd.alpha[l], n);
        } else {  // dQ_l[I/2^l] += alpha_l scale ds_l K_l[J/2^l]
          tile_gemm(rows, dh, cols, weight, dsl_p, stride, hd.k[li] + c0 * dh, dh, dq[li] + r0 * dh, dh);
        }
        // dK_l[J/2^l] += alpha_l scale ds_l^T Q_l[I/2^l]
        tile_gemm_tn(cols, dh, rows, weight, dsl_p, stride, hd.q[li] + r0 * dh, dh, dk[li] + c0 * dh, dh);
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

// Rounds n up to a multiple of m.
std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

}  // namespace

Tensor hkt_attention_fused(const std::vector<Tensor>& q, const std::vector<Tensor>& k_in, const Tensor& v_in,
                           const Tensor& alpha, const Tensor& key_mask, const HktAttentionOptions& options) {
  Geometry g;
  g.scale = check_hkt_attention_args("hkt_attention_fused", q, k_in, v_in, alpha, key_mask, options);
  if (v_in.device() == Device::CUDA)  // the CUDA kernels (kernels/backend/attention_v1.cpp; masked keys never read)
    return attention::fused_cuda(q, k_in, v_in, alpha, key_mask, options.causal, g.scale,
                                 options.precision == AttentionPrecision::Bf16);
  // The tiles below multiply masked keys' K and V by probability 0: zero them first, so
  // that a NaN there reaches nothing.
  const auto [k, v] = zero_masked_keys(k_in, v_in, key_mask);
  g.B = v.shape()[0];
  g.H = v.shape()[1];
  g.T = v.shape()[2];
  g.dh = v.shape()[3];
  g.L = static_cast<int>(q.size());
  for (int l = 0; l < g.L; ++l) g.Tl.push_back(q[static_cast<std::size_t>(l)].shape()[2]);
  const std::int64_t unit = std::int64_t{1} << (g.L - 1);  // tiles hold whole coarse blocks
  g.block_q = round_up(options.block_q, unit);
  g.block_k = round_up(options.block_k, unit);
  g.key_tiles = (g.T + g.block_k - 1) / g.block_k;
  g.causal = options.causal;
  const auto keep = keep_bytes(key_mask);

  Tensor out = Tensor::empty(v.shape(), v.dtype());
  Tensor lse = Tensor::empty({g.B, g.H, g.T}, v.dtype());
  dispatch_floating(v.dtype(), "hkt_attention_fused", [&](auto tag) {
    using E = decltype(tag);
    const std::int64_t heads = g.B * g.H, query_tiles = (g.T + g.block_q - 1) / g.block_q;
    std::vector<Head<E>> hds(static_cast<std::size_t>(heads));
#pragma omp parallel for schedule(static)
    for (std::int64_t bh = 0; bh < heads; ++bh)
      hds[static_cast<std::size_t>(bh)] = make_head<E>(g, q, k, v, alpha, keep, bh, false);
    E *po = out.data<E>(), *pl = lse.data<E>();
#pragma omp parallel
    {
      ScoreTile<E> tile(g);  // one per thread: allocating and zeroing it per tile cost 1 % of a step
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t task = 0; task < heads * query_tiles; ++task) {
        const std::int64_t bh = task / query_tiles, i0 = (task % query_tiles) * g.block_q;
        forward_tile(g, hds[static_cast<std::size_t>(bh)], i0, po + bh * g.T * g.dh, pl + bh * g.T, tile);
      }
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
             const Tensor& grad_out, const std::vector<bool>& needs) {
           const auto L = static_cast<std::size_t>(g.L);
           Grads grads;
           for (std::size_t l = 0; l < 2 * L; ++l)
             grads.push_back(Tensor::zeros((l < L ? saved_q[l] : saved_k[l - L]).shape(), v.dtype()));
           grads.push_back(Tensor::zeros(v.shape(), v.dtype()));
           const bool want_dalpha = needs[2 * L + 1];  // inputs: q (L), k (L), v, alpha
           std::vector<double> dalpha_parts(static_cast<std::size_t>(g.B * g.H * g.L), 0.0);
           dispatch_floating(v.dtype(), "hkt_attention_fused backward", [&](auto tag) {
             using E = decltype(tag);
#pragma omp parallel for schedule(dynamic, 1)
             for (std::int64_t bh = 0; bh < g.B * g.H; ++bh) {
               const Head<E> hd = make_head<E>(g, saved_q, saved_k, v, alpha, keep, bh, true);
               std::vector<E*> dq, dk;
               for (std::size_t l = 0; l < L; ++l) {
                 dq.push_back(grads[l].data<E>() + bh * g.Tl[l] * g.dh);
                 dk.push_back(grads[L + l].data<E>() + bh * g.Tl[l] * g.dh);
               }
               backward_head(g, hd, out.data<E>() + bh * g.T * g.dh, lse.data<E>() + bh * g.T,
                             grad_out.data<E>() + bh * g.T * g.dh, dq, dk, grads[2 * L].data<E>() + bh * g.T * g.dh,
                             want_dalpha ? dalpha_parts.data() + bh * g.L : nullptr);
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
