// attention_v1.cpp: fused hierarchical attention on the CUDA backend, version 1
// (kernels/attention_dev/NOTES.md): FlashAttention-2's structure in float32 or float64
// on the CUDA cores. Thread blocks stage tiles of Q_l, K_l and V in shared memory and
// reuse them for every row of the tile; the T x T score matrix never exists beyond one
// tile x tile block.
//
// The math (docs/hkt-attention.md section 6). Per head h, query i, key j, with
// masked keys (key_mask = 0, or j > i when causal) at -inf:
//   s[i, j]  = sum_l alpha[h, l] S_l[i >> l, j >> l],  S_l[u, w] = scale Q_l[u] . K_l[w]
//   forward: online softmax over key tiles: O[i] = sum_j p[i, j] V[j], LSE[i] = log sum_j e^s
//   backward: p = e^(s - LSE), dp = dO[i] . V[j], ds = p (dp - D[i]), D[i] = dO[i] . O[i]
//     dV[j]        = sum_i p[i, j] dO[i]
//     dS_l[u, w]   = sum_{i >> l = u, j >> l = w} ds[i, j]           (ds pooled to level l)
//     dQ_l[u]      = alpha_l scale sum_w dS_l[u, w] K_l[w]
//     dK_l[w]      = alpha_l scale sum_u dS_l[u, w] Q_l[u]
//     dalpha[h, l] = sum_{b, u, w} dS_l[u, w] S_l[u, w]
// Level l's score tile is computed once per coarse pair (u, w) and lifted to the 4^l fine
// pairs under it: that is where HKT's "at most 4/3 of the score cost" comes from.
//
// Kernels (each a struct run by launch_blocks, block.h; 256 threads per block):
//   Forward      one block per (b h, query tile): O, LSE.
//   BackwardKV   one block per (b h, key tile): dV and dK_l of the tile's keys, looping
//                over the query tiles that can see them.
//   BackwardQ    one block per (b h, query tile): dQ_l of the tile's queries and the
//                tile's dalpha partial sums, looping over the key tiles it sees.
// Every output element is owned by one thread of one block and summed in a fixed order:
// deterministic, no atomics. The price is recomputing the scores in both backward
// kernels, as FlashAttention-2 does.
//
// Tiles. Query and key tiles have the same size `tile` (64, 32 or 16: the largest whose
// shared memory fits a block on the device: 227 KiB on an H100/H200, 163 KiB on an A100). A tile is a multiple of
// 2^(L-1) (L <= 4, tile >= 16), so a tile starting at token t0 covers exactly the coarse
// rows [t0 >> l, (t0 + tile) >> l) of level l: coarse tiles line up with fine ones, and
// the pooled dS_l of a tile is complete within it. Causal: key tiles after the query tile
// are skipped (query and key tiles have the same size, so tile kt > qt is fully masked).
//
// Shared-memory layouts (per block; `dp` is d_h rounded up to a multiple of 4, with
// zeros past d_h):
//   Q_l, K_l, V, dO tiles are stored transposed, [dp][rows + 1]: the products below read
//   one k-slice of 4 consecutive rows per step, and the +1 row keeps the transposing
//   stores and the per-row reads of different d free of bank conflicts.
//   Score, probability and dS tiles are row-major [rows][cols].
//
// All products go through one routine, tile_product: an M x N output split into 4 x 4
// micro-tiles, each accumulated in registers by one thread over K (16 FMAs per 8 shared
// loads), then handed to an epilogue that stores or accumulates it.
#include <algorithm>
#include <cmath>
#include <string>

#include "attention_common.h"
#include "block.h"
#include "error.h"

