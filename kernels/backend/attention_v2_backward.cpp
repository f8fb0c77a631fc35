// attention_v2_backward.cpp: the backward of the bf16 tensor-core attention (attention_v2.cpp
// is the forward; kernels/attention_dev/NOTES.md, "v2"). The math is v1's (attention_v1.cpp,
// top of the file):
//   p = e^(s - LSE), dp = dO[i] . V[j], ds = p (dp - D[i]), D[i] = sum_j p dp
//   dV[j] = sum_i p dO[i];  dS_l = ds pooled to level l (2^l x 2^l sums)
//   dQ_l[u] = alpha_l scale sum_w dS_l[u, w] K_l[w];  dK_l[w] = alpha_l scale sum_u dS_l[u, w] Q_l[u]
//   dalpha[h, l] = sum_{b, u, w} dS_l[u, w] S_l[u, w]
// Precision: Q_l, K_l, V and dO are rounded to bf16 as they are staged, and so are P and
// dS where they enter a product (the operands of an unfused bf16 computation's matmuls);
// every product is the m16n8k16 instruction with float32 accumulators; the scores, p, dp,
// ds, the pooled dS_l and the accumulated gradients are float32; D and dalpha's sums are
// double.
//
// D. v1 (and FlashAttention) take D[i] = dO[i] . O[i], equal to sum_j p dp in exact
// arithmetic. Here O came from bf16-rounded P, so dO . O differs from the sum_j p dp of
// the p and dp the backward sees by the rounding of P, the rows of ds no longer sum to 0,
// and that row-constant error does not average out where ds is summed over whole rows:
// dalpha and the coarsest levels' dQ_l and dK_l came out 2 to 5 times less accurate than
// an unfused computation's (measured on the v1 test shapes over 6 seeds). So D is
// sum_j p dp, as the unfused softmax backward computes it: BackwardQ makes a first pass
// over its key tiles for it (scores and dP only), writes it, and BackwardKV, launched
// after, reads it. The price is that first pass, about 2 of the backward's 7 products.
//
// Two block kernels of 4 warps, as v1 (each output owned by one lane, sums in a fixed
// order, no atomics: deterministic), plus dalpha's reduction over the query tiles:
//   BackwardKV  one block per (b h, key tile of 64); warp w owns keys 16 w .. 16 w + 15 and
//               computes, per query tile, its 16 x 64 block of S^T = K_0 Q_0^T (lifted by
//               the coarse tiles), P^T, dP^T = V dO^T and dS^T in registers; then
//               dV += P^T dO and dK_0 += dS^T Q_0 with P^T and dS^T as A fragments
//               (a_from_c), dS pooled to level 1 by shuffles, the coarser levels in shared
//               memory, and dK_l += dS_l^T Q_l for l >= 1 by blocks shared out over the warps.
//   BackwardQ   one block per (b h, query tile of 64); warp w owns queries 16 w .. 16 w + 15:
//               a first pass over the key tiles sums D = sum_j p dp; the second forms
//               S, P, dP = dO V^T, dS per key tile; dQ_0 += dS K_0; dQ_l += dS_l K_l;
//               dalpha's partial sums: level 0 per lane, coarse levels per coarse row.
//               Launched first: BackwardKV reads its D.
// The gradients accumulate in shared memory (float32, [rows][dk]): each 16 x 8 block is
// owned by one warp, which loads it as the C operand and stores the product back.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "attention_v2.h"
#include "block_reduce.h"
#include "error.h"

namespace hkt::cuda {

namespace detail {
namespace v2 {

// Shared memory of both backward kernels (keys = true: BackwardKV, with dV).
struct BackwardSmem {
  std::uint16_t* q[kMaxAttentionLevels];  // Q_l rows, bf16 [staged(l)][ld]
  std::uint16_t* k[kMaxAttentionLevels];  // K_l rows
  std::uint16_t* dout;                    // dO rows [64][ld]
  std::uint16_t* v;                       // V rows [64][ld]
  float* coarse[kMaxAttentionLevels];     // l >= 1: Q_l K_l^T [rows(l)][rows(l)], unscaled
  float* ds[kMaxAttentionLevels];         // l >= 1: dS_l [staged(l)][staged(l)], zeros past rows(l)
  float* acc[kMaxAttentionLevels];        // dK_l or dQ_l of the tile, unscaled [staged(l)][dk]
  float* dv;                              // BackwardKV: dV of the key tile [64][dk]
  double* dalpha;                         // BackwardQ: per coarse row of levels >= 1, then per warp for level 0
  float *keep, *lse, *D;                  // [64]
  int ld;