namespace hkt::cuda {

namespace detail {
namespace v1 {

constexpr unsigned kThreads = 256;

// ---- shared-memory carving ---------------------------------------------------------------

// The sizes one block works with.
struct Shape {
  int tile;  // query and key tile (fine rows)
  int dp;    // d_h padded to a multiple of 4
  int L;
  HKT_HOST_DEVICE int rows(int l) const { return tile >> l; }      // rows of level l in a tile
  HKT_HOST_DEVICE int ld(int l) const { return (tile >> l) + 1; }  // stride of a transposed tile
};

// Transposed tiles of every level: [dp][rows(l) + 1] each.
template <class E>
struct LevelTiles {
  E* t[kMaxAttentionLevels];
  HKT_HOST_DEVICE void take(Carve& c, const Shape& s) {
    HKT_FOR_LEVELS(l, s.L) t[l] = c.take<E>(static_cast<std::int64_t>(s.dp) * s.ld(l));
  }
};

// Square score-like tiles of every level: [rows(l)][rows(l)] each.
template <class E>
struct LevelScores {
  E* t[kMaxAttentionLevels];
  HKT_HOST_DEVICE void take(Carve& c, const Shape& s) {
    HKT_FOR_LEVELS(l, s.L) t[l] = c.take<E>(static_cast<std::int64_t>(s.rows(l)) * s.rows(l));
  }
};

// Row accumulators of every level: [rows(l)][dp] each (dQ_l or dK_l of the tile).
template <class E>
struct LevelRows {
  E* t[kMaxAttentionLevels];
  HKT_HOST_DEVICE void take(Carve& c, const Shape& s) {
    HKT_FOR_LEVELS(l, s.L) t[l] = c.take<E>(static_cast<std::int64_t>(s.rows(l)) * s.dp);
  }
};

// ---- device building blocks --------------------------------------------------------------

// acc[i][j] = sum_{k < K} A(k, i0 + i) B(k, j0 + j) for i, j < 4, where A(k, i) = A[k ak + i ai]
// and B(k, j) = B[k bk + j bj], accumulated in Acc (E, or double where a difference cancels). Rows past M and columns
// past N read row M-1 / column N-1 (valid memory) and are dropped by the caller.
template <class Acc, class EA, class EB>
HKT_DEVICE void micro_tile(Acc (&acc)[4][4], const EA* A, int ak, int ai, int i0, int M, const EB* B, int bk, int bj,
                           int j0, int N, int K) {
  int ia[4], jb[4];
  for (int x = 0; x < 4; ++x) {
    ia[x] = (i0 + x < M ? i0 + x : M - 1) * ai;
    jb[x] = (j0 + x < N ? j0 + x : N - 1) * bj;
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = Acc(0);
  for (int k = 0; k < K; ++k) {
    EA a[4];
    EB b[4];
    for (int x = 0; x < 4; ++x) {
      a[x] = A[k * ak + ia[x]];
      b[x] = B[k * bk + jb[x]];
    }
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] += static_cast<Acc>(a[i]) * static_cast<Acc>(b[j]);
  }
}

// out(i, j) = sum_k A(k, i) B(k, j) for an M x N output, 4 x 4 micro-tiles spread over the
// block's threads; epilogue(i, j, value) stores or accumulates each element. The thread
// that owns an element depends only on (M, N), so a later call with the same (M, N)
// finds its elements in the same thread, and every sum runs in k order: deterministic.
template <class Acc, class EA, class EB, class Epilogue>
HKT_DEVICE void tile_product(int M, int N, int K, const EA* A, int ak, int ai, const EB* B, int bk, int bj,
                             Epilogue epilogue) {
  const int mt = (M + 3) / 4, nt = (N + 3) / 4;
  for (int w = static_cast<int>(dev::thread_index()); w < mt * nt; w += static_cast<int>(kThreads)) {
    const int i0 = (w / nt) * 4, j0 = (w % nt) * 4;
    Acc acc[4][4];
    micro_tile(acc, A, ak, ai, i0, M, B, bk, bj, j0, N, K);
    for (int i = 0; i < 4 && i0 + i < M; ++i)
      for (int j = 0; j < 4 && j0 + j < N; ++j) epilogue(i0 + i, j0 + j, acc[i][j]);
  }
}

// Rows [first, first + n) of a row-major [rows_total, dh] matrix into a transposed tile
// [dp][n + 1]; zeros past rows_total, past dh, and for rows where zero_row(r) holds
// (masked keys: their K and V never reach a product, even when they hold NaN).
template <class E, class ZeroRow>
HKT_DEVICE void load_transposed(E* dst, const E* src, std::int64_t first, int n, std::int64_t rows_total,
                                std::int64_t dh, int dp, ZeroRow zero_row) {
  for (int x = static_cast<int>(dev::thread_index()); x < n * dp; x += static_cast<int>(kThreads)) {
    const int r = x / dp, d = x % dp;
    const std::int64_t g = first + r;
    E value = E(0);
    if (g < rows_total && d < dh && !zero_row(r)) value = src[g * dh + d];
    dst[d * (n + 1) + r] = value;
  }
}

// Fills n elements with a value.
template <class E>
HKT_DEVICE void fill(E* dst, std::int64_t n, E value) {
  for (std::int64_t x = dev::thread_index(); x < n; x += kThreads) dst[x] = value;
}

// Whether key j of sequence b is a real key (inside T and not padding).
template <class E>
HKT_DEVICE bool key_live(const Attn<E>& a, std::int64_t b, std::int64_t j) {
  return j < a.T && (a.keep == nullptr || a.keep[b * a.T + j] != 0);
}

// Loads the key tile [k0, k0 + tile): keep[c] (1 live, 0 masked), then every level's K_l
// and V, transposed. Rows with no live key are zeros: a masked key's K and V never reach
// a product, even when they hold NaN. Coarse row w of level l covers tile columns
// [w << l, (w + 1) << l) (the tile is a multiple of 2^l).
template <class E>
HKT_DEVICE void load_keys(const Attn<E>& a, const Shape& s, std::int64_t bh, std::int64_t k0, E* keep,
                          const LevelTiles<E>& kT, E* vT) {
  const std::int64_t b = bh / a.H;
  for (int c = static_cast<int>(dev::thread_index()); c < s.tile; c += static_cast<int>(kThreads))
    keep[c] = key_live(a, b, k0 + c) ? E(1) : E(0);
  dev::sync_threads();
  HKT_FOR_LEVELS(l, s.L)
  load_transposed(kT.t[l], a.k[l] + bh * a.Tl[l] * a.dh, k0 >> l, s.rows(l), a.Tl[l], a.dh, s.dp, [=](int w) {
    for (int c = w << l; c < (w + 1) << l; ++c)
      if (keep[c] != E(0)) return false;
    return true;
  });
  load_transposed(vT, a.v + bh * a.T * a.dh, k0, s.tile, a.T, a.dh, s.dp, [=](int c) { return keep[c] == E(0); });
}

// Loads every level's Q_l rows of the query tile starting at q0, transposed.
template <class E>
HKT_DEVICE void load_queries(const Attn<E>& a, const Shape& s, std::int64_t bh, std::int64_t q0,
                             const LevelTiles<E>& qT) {
  HKT_FOR_LEVELS(l, s.L)
  load_transposed(qT.t[l], a.q[l] + bh * a.Tl[l] * a.dh, q0 >> l, s.rows(l), a.Tl[l], a.dh, s.dp,
                  [](int) { return false; });
}

// S_l = scale Q_l K_l^T for every level, into sl.t[l] [rows(l)][rows(l)], summed in S:
// the element type in the forward, double in the backward (see score_gradients).
template <class S, class E>
HKT_DEVICE void level_scores(const Attn<E>& a, const Shape& s, const LevelTiles<E>& qT, const LevelTiles<E>& kT,
                             const LevelScores<S>& sl) {
  HKT_FOR_LEVELS(l, s.L) {
    const int n = s.rows(l);
    S* out = sl.t[l];
    const S scale = static_cast<S>(a.scale);
    tile_product<S>(n, n, static_cast<int>(a.dh), qT.t[l], s.ld(l), 1, kT.t[l], s.ld(l), 1,
                    [=](int i, int j, S v) { out[i * n + j] = scale * v; });
  }
}

// The fused score of tile entry (r, c): sum_l alpha_l S_l[r >> l, c >> l], or -inf when
// the key is masked (padding, or causal with key q0 + c after query q0 + r).
template <class S, class E>
HKT_DEVICE S lifted_score(const Attn<E>& a, const Shape& s, const LevelScores<S>& sl, const E* keep, std::int64_t h,
                          std::int64_t q0, std::int64_t k0, int r, int c) {
  if (keep[c] == E(0) || (a.causal && k0 + c > q0 + r)) return neg_inf<S>();
  S v = S(0);
  HKT_FOR_LEVELS(l, s.L) v += static_cast<S>(a.alpha[h * a.L + l]) * sl.t[l][(r >> l) * s.rows(l) + (c >> l)];
  return v;
}

// Combines a value over the `group` consecutive lanes (1, 2, 4, 8 or 16) that share a
// row, with xor-butterfly shuffles: every lane of the group ends with the same result.
template <class E, class Op>
HKT_DEVICE E group_reduce(E v, int group, Op op) {
  for (int m = 1; m < group; m *= 2) v = op(v, dev::shfl_xor(0xffffffffu, v, static_cast<unsigned>(m)));
  return v;
}

// dS_l for l >= 1 from dS_0 = ds.t[0]: each level sums 2 x 2 blocks of the level below
// (a fixed order), with a barrier between levels.
HKT_DEVICE void pool_levels(const Shape& s, const LevelScores<double>& ds) {
  HKT_FOR_LEVELS(l, s.L) {
    if (l == 0) continue;
    const int n = s.rows(l), below = s.rows(l - 1);
    const double* src = ds.t[l - 1];
    for (int x = static_cast<int>(dev::thread_index()); x < n * n; x += static_cast<int>(kThreads)) {
      const int u = x / n, w = x % n;
      const double* p = src + (2 * u) * below + 2 * w;
      ds.t[l][x] = (p[0] + p[1]) + (p[below] + p[below + 1]);
    }
    dev::sync_threads();
  }
}

// ---- the forward kernel ------------------------------------------------------------------

// Shared memory of the forward: transposed Q_l, K_l, V tiles; the level score tiles (level
// 0's becomes the probability tile in place); the O accumulator; keep; per-row factors.
template <class E>
struct ForwardSmem {
  LevelTiles<E> qT, kT;
  E* vT;
  LevelScores<E> sl;
  E *o, *keep, *row;
  HKT_HOST_DEVICE explicit ForwardSmem(Carve& c, const Shape& s) {
    qT.take(c, s);
    kT.take(c, s);
    vT = c.take<E>(static_cast<std::int64_t>(s.dp) * s.ld(0));
    sl.take(c, s);
    o = c.take<E>(static_cast<std::int64_t>(s.tile) * s.dp);
    keep = c.take<E>(s.tile);
    row = c.take<E>(s.tile);
  }
};

template <class E>
struct Forward {
  static constexpr unsigned kThreads = v1::kThreads;
  Attn<E> a;
  Shape s;
  E* out;       // [B, H, T, d_h]
  double* lse;  // [B, H, T], in double whatever E is (see the backward's p)

  HKT_DEVICE void operator()() const {
    Carve carve{dev::dynamic_shared<unsigned char>()};
    const ForwardSmem<E> m(carve, s);
    const std::int64_t bh = dev::block_x(), h = bh % a.H, q0 = std::int64_t{dev::block_y()} * s.tile;
    const int tid = static_cast<int>(dev::thread_index());
    // The online softmax: `group` consecutive threads share row r, each taking every
    // group-th column; its running max and sum live in their registers.
    const int group = static_cast<int>(kThreads) / s.tile, r = tid / group, part = tid % group;
    E row_max = neg_inf<E>();
    double row_sum = 0.0;  // in double: the LSE it gives is the backward's reference

    load_queries(a, s, bh, q0, m.qT);
    fill(m.o, static_cast<std::int64_t>(s.tile) * s.dp, E(0));
    const std::int64_t key_tiles = a.causal ? q0 / s.tile + 1 : (a.T + s.tile - 1) / s.tile;
    for (std::int64_t kt = 0; kt < key_tiles; ++kt) {
      const std::int64_t k0 = kt * s.tile;
      dev::sync_threads();  // the previous tile's K, V and P are no longer read
      load_keys(a, s, bh, k0, m.keep, m.kT, m.vT);
      dev::sync_threads();
      level_scores(a, s, m.qT, m.kT, m.sl);
      dev::sync_threads();
      // Lift the levels into the fused score (level 0's tile, in place), take the row max.
      E* p = m.sl.t[0];
      E tile_max = neg_inf<E>();
      for (int c = part; c < s.tile; c += group) {
        const E v = lifted_score(a, s, m.sl, m.keep, h, q0, k0, r, c);
        p[r * s.tile + c] = v;
        tile_max = v > tile_max ? v : tile_max;
      }
      tile_max = group_reduce(tile_max, group, [](E x, E y) { return x > y ? x : y; });
      const E new_max = tile_max > row_max ? tile_max : row_max;
      // exp(old - new) rescales what was accumulated; a row with no live key yet keeps 0.
      const E correction = new_max == neg_inf<E>() ? E(1) : std::exp(row_max - new_max);
      double tile_sum = 0.0;
      for (int c = part; c < s.tile; c += group) {
        const E v = p[r * s.tile + c];
        const E e = v == neg_inf<E>() ? E(0) : std::exp(v - new_max);
        p[r * s.tile + c] = e;
        tile_sum += static_cast<double>(e);
      }
      tile_sum = group_reduce(tile_sum, group, [](double x, double y) { return x + y; });
      row_sum =
          row_sum *
              (new_max == neg_inf<E>() ? 1.0 : std::exp(static_cast<double>(row_max) - static_cast<double>(new_max))) +
          tile_sum;
      row_max = new_max;
      if (part == 0) m.row[r] = correction;
      dev::sync_threads();
      // O = O * correction + P V.
      E* o = m.o;
      const E* row = m.row;
      const int dp = s.dp;
      tile_product<E>(s.tile, s.dp, s.tile, p, 1, s.tile, m.vT, 1, s.ld(0),
                      [=](int i, int j, E v) { o[i * dp + j] = o[i * dp + j] * row[i] + v; });
    }
    dev::sync_threads();
    if (part == 0) {
      m.row[r] = static_cast<E>(row_sum);
      if (q0 + r < a.T)
        lse[bh * a.T + q0 + r] = row_sum == 0.0 ? neg_inf<double>() : static_cast<double>(row_max) + std::log(row_sum);
    }
    dev::sync_threads();
    for (int x = tid; x < s.tile * a.dh; x += static_cast<int>(kThreads)) {
      const int i = x / static_cast<int>(a.dh), d = x % static_cast<int>(a.dh);
      if (q0 + i < a.T)  // a row with every key masked outputs 0
        out[(bh * a.T + q0 + i) * a.dh + d] = m.row[i] == E(0) ? E(0) : m.o[i * s.dp + d] / m.row[i];
    }
  }
};

// ---- the backward kernels ----------------------------------------------------------------

// What both backward kernels stage per (query tile, key tile) pair: the query side (Q_l,
// dO, LSE, D), the key side (K_l, V, keep), the level scores, P and the dS pyramid.
template <class E>
struct BackwardSmem {
  LevelTiles<E> qT, kT;
  E *doT, *vT;
  LevelScores<double> sl;  // S_l, recomputed in double (see score_gradients)
  LevelScores<double> ds;  // dS_l of every level, in double (see score_gradients)
  double* p;               // P, in double (see score_gradients)
  double* lse;             // the forward's LSE (double)
  E* keep;
  double* D;              // D[r] = dO[r] . O[r], in double like dP (see score_gradients)
  LevelRows<double> acc;  // dK_l (BackwardKV) or dQ_l (BackwardQ) of the block's tile
  E* dv;                  // BackwardKV: dV of the key tile [tile][dp]
  double* dalpha;         // BackwardQ: per level and coarse row, sum_w dS_l S_l
  HKT_HOST_DEVICE BackwardSmem(Carve& c, const Shape& s, bool keys) {
    qT.take(c, s);
    kT.take(c, s);
    doT = c.take<E>(static_cast<std::int64_t>(s.dp) * s.ld(0));
    vT = c.take<E>(static_cast<std::int64_t>(s.dp) * s.ld(0));
    sl.take(c, s);
    ds.take(c, s);
    p = c.take<double>(static_cast<std::int64_t>(s.tile) * s.tile);
    lse = c.take<double>(s.tile);
    D = c.take<double>(s.tile);
    keep = c.take<E>(s.tile);
    acc.take(c, s);
    dv = keys ? c.take<E>(static_cast<std::int64_t>(s.tile) * s.dp) : nullptr;
    dalpha = keys ? nullptr : c.take<double>(static_cast<std::int64_t>(s.tile) * 2);  // sum_l tile >> l < 2 tile
  }
};

// Loads the query tile's dO (transposed), LSE and D rows.
template <class E>
HKT_DEVICE void load_query_grads(const Attn<E>& a, const Shape& s, std::int64_t bh, std::int64_t q0, const double* lse,
                                 const double* D, const E* grad_out, const BackwardSmem<E>& m) {
  load_transposed(m.doT, grad_out + bh * a.T * a.dh, q0, s.tile, a.T, a.dh, s.dp, [](int) { return false; });
  for (int r = static_cast<int>(dev::thread_index()); r < s.tile; r += static_cast<int>(kThreads)) {
    const bool real = q0 + r < a.T;
    m.lse[r] = real ? lse[bh * a.T + q0 + r] : neg_inf<double>();  // rows past T: p = 0
    m.D[r] = real ? D[bh * a.T + q0 + r] : 0.0;
  }
}

// For one (query tile, key tile) pair with both sides loaded: the level scores S_l, the
// probabilities P = exp(s - LSE) (0 where masked or the row is dead) and
// dS = P (dO V^T - D) pooled to every level. Ends after a barrier.
template <class E>
HKT_DEVICE void score_gradients(const Attn<E>& a, const Shape& s, std::int64_t h, std::int64_t q0, std::int64_t k0,
                                const BackwardSmem<E>& m) {
  level_scores(a, s, m.qT, m.kT, m.sl);
  dev::sync_threads();
  for (int x = static_cast<int>(dev::thread_index()); x < s.tile * s.tile; x += static_cast<int>(kThreads)) {
    const int r = x / s.tile, c = x % s.tile;
    const double v = lifted_score(a, s, m.sl, m.keep, h, q0, k0, r, c);
    m.p[x] = v == neg_inf<double>() || m.lse[r] == neg_inf<double>() ? 0.0 : std::exp(v - m.lse[r]);
  }
  dev::sync_threads();
  // The backward's scores, p's exponent, dS and everything summed from dS are in double
  // (v0 does the same). Each row of ds sums to 0, so dp - D cancels, and dS_l, dK_l,
  // dQ_l and dalpha are sums of such cancelling terms: in float, a row whose p is one-hot
  // got ds of 1e-7 instead of 0 (the unfused softmax backward gives 0), and the coarsest
  // level at T <= 2^(L-1), whose gradient is 0 up to rounding, differed from the CPU op
  // by 5.7e-5 of its scale (the harness bound is 5e-5).
  double* ds = m.ds.t[0];
  const double* p = m.p;
  const double* D = m.D;
  const int tile = s.tile;
  tile_product<double>(s.tile, s.tile, static_cast<int>(a.dh), m.doT, s.ld(0), 1, m.vT, s.ld(0), 1,
                       [=](int i, int j, double dp) { ds[i * tile + j] = p[i * tile + j] * (dp - D[i]); });
  dev::sync_threads();
  pool_levels(s, m.ds);
}

// dV and dK_l of one key tile: one block per (b h, key tile).
template <class E>
struct BackwardKV {
  static constexpr unsigned kThreads = v1::kThreads;
  Attn<E> a;
  Shape s;
  const double* lse;
  const double* D;
  const E* grad_out;
  E* dk[kMaxAttentionLevels];
  E* dv;