  HKT_HOST_DEVICE std::size_t carve(unsigned char* base, int L, int dk, bool keys) {
    Carve c{base};
    ld = dk + 8;
    int coarse_rows = 0;
    HKT_FOR_LEVELS(l, L) {
      const int st = staged_rows(l), n = level_rows(l);
      q[l] = c.take<std::uint16_t>(st * ld);
      k[l] = c.take<std::uint16_t>(st * ld);
      coarse[l] = l == 0 ? nullptr : c.take<float>(n * n);
      ds[l] = l == 0 ? nullptr : c.take<float>(st * st);
      acc[l] = c.take<float>(st * dk);
      if (l >= 1) coarse_rows += n;
    }
    dout = c.take<std::uint16_t>(kTile * ld);
    v = c.take<std::uint16_t>(kTile * ld);
    dv = keys ? c.take<float>(kTile * dk) : nullptr;
    dalpha = keys ? nullptr : c.take<double>(coarse_rows + kWarps);
    keep = c.take<float>(kTile);
    lse = c.take<float>(kTile);
    D = c.take<float>(kTile);
    return c.bytes;
  }
};

HKT_DEVICE void fill_zero(float* p, int n) {
  for (int x = static_cast<int>(dev::thread_index()); x < n; x += static_cast<int>(kThreads)) p[x] = 0.0f;
}

// The query side of a tile pair: Q_l rows, dO rows, and each row's LSE and (D != nullptr)
// D (rows past T: LSE = -inf, so p = 0 there).
HKT_DEVICE void stage_query_side(const BackwardSmem& m, const Attn<float>& a, std::int64_t bh, std::int64_t q0, int dk,
                                 const float* grad_out, const double* lse, const double* D) {
  stage_queries(m.q, m.ld, a, bh, q0, dk);
  stage_rows(m.dout, m.ld, grad_out + bh * a.T * a.dh, q0, kTile, kTile, a.T, a.dh, dk, [](int) { return false; });
  for (int r = static_cast<int>(dev::thread_index()); r < kTile; r += static_cast<int>(kThreads)) {
    const bool real = q0 + r < a.T;
    m.lse[r] = real ? static_cast<float>(lse[bh * a.T + q0 + r]) : neg_inf<float>();
    if (D) m.D[r] = real ? static_cast<float>(D[bh * a.T + q0 + r]) : 0.0f;
  }
}

// The key side: keep, K_l rows and V rows (zeros for masked keys). Ends after a barrier.
HKT_DEVICE void stage_key_side(const BackwardSmem& m, const Attn<float>& a, std::int64_t bh, std::int64_t k0, int dk) {
  stage_keep(m.keep, a, bh / a.H, k0);
  dev::sync_threads();
  const float* keep = m.keep;
  stage_keys(m.k, m.ld, a, bh, k0, dk, keep);
  stage_rows(m.v, m.ld, a.v + bh * a.T * a.dh, k0, kTile, kTile, a.T, a.dh, dk, [=](int c) { return keep[c] == 0.0f; });
  dev::sync_threads();
}

// A warp's 16 x 64 product out[nt] = A[row0 .. row0 + 15, :] B^T[8 nt .., :]^T over K = dk,
// as 8 C fragments (a score-like tile: rows of A against rows of B^T).
template <class VA, class VB>
HKT_DEVICE void warp_scores(float (&out)[kTile / 8][4], const VA& a, const VB& bt, int row0, int dk, unsigned lane) {
  HKT_UNROLL
  for (int nt = 0; nt < kTile / 8; ++nt) {
    for (int i = 0; i < 4; ++i) out[nt][i] = 0.0f;
    block_product(out[nt], a, bt, row0, 8 * nt, dk, lane);
  }
}

// acc[row0 .. row0 + 15][0 .. dk) += C B, with the warp's 16 x 64 C fragments (rounded to
// bf16) as A and B [64 x dk] read from bt = B^T; acc is float32 [..][dk] in shared memory,
// these rows owned by this warp.
template <class VB>
HKT_DEVICE void warp_accumulate(float* acc, int dk, const float (&c)[kTile / 8][4], const VB& bt, int row0,
                                unsigned lane) {
  for (int nd = 0; nd < dk / 8; ++nd) {
    float sum[4];
    for (int i = 0; i < 4; ++i)
      sum[i] = acc[(row0 + MmaLayout::c_row(lane, i)) * dk + 8 * nd + MmaLayout::c_col(lane, i)];
    HKT_UNROLL
    for (int kk = 0; kk < kTile / 16; ++kk) {
      MmaFragments f{};
      a_from_c(f.a, c[2 * kk], c[2 * kk + 1]);
      b_fragment(f.b, bt, 8 * nd, 16 * kk, lane);
      float out[4];
      mma_m16n8k16(out, f, sum);
      for (int i = 0; i < 4; ++i) sum[i] = out[i];
    }
    for (int i = 0; i < 4; ++i)
      acc[(row0 + MmaLayout::c_row(lane, i)) * dk + 8 * nd + MmaLayout::c_col(lane, i)] = sum[i];
  }
}

// acc_l += A B for each level l >= 1: A [staged(l) x staged(l)] read through `a_of(l)`
// (dS_l or dS_l^T), B [staged(l) x dk] through `bt_of(l)` (B^T); 16 x 8 blocks of acc_l
// shared out over the warps, each summed over K in order from its stored value.
template <class AOf, class BtOf>
HKT_DEVICE void coarse_accumulate(const BackwardSmem& m, int L, int dk, AOf a_of, BtOf bt_of, unsigned warp,
                                  unsigned lane) {
  HKT_FOR_LEVELS_FROM(l, 1, L) {
    const int st = staged_rows(l), mt = st / 16, nt = dk / 8;
    for (int blk = static_cast<int>(warp); blk < mt * nt; blk += kWarps) {
      const int br = 16 * (blk / nt), bc = 8 * (blk % nt);
      float sum[4];
      for (int i = 0; i < 4; ++i)
        sum[i] = m.acc[l][(br + MmaLayout::c_row(lane, i)) * dk + bc + MmaLayout::c_col(lane, i)];
      block_product(sum, a_of(l), bt_of(l), br, bc, st, lane);
      for (int i = 0; i < 4; ++i)
        m.acc[l][(br + MmaLayout::c_row(lane, i)) * dk + bc + MmaLayout::c_col(lane, i)] = sum[i];
    }
  }
}

// Level 1's dS from a warp's 16 x 64 fragments of level 0's: each lane adds its two
// neighbouring columns, and the lane holding the next row (lane ^ 4: group g + 1) adds
// its pair; lanes of even g write. `transposed` says the fragments hold dS^T (rows are
// keys): the pooled value then goes to ds1[w][u]'s transpose, ds1[u][w].
HKT_DEVICE void pool_level1(float* ds1, const float (&ds)[kTile / 8][4], int row0, bool transposed, unsigned lane) {
  const int g = static_cast<int>(lane / 4), t = static_cast<int>(lane % 4), st = staged_rows(1);
  HKT_UNROLL
  for (int nt = 0; nt < kTile / 8; ++nt)
    for (int h2 = 0; h2 < 2; ++h2) {
      const float mine = ds[nt][2 * h2] + ds[nt][2 * h2 + 1];
      const float other = dev::shfl_xor(kFullWarp, mine, 4u);
      if (g % 2 != 0) continue;
      const int row = (row0 + g + 8 * h2) / 2, col = 4 * nt + t;  // fragment row / 2, column / 2
      ds1[transposed ? col * st + row : row * st + col] = mine + other;
    }
}

// dS_l for l = 2 .. L - 1 from the level below (2 x 2 sums in a fixed order), a barrier
// after each level.
HKT_DEVICE void pool_coarser(const BackwardSmem& m, int L) {
  HKT_FOR_LEVELS_FROM(l, 2, L) {
    const int n = level_rows(l), st = staged_rows(l), below = staged_rows(l - 1);
    const float* src = m.ds[l - 1];
    for (int x = static_cast<int>(dev::thread_index()); x < n * n; x += static_cast<int>(kThreads)) {
      const int u = x / n, w = x % n;
      const float* p = src + (2 * u) * below + 2 * w;
      m.ds[l][u * st + w] = (p[0] + p[1]) + (p[below] + p[below + 1]);
    }
    dev::sync_threads();
  }
}

// The lifted score of fragment element (query r, key c) from level 0's product s0 (Q_0 . K_0),
// or -inf where masked (padding, or causal with key k0 + c after query q0 + r).
HKT_DEVICE float lifted(const BackwardSmem& m, const Attn<float>& a, const float* alpha_scale, float s0,
                        std::int64_t q0, std::int64_t k0, int r, int c) {
  if (m.keep[c] == 0.0f || (a.causal && k0 + c > q0 + r)) return neg_inf<float>();
  float v = alpha_scale[0] * s0;
  HKT_FOR_LEVELS_FROM(l, 1, a.L) v += alpha_scale[l] * m.coarse[l][(r >> l) * level_rows(l) + (c >> l)];
  return v;
}

// p = e^(v - LSE[r]), 0 where masked or the row has no live key.
HKT_DEVICE float probability(float v, float lse) {
  return v == neg_inf<float>() || lse == neg_inf<float>() ? 0.0f : std::exp(v - lse);
}

struct BackwardKV {
  static constexpr unsigned kThreads = v2::kThreads;
  Attn<float> a;
  int dk;
  const double* lse;
  const double* D;
  const float* grad_out;
  float* dk_out[kMaxAttentionLevels];
  float* dv;