  HKT_DEVICE void operator()() const {
    Carve carve{dev::dynamic_shared<unsigned char>()};
    const BackwardSmem<E> m(carve, s, true);
    const std::int64_t bh = dev::block_x(), h = bh % a.H, k0 = std::int64_t{dev::block_y()} * s.tile;
    load_keys(a, s, bh, k0, m.keep, m.kT, m.vT);
    HKT_FOR_LEVELS(l, s.L) fill(m.acc.t[l], static_cast<std::int64_t>(s.rows(l)) * s.dp, 0.0);
    fill(m.dv, static_cast<std::int64_t>(s.tile) * s.dp, E(0));
    const std::int64_t query_tiles = (a.T + s.tile - 1) / s.tile;
    for (std::int64_t qt = a.causal ? k0 / s.tile : 0; qt < query_tiles;
         ++qt) {  // earlier queries see none of these keys
      const std::int64_t q0 = qt * s.tile;
      dev::sync_threads();  // the previous query tile is no longer read
      load_queries(a, s, bh, q0, m.qT);
      load_query_grads(a, s, bh, q0, lse, D, grad_out, m);
      dev::sync_threads();
      score_gradients(a, s, h, q0, k0, m);
      // dV[c] += sum_r P[r, c] dO[r]
      E* dvs = m.dv;
      const int dp = s.dp;
      tile_product<E>(s.tile, s.dp, s.tile, m.p, s.tile, 1, m.doT, 1, s.ld(0),
                      [=](int i, int j, E v) { dvs[i * dp + j] += v; });
      // dK_l[w] += sum_u dS_l[u, w] Q_l[u]   (alpha_l scale applied at the end)
      HKT_FOR_LEVELS(l, s.L) {
        double* dk_l = m.acc.t[l];
        const int n = s.rows(l);
        tile_product<double>(n, s.dp, n, m.ds.t[l], n, 1, m.qT.t[l], 1, s.ld(l),
                             [=](int i, int j, double v) { dk_l[i * dp + j] += v; });
      }
    }
    dev::sync_threads();
    const int tid = static_cast<int>(dev::thread_index());
    for (int x = tid; x < s.tile * a.dh; x += static_cast<int>(kThreads)) {
      const int c = x / static_cast<int>(a.dh), d = x % static_cast<int>(a.dh);
      if (k0 + c < a.T) dv[(bh * a.T + k0 + c) * a.dh + d] = m.dv[c * s.dp + d];
    }
    HKT_FOR_LEVELS(l, s.L) {
      const double factor = static_cast<double>(a.alpha[h * a.L + l]) * static_cast<double>(a.scale);
      const std::int64_t w0 = k0 >> l;
      for (int x = tid; x < s.rows(l) * a.dh; x += static_cast<int>(kThreads)) {
        const int w = x / static_cast<int>(a.dh), d = x % static_cast<int>(a.dh);
        if (w0 + w < a.Tl[l])
          dk[l][(bh * a.Tl[l] + w0 + w) * a.dh + d] = static_cast<E>(factor * m.acc.t[l][w * s.dp + d]);
      }
    }
  }
};

// dQ_l of one query tile and the tile's dalpha partial sums: one block per (b h, query tile).
template <class E>
struct BackwardQ {
  static constexpr unsigned kThreads = v1::kThreads;
  Attn<E> a;
  Shape s;
  const double* lse;
  const double* D;
  const E* grad_out;
  E* dq[kMaxAttentionLevels];
  double* dalpha_parts;  // [B H, query_tiles, L], or nullptr
  std::int64_t query_tiles;

  HKT_DEVICE void operator()() const {
    Carve carve{dev::dynamic_shared<unsigned char>()};
    const BackwardSmem<E> m(carve, s, false);
    const std::int64_t bh = dev::block_x(), h = bh % a.H, qt = dev::block_y(), q0 = qt * s.tile;
    const int tid = static_cast<int>(dev::thread_index());
    load_queries(a, s, bh, q0, m.qT);
    load_query_grads(a, s, bh, q0, lse, D, grad_out, m);
    HKT_FOR_LEVELS(l, s.L) fill(m.acc.t[l], static_cast<std::int64_t>(s.rows(l)) * s.dp, 0.0);
    fill(m.dalpha, std::int64_t{2} * s.tile, 0.0);
    const std::int64_t key_tiles = a.causal ? qt + 1 : (a.T + s.tile - 1) / s.tile;
    for (std::int64_t kt = 0; kt < key_tiles; ++kt) {
      const std::int64_t k0 = kt * s.tile;
      dev::sync_threads();  // the previous key tile is no longer read
      load_keys(a, s, bh, k0, m.keep, m.kT, m.vT);
      dev::sync_threads();
      score_gradients(a, s, h, q0, k0, m);
      // dQ_l[u] += sum_w dS_l[u, w] K_l[w]   (alpha_l scale applied at the end)
      const int dp = s.dp;
      HKT_FOR_LEVELS(l, s.L) {
        double* dq_l = m.acc.t[l];
        const int n = s.rows(l);
        tile_product<double>(n, s.dp, n, m.ds.t[l], 1, n, m.kT.t[l], 1, s.ld(l),
                             [=](int i, int j, double v) { dq_l[i * dp + j] += v; });
      }
      // dalpha: coarse row u of level l (one thread each) adds sum_w dS_l[u, w] S_l[u, w].
      if (dalpha_parts) {
        int first = 0;  // rows of the levels before l in m.dalpha
        HKT_FOR_LEVELS(l, s.L) {
          const int n = s.rows(l);
          if (tid >= first && tid < first + n) {
            const int u = tid - first;
            double sum = 0.0;
            for (int w = 0; w < n; ++w) sum += m.ds.t[l][u * n + w] * static_cast<double>(m.sl.t[l][u * n + w]);
            m.dalpha[first + u] += sum;
          }
          first += n;
        }
      }
    }
    dev::sync_threads();
    HKT_FOR_LEVELS(l, s.L) {
      const double factor = static_cast<double>(a.alpha[h * a.L + l]) * static_cast<double>(a.scale);
      const std::int64_t u0 = q0 >> l;
      for (int x = tid; x < s.rows(l) * a.dh; x += static_cast<int>(kThreads)) {
        const int u = x / static_cast<int>(a.dh), d = x % static_cast<int>(a.dh);
        if (u0 + u < a.Tl[l])
          dq[l][(bh * a.Tl[l] + u0 + u) * a.dh + d] = static_cast<E>(factor * m.acc.t[l][u * s.dp + d]);
      }
    }
    if (dalpha_parts && tid < s.L) {  // thread l sums level l's rows in order
      int first = 0;
      for (int l = 0; l < tid; ++l) first += s.rows(l);
      double sum = 0.0;
      for (int u = 0; u < s.rows(tid); ++u) sum += m.dalpha[first + u];
      dalpha_parts[(bh * query_tiles + qt) * s.L + tid] = sum;
    }
  }
};

// ---- the host side: tile choice and launches ----------------------------------------------

template <class E>
std::size_t forward_bytes(const Shape& s) {
  Carve c{nullptr};
  ForwardSmem<E> m(c, s);
  return c.bytes;
}

template <class E>
std::size_t backward_bytes(const Shape& s, bool keys) {
  Carve c{nullptr};
  BackwardSmem<E> m(c, s, keys);
  return c.bytes;
}

// The largest tile (64, 32, 16) whose kernels fit the device's shared memory per block
// (max_shared_memory_per_block: 227 KiB on an H100/H200). There, the forward takes 64
// except float64 at d_h > 64 with L >= 4; the backward takes 32 or 16 at d_h >= 64 with
// L >= 2, and at d_h = 128 (NOTES.md has the sizes). The smallest, 16 >= 2^(L-1), needs
// at most 156 KiB at d_h <= 128.
template <class E>
Shape pick_shape(const AttentionArgs& args, bool backward) {
  const int dp = static_cast<int>((args.dh + 3) / 4 * 4);
  const std::size_t limit = max_shared_memory_per_block();
  for (int tile : {64, 32, 16}) {
    const Shape s{tile, dp, args.L};
    const std::size_t bytes =
        backward ? std::max(backward_bytes<E>(s, true), backward_bytes<E>(s, false)) : forward_bytes<E>(s);
    if (bytes <= limit) return s;
  }
  throw Error("hkt_attention_fused on cuda: d_h = " + std::to_string(args.dh) + ", L = " + std::to_string(args.L) +
              " needs more shared memory per block than the device's " + std::to_string(limit) + " bytes");
}

// The grid (b h, tiles): b h on x (up to 2^31 - 1), tiles on y (at most 65535).
inline Grid grid_of(const AttentionArgs& args, const Shape& s) {
  const std::int64_t tiles = (args.T + s.tile - 1) / s.tile, bh = args.B * args.H;
  check(tiles <= 65535 && bh < (std::int64_t{1} << 31),
        "hkt_attention_fused on cuda: T = " + std::to_string(args.T) + " with B x H = " + std::to_string(bh) +
            " is beyond the kernels' grid (at most 65535 tiles of " + std::to_string(s.tile) + " tokens)");
  return Grid{static_cast<unsigned>(bh), static_cast<unsigned>(tiles)};
}

template <class E>
void forward(const AttentionArgs& args, E* out, double* lse) {
  const Shape s = pick_shape<E>(args, false);
  launch_blocks("hkt_attention_v1_forward", grid_of(args, s), forward_bytes<E>(s),
                Forward<E>{typed<E>(args), s, out, lse});
}

template <class E>
void backward(const AttentionArgs& args, const E* out, const double* lse, const E* grad_out, void* const* dq,
              void* const* dk, E* dv, E* dalpha) {
  const Attn<E> a = typed<E>(args);
  const Shape s = pick_shape<E>(args, true);
  const Grid grid = grid_of(args, s);
  const std::int64_t rows = a.B * a.H * a.T;
  Scratch D(static_cast<std::size_t>(rows) * sizeof(double));
  row_dot_impl(grad_out, out, static_cast<double*>(D.ptr), rows, a.dh);  // D[i] = dO[i] . O[i]
  const double* pd = static_cast<const double*>(D.ptr);

  BackwardKV<E> kv{a, s, lse, pd, grad_out, {}, dv};
  for (int l = 0; l < a.L; ++l) kv.dk[l] = static_cast<E*>(dk[l]);
  launch_blocks("hkt_attention_v1_backward_kv", grid, backward_bytes<E>(s, true), kv);

  const std::int64_t tiles = grid.y;
  Scratch parts(dalpha ? static_cast<std::size_t>(a.B * a.H * tiles * a.L) * sizeof(double) : 0);
  BackwardQ<E> q{a, s, lse, pd, grad_out, {}, dalpha ? static_cast<double*>(parts.ptr) : nullptr, tiles};
  for (int l = 0; l < a.L; ++l) q.dq[l] = static_cast<E*>(dq[l]);
  launch_blocks("hkt_attention_v1_backward_q", grid, backward_bytes<E>(s, false), q);
  if (dalpha) dalpha_reduce_impl(static_cast<const double*>(parts.ptr), dalpha, a.B, a.H, tiles, a.L);
}

}  // namespace v1
}  // namespace detail

}  // namespace hkt::cuda