  HKT_DEVICE void operator()() const {
    BackwardSmem m{};
    m.carve(dev::dynamic_shared<unsigned char>(), a.L, dk, true);
    const std::int64_t bh = dev::block_x(), h = bh % a.H, k0 = std::int64_t{dev::block_y()} * kTile;
    const unsigned tid = dev::thread_index(), lane = tid % 32, warp = tid / 32;
    const int g = static_cast<int>(lane / 4), t = static_cast<int>(lane % 4);
    const int row0 = 16 * static_cast<int>(warp);  // the warp's first key in the tile

    HKT_FOR_LEVELS(l, a.L) {
      fill_zero(m.acc[l], staged_rows(l) * dk);
      if (l >= 1) fill_zero(m.ds[l], staged_rows(l) * staged_rows(l));
    }
    fill_zero(m.dv, kTile * dk);
    stage_key_side(m, a, bh, k0, dk);
    float alpha_scale[kMaxAttentionLevels];
    HKT_FOR_LEVELS(l, a.L) alpha_scale[l] = a.alpha[h * a.L + l] * a.scale;

    const std::int64_t query_tiles = (a.T + kTile - 1) / kTile;
    for (std::int64_t qt = a.causal ? k0 / kTile : 0; qt < query_tiles;
         ++qt) {  // earlier queries see none of these keys
      const std::int64_t q0 = qt * kTile;
      dev::sync_threads();  // the previous query tile is no longer read
      stage_query_side(m, a, bh, q0, dk, grad_out, lse, D);
      dev::sync_threads();
      coarse_scores(m.coarse, m.q, m.k, m.ld, a.L, dk, warp, lane);
      // The warp's 16 keys x 64 queries: S^T = K_0 Q_0^T, dP^T = V dO^T.
      float p[kTile / 8][4], ds[kTile / 8][4];
      warp_scores(p, rows_of(m.k[0], m.ld), rows_of(m.q[0], m.ld), row0, dk, lane);
      warp_scores(ds, rows_of(m.v, m.ld), rows_of(m.dout, m.ld), row0, dk, lane);
      dev::sync_threads();  // every warp's coarse tiles are written
      HKT_UNROLL
      for (int nt = 0; nt < kTile / 8; ++nt)
        for (int i = 0; i < 4; ++i) {
          const int c = row0 + g + 8 * (i / 2), r = 8 * nt + 2 * t + i % 2;  // key c, query r
          p[nt][i] = probability(lifted(m, a, alpha_scale, p[nt][i], q0, k0, r, c), m.lse[r]);
          ds[nt][i] = p[nt][i] * (ds[nt][i] - m.D[r]);
        }
      // dV += P^T dO (B^T = dO^T), dK_0 += dS^T Q_0 (B^T = Q_0^T): this warp's rows.
      warp_accumulate(m.dv, dk, p, columns_of(m.dout, m.ld), row0, lane);
      warp_accumulate(m.acc[0], dk, ds, columns_of(m.q[0], m.ld), row0, lane);
      if (a.L > 1) {
        pool_level1(m.ds[1], ds, row0, true, lane);
        dev::sync_threads();
        pool_coarser(m, a.L);
        // dK_l += dS_l^T Q_l: A = dS_l read transposed, B^T = Q_l^T.
        coarse_accumulate(
            m, a.L, dk, [&](int l) { return columns_of(static_cast<const float*>(m.ds[l]), staged_rows(l)); },
            [&](int l) { return columns_of(static_cast<const std::uint16_t*>(m.q[l]), m.ld); }, warp, lane);
      }
    }
    dev::sync_threads();
    for (int x = static_cast<int>(tid); x < kTile * dk; x += static_cast<int>(kThreads)) {
      const int c = x / dk, d = x % dk;
      if (k0 + c < a.T && d < a.dh) dv[(bh * a.T + k0 + c) * a.dh + d] = m.dv[x];
    }
    HKT_FOR_LEVELS(l, a.L) {
      const std::int64_t w0 = k0 >> l;
      for (int x = static_cast<int>(tid); x < level_rows(l) * dk; x += static_cast<int>(kThreads)) {
        const int w = x / dk, d = x % dk;
        if (w0 + w < a.Tl[l] && d < a.dh) dk_out[l][(bh * a.Tl[l] + w0 + w) * a.dh + d] = alpha_scale[l] * m.acc[l][x];
      }
    }
  }
};

struct BackwardQ {
  static constexpr unsigned kThreads = v2::kThreads;
  Attn<float> a;
  int dk;
  const double* lse;
  double* D;  // [B, H, T]: written here, read by BackwardKV
  const float* grad_out;
  float* dq_out[kMaxAttentionLevels];
  double* dalpha_parts;  // [B H, query_tiles, L], or nullptr
  std::int64_t query_tiles;