namespace hkt::cuda {

namespace {
int g_attention_kernel = 1;
}

void set_attention_kernel(int version) {
  check(version >= 0 && version <= 2, "set_attention_kernel: version " + std::to_string(version) +
                                          " does not exist (0: per-row v0, 1: tiled v1, 2: bf16 tensor cores v2)");
  g_attention_kernel = version;
}

int attention_kernel() { return g_attention_kernel; }

void hkt_attention_forward(const AttentionArgs& args, void* out, void* lse, DType dtype, int version) {
  if (version < 0) version = g_attention_kernel;
  if (version == 0) return hkt_attention_forward_v0(args, out, lse, dtype);
  if (version == 2) {
    check(dtype == DType::Float32,
          "hkt_attention_fused on cuda: kernel v2 (bf16) takes float32 tensors, got " + std::string(dtype_name(dtype)));
    return hkt_attention_forward_v2(args, static_cast<float*>(out), static_cast<double*>(lse));
  }
  if (dtype == DType::Float64)
    detail::v1::forward(args, static_cast<double*>(out), static_cast<double*>(lse));
  else
    detail::v1::forward(args, static_cast<float*>(out), static_cast<double*>(lse));
}

void hkt_attention_backward(const AttentionArgs& args, const void* out, const void* lse, const void* grad_out,
                            void* const* dq, void* const* dk, void* dv, void* dalpha, DType dtype, int version) {
  if (version < 0) version = g_attention_kernel;
  if (version == 0) return hkt_attention_backward_v0(args, out, lse, grad_out, dq, dk, dv, dalpha, dtype);
  if (version == 2) {
    check(dtype == DType::Float32,
          "hkt_attention_fused on cuda: kernel v2 (bf16) takes float32 tensors, got " + std::string(dtype_name(dtype)));
    float* dq32[kMaxAttentionLevels] = {};
    float* dk32[kMaxAttentionLevels] = {};
    for (int l = 0; l < args.L; ++l) {
      dq32[l] = static_cast<float*>(dq[l]);
      dk32[l] = static_cast<float*>(dk[l]);
    }
    return hkt_attention_backward_v2(args, static_cast<const double*>(lse), static_cast<const float*>(grad_out), dq32,
                                     dk32, static_cast<float*>(dv), static_cast<float*>(dalpha));
  }
  if (dtype == DType::Float64)
    detail::v1::backward(args, static_cast<const double*>(out), static_cast<const double*>(lse),
                         static_cast<const double*>(grad_out), dq, dk, static_cast<double*>(dv),
                         static_cast<double*>(dalpha));
  else
    detail::v1::backward(args, static_cast<const float*>(out), static_cast<const double*>(lse),
                         static_cast<const float*>(grad_out), dq, dk, static_cast<float*>(dv),
                         static_cast<float*>(dalpha));
}

}  // namespace hkt::cuda