  HKT_DEVICE void operator()() const {
    BackwardSmem m{};
    m.carve(dev::dynamic_shared<unsigned char>(), a.L, dk, false);
    const std::int64_t bh = dev::block_x(), h = bh % a.H, qt = dev::block_y(), q0 = qt * kTile;
    const unsigned tid = dev::thread_index(), lane = tid % 32, warp = tid / 32;
    const int g = static_cast<int>(lane / 4), t = static_cast<int>(lane % 4);
    const int row0 = 16 * static_cast<int>(warp);  // the warp's first query in the tile
    int coarse_rows = 0;                           // rows of levels >= 1 in m.dalpha
    HKT_FOR_LEVELS_FROM(l, 1, a.L) coarse_rows += level_rows(l);

    HKT_FOR_LEVELS(l, a.L) {
      fill_zero(m.acc[l], staged_rows(l) * dk);
      if (l >= 1) fill_zero(m.ds[l], staged_rows(l) * staged_rows(l));
    }
    for (int x = static_cast<int>(tid); x < coarse_rows + kWarps; x += static_cast<int>(kThreads)) m.dalpha[x] = 0.0;
    stage_query_side(m, a, bh, q0, dk, grad_out, lse, nullptr);
    float alpha_scale[kMaxAttentionLevels];
    HKT_FOR_LEVELS(l, a.L) alpha_scale[l] = a.alpha[h * a.L + l] * a.scale;
    double dalpha0 = 0.0;  // this lane's share of sum ds S_0

    const std::int64_t key_tiles = a.causal ? qt + 1 : (a.T + kTile - 1) / kTile;
    // Pass 0 sums D = sum_j p dp over every key tile (this lane's share of rows g and
    // g + 8, in double); pass 1 forms ds with it and the gradients.
    for (int pass = 0; pass < 2; ++pass) {
      double row_dot[2] = {0.0, 0.0};
      for (std::int64_t kt = 0; kt < key_tiles; ++kt) {
        const std::int64_t k0 = kt * kTile;
        dev::sync_threads();  // the previous key tile is no longer read
        stage_key_side(m, a, bh, k0, dk);
        coarse_scores(m.coarse, m.q, m.k, m.ld, a.L, dk, warp, lane);
        // The warp's 16 queries x 64 keys: S = Q_0 K_0^T, dP = dO V^T.
        float s[kTile / 8][4], ds[kTile / 8][4];
        warp_scores(s, rows_of(m.q[0], m.ld), rows_of(m.k[0], m.ld), row0, dk, lane);
        warp_scores(ds, rows_of(m.dout, m.ld), rows_of(m.v, m.ld), row0, dk, lane);
        dev::sync_threads();  // every warp's coarse tiles are written
        HKT_UNROLL
        for (int nt = 0; nt < kTile / 8; ++nt)
          for (int i = 0; i < 4; ++i) {
            const int r = row0 + g + 8 * (i / 2), c = 8 * nt + 2 * t + i % 2;  // query r, key c
            const float p = probability(lifted(m, a, alpha_scale, s[nt][i], q0, k0, r, c), m.lse[r]);
            if (pass == 0) {
              row_dot[i / 2] += static_cast<double>(p) * static_cast<double>(ds[nt][i]);
              continue;
            }
            ds[nt][i] = p * (ds[nt][i] - m.D[r]);
            dalpha0 += static_cast<double>(ds[nt][i]) * static_cast<double>(a.scale * s[nt][i]);
          }
        if (pass == 0) continue;
        // dQ_0 += dS K_0 (B^T = K_0^T): this warp's rows.
        warp_accumulate(m.acc[0], dk, ds, columns_of(m.k[0], m.ld), row0, lane);
        if (a.L > 1) {
          pool_level1(m.ds[1], ds, row0, false, lane);
          dev::sync_threads();
          pool_coarser(m, a.L);
          // dQ_l += dS_l K_l: A = dS_l, B^T = K_l^T.
          coarse_accumulate(
              m, a.L, dk, [&](int l) { return rows_of(static_cast<const float*>(m.ds[l]), staged_rows(l)); },
              [&](int l) { return columns_of(static_cast<const std::uint16_t*>(m.k[l]), m.ld); }, warp, lane);
          // dalpha of the coarse levels: coarse row u of level l (one thread each) adds
          // sum_w dS_l[u, w] S_l[u, w].
          if (dalpha_parts) {
            int first = 0;
            HKT_FOR_LEVELS_FROM(l, 1, a.L) {
              const int n = level_rows(l), st = staged_rows(l);
              const int u = static_cast<int>(tid) - first;
              if (u >= 0 && u < n) {
                double sum = 0.0;
                for (int w = 0; w < n; ++w)
                  sum += static_cast<double>(m.ds[l][u * st + w]) * static_cast<double>(m.coarse[l][u * n + w]);
                m.dalpha[first + u] += static_cast<double>(a.scale) * sum;
              }
              first += n;
            }
          }
        }
      }
      if (pass == 0)  // a row's D over its 4 lanes (a fixed butterfly); the next barrier publishes m.D
        for (int h2 = 0; h2 < 2; ++h2) {
          for (unsigned mask = 1; mask <= 2; mask *= 2) row_dot[h2] += dev::shfl_xor(kFullWarp, row_dot[h2], mask);
          const int r = row0 + g + 8 * h2;
          if (t == 0) m.D[r] = static_cast<float>(row_dot[h2]);
          if (t == 0 && q0 + r < a.T) D[bh * a.T + q0 + r] = row_dot[h2];
        }
    }
    // Level 0's dalpha: the warp's lanes summed by a fixed butterfly, one slot per warp.
    dalpha0 = warp_sum(dalpha0);
    if (lane == 0) m.dalpha[coarse_rows + warp] = dalpha0;
    dev::sync_threads();
    HKT_FOR_LEVELS(l, a.L) {
      const std::int64_t u0 = q0 >> l;
      for (int x = static_cast<int>(tid); x < level_rows(l) * dk; x += static_cast<int>(kThreads)) {
        const int u = x / dk, d = x % dk;
        if (u0 + u < a.Tl[l] && d < a.dh) dq_out[l][(bh * a.Tl[l] + u0 + u) * a.dh + d] = alpha_scale[l] * m.acc[l][x];
      }
    }
    if (dalpha_parts && static_cast<int>(tid) < a.L) {  // thread l sums level l's parts in order
      const int l = static_cast<int>(tid);
      int first = l == 0 ? coarse_rows : 0, count = l == 0 ? kWarps : level_rows(l);
      for (int j = 1; j < l; ++j) first += level_rows(j);
      double sum = 0.0;
      for (int x = 0; x < count; ++x) sum += m.dalpha[first + x];
      dalpha_parts[(bh * query_tiles + qt) * a.L + l] = sum;
    }
  }
};

std::size_t backward_bytes(int L, int dk, bool keys) {
  BackwardSmem sizes{};
  return sizes.carve(nullptr, L, dk, keys);
}

}  // namespace v2
}  // namespace detail

void check_attention_backward_v2(const AttentionArgs& args) {
  using namespace detail::v2;
  check_v2_launch("hkt_attention_backward_v2", args, 0);  // d_h is checked before it sizes anything
  const int dkp = padded_dh(args.dh);
  check_v2_launch("hkt_attention_backward_v2", args,
                  std::max(backward_bytes(args.L, dkp, true), backward_bytes(args.L, dkp, false)));
}

void hkt_attention_backward_v2(const AttentionArgs& args, const double* lse, const float* grad_out, float* const* dq,
                               float* const* dk, float* dv, float* dalpha) {
  using namespace detail::v2;
  check_attention_backward_v2(args);
  const int dkp = padded_dh(args.dh);
  const std::size_t kv_bytes = backward_bytes(args.L, dkp, true), q_bytes = backward_bytes(args.L, dkp, false);
  const std::int64_t tiles = (args.T + kTile - 1) / kTile, bh = args.B * args.H;
  if (tiles == 0 || bh == 0) return;
  const detail::Attn<float> a = detail::typed<float>(args);
  const Grid grid{static_cast<unsigned>(bh), static_cast<unsigned>(tiles)};
  const std::int64_t rows = bh * args.T;
  Scratch D(static_cast<std::size_t>(rows) * sizeof(double));  // written by BackwardQ, read by BackwardKV
  double* pd = static_cast<double*>(D.ptr);

  Scratch parts(dalpha ? static_cast<std::size_t>(bh * tiles * args.L) * sizeof(double) : 0);
  BackwardQ q{a, dkp, lse, pd, grad_out, {}, dalpha ? static_cast<double*>(parts.ptr) : nullptr, tiles};
  for (int l = 0; l < args.L; ++l) q.dq_out[l] = dq[l];
  launch_blocks("hkt_attention_v2_backward_q", grid, q_bytes, q);

  BackwardKV kv{a, dkp, lse, pd, grad_out, {}, dv};
  for (int l = 0; l < args.L; ++l) kv.dk_out[l] = dk[l];
  launch_blocks("hkt_attention_v2_backward_kv", grid, kv_bytes, kv);
  if (dalpha) detail::dalpha_reduce_impl(static_cast<const double*>(parts.ptr), dalpha, args.B, args.H, tiles, args.L);
}

}  // namespace hkt::cuda
