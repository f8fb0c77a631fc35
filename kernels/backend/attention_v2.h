// attention_v2.h: what the bf16 tensor-core attention kernels share (attention_v2.cpp, the
// forward; attention_v2_backward.cpp, the backward): the tile sizes, the staging of float32
// rows as bf16 tiles in shared memory, the fragment loads of mma.h's layout from a tile
// read in either orientation, and the coarse levels' score tiles.
//
// Every tile in shared memory holds whole m16 / n8 / k16 blocks: rows and columns past
// the data are zeros, so no fragment load needs a bounds check.
#pragma once

#include <cstdint>
#include <string>

#include "attention_common.h"
#include "error.h"
#include "block.h"
#include "mma.h"

namespace hkt::cuda::detail::v2 {

constexpr unsigned kThreads = 128;  // 4 warps
constexpr int kTile = 64;           // query and key tile; a multiple of 2^(L-1) for L <= 4
constexpr int kWarps = kThreads / 32;
constexpr int kMaxDk = 128;  // the largest padded d_h (8 k16 slices)

// d_h rounded up to the k16 of the instruction (zeros past d_h).
HKT_HOST_DEVICE inline int padded_dh(std::int64_t dh) { return static_cast<int>((dh + 15) / 16 * 16); }
// Rows of level l in a tile, and the rows staged for it: at least 16, the instruction's m.
HKT_HOST_DEVICE inline int level_rows(int l) { return kTile >> l; }
HKT_HOST_DEVICE inline int staged_rows(int l) { return level_rows(l) < 16 ? 16 : level_rows(l); }

// The bf16 bits of a tile element: bf16 tiles hold them, float32 tiles (the backward's
// pooled dS) are rounded as they are read.
HKT_DEVICE std::uint16_t bits_of(std::uint16_t x) { return x; }
HKT_DEVICE std::uint16_t bits_of(float x) { return bf16_bits(x); }

// A tile in shared memory read as a matrix: element (r, c) is p[r * rs + c * cs].
// rows_of(p, ld) reads a row-major tile as it is; columns_of(p, ld) reads it transposed
// (element (r, c) is the tile's (c, r)), which is how one staged copy serves both A B and
// A B^T products. A transposed read strides through memory, so a warp's loads may meet
// bank conflicts on the GPU (not measured); each tile is staged once either way.
template <class E>
struct TileView {
  const E* p;
  int rs, cs;
  HKT_DEVICE std::uint16_t bits(int r, int c) const { return bits_of(p[r * rs + c * cs]); }
};
template <class E>
HKT_DEVICE TileView<E> rows_of(const E* p, int ld) {
  return {p, ld, 1};
}
template <class E>
HKT_DEVICE TileView<E> columns_of(const E* p, int ld) {
  return {p, 1, ld};
}

// One lane's A fragment of the 16 x 16 block of `a` at (row0, k0), and its B fragment of
// the 16 x 8 block of B at (k0, col0) read from bt = B^T (row n of B^T is column n of B):
// the layout of mma.h, neighbouring elements packed in pairs.
template <class View>
HKT_DEVICE void a_fragment(std::uint32_t (&frag)[4], const View& a, int row0, int k0, unsigned lane) {
  for (int r = 0; r < 4; ++r) {
    const int row = row0 + MmaLayout::a_row(lane, 2 * r), col = k0 + MmaLayout::a_col(lane, 2 * r);
    frag[r] = pack_bf16x2(a.bits(row, col), a.bits(row, col + 1));
  }
}
template <class View>
HKT_DEVICE void b_fragment(std::uint32_t (&frag)[2], const View& bt, int col0, int k0, unsigned lane) {
  for (int r = 0; r < 2; ++r) {
    const int col = col0 + MmaLayout::b_col(lane, 2 * r), k = k0 + MmaLayout::b_row(lane, 2 * r);
    frag[r] = pack_bf16x2(bt.bits(col, k), bt.bits(col, k + 1));
  }
}

// acc = init + sum over k16 blocks (k0 < K) of A[row0.., k] B[k, col0..] for one 16 x 8
// block, in k order.
template <class VA, class VB>
HKT_DEVICE void block_product(float (&acc)[4], const VA& a, const VB& bt, int row0, int col0, int K, unsigned lane) {
  for (int k0 = 0; k0 < K; k0 += MmaLayout::kK) {
    MmaFragments f{};
    a_fragment(f.a, a, row0, k0, lane);
    b_fragment(f.b, bt, col0, k0, lane);
    float out[4];
    mma_m16n8k16(out, f, acc);
    for (int i = 0; i < 4; ++i) acc[i] = out[i];
  }
}

// The A fragment of k16 slice kk of a warp's 16 x 64 C fragments (c[8][4]): the C
// fragments of n-tiles 2 kk and 2 kk + 1, rounded to bf16, are exactly that A fragment
// (mma.h: C's row g + 8 (i / 2), column 2t + i % 2 of n-tile n are A's row and column of
// the same elements in slice n / 2), so a product's output feeds the next product without
// leaving the registers.
HKT_DEVICE void a_from_c(std::uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack_bf16x2(bf16_bits(lo[0]), bf16_bits(lo[1]));
  a[1] = pack_bf16x2(bf16_bits(lo[2]), bf16_bits(lo[3]));
  a[2] = pack_bf16x2(bf16_bits(hi[0]), bf16_bits(hi[1]));
  a[3] = pack_bf16x2(bf16_bits(hi[2]), bf16_bits(hi[3]));
}

// Rows [first, first + rows) of a row-major [total, dh] float32 matrix into a bf16 tile
// [staged][ld]; zeros past `total`, past `rows` (up to `staged`), past dh (up to dk) and
// for rows where zero_row(r) holds.
template <class ZeroRow>
HKT_DEVICE void stage_rows(std::uint16_t* dst, int ld, const float* src, std::int64_t first, int rows, int staged,
                           std::int64_t total, std::int64_t dh, int dk, ZeroRow zero_row) {
  for (int x = static_cast<int>(dev::thread_index()); x < staged * dk; x += static_cast<int>(kThreads)) {
    const int r = x / dk, d = x % dk;
    const std::int64_t g = first + r;
    float value = 0.0f;
    if (r < rows && g < total && d < dh && !zero_row(r)) value = src[g * dh + d];
    dst[r * ld + d] = bf16_bits(value);
  }
}

// keep[c] = 1 for the live keys of the key tile at k0 (inside T, not padding), else 0.
HKT_DEVICE void stage_keep(float* keep, const Attn<float>& a, std::int64_t b, std::int64_t k0) {
  for (int c = static_cast<int>(dev::thread_index()); c < kTile; c += static_cast<int>(kThreads))
    keep[c] = (k0 + c < a.T && (a.keep == nullptr || a.keep[b * a.T + k0 + c] != 0)) ? 1.0f : 0.0f;
}

// Every level's K_l rows of the key tile at k0 (with keep[] staged): a coarse row with no
// live key under it is zeros, so a masked key's K never reaches a product, even as NaN.
HKT_DEVICE void stage_keys(std::uint16_t* const* k, int ld, const Attn<float>& a, std::int64_t bh, std::int64_t k0,
                           int dk, const float* keep) {
  HKT_FOR_LEVELS(l, a.L)
  stage_rows(k[l], ld, a.k[l] + bh * a.Tl[l] * a.dh, k0 >> l, level_rows(l), staged_rows(l), a.Tl[l], a.dh, dk,
             [=](int w) {
               for (int c = w << l; c < (w + 1) << l; ++c)
                 if (keep[c] != 0.0f) return false;
               return true;  // every key under coarse row w is masked
             });
}

// Every level's Q_l rows of the query tile at q0.
HKT_DEVICE void stage_queries(std::uint16_t* const* q, int ld, const Attn<float>& a, std::int64_t bh, std::int64_t q0,
                              int dk) {
  HKT_FOR_LEVELS(l, a.L)
  stage_rows(q[l], ld, a.q[l] + bh * a.Tl[l] * a.dh, q0 >> l, level_rows(l), staged_rows(l), a.Tl[l], a.dh, dk,
             [](int) { return false; });
}

// Each coarse level's tile, coarse[l][u][w] = Q_l[u] . K_l[w] for l = 1 .. L - 1
// ([rows(l)][rows(l)] float32, not yet scaled), from the staged row-major Q_l and K_l
// tiles: 16 x 8 blocks shared out over the warps (level 3's 8 x 8 as a 16 x 8 product
// whose rows 8..15 are zeros). The caller synchronises before reading them.
HKT_DEVICE void coarse_scores(float* const* coarse, const std::uint16_t* const* q, const std::uint16_t* const* k,
                              int ld, int L, int dk, unsigned warp, unsigned lane) {
  HKT_FOR_LEVELS_FROM(l, 1, L) {
    const int n = level_rows(l), mt = staged_rows(l) / 16, nt = n / 8;
    for (int blk = static_cast<int>(warp); blk < mt * nt; blk += kWarps) {
      const int br = 16 * (blk / nt), bc = 8 * (blk % nt);
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      block_product(acc, rows_of(q[l], ld), rows_of(k[l], ld), br, bc, dk, lane);
      for (int i = 0; i < 4; ++i) {
        const int r = br + MmaLayout::c_row(lane, i), c = bc + MmaLayout::c_col(lane, i);
        if (r < n) coarse[l][r * n + c] = acc[i];
      }
    }
  }
}

// Host side: the checks every v2 entry point makes (`who` names it in the message): L and
// d_h within the kernels' registers, the grid within 65535 tiles, and `bytes` of shared
// memory per block within the device's limit. Returns the number of query tiles.
inline std::int64_t check_v2_launch(const char* who, const AttentionArgs& args, std::size_t bytes) {
  const std::string name(who);
  check(args.L >= 1 && args.L <= kMaxAttentionLevels && args.dh >= 1 && args.dh <= kMaxDk,
        name + ": takes 1 <= L <= 4 and 1 <= d_h <= 128, got L = " + std::to_string(args.L) +
            ", d_h = " + std::to_string(args.dh));
  const std::int64_t tiles = (args.T + kTile - 1) / kTile, bh = args.B * args.H;
  check(tiles <= 65535 && bh < (std::int64_t{1} << 31),
        name + ": T = " + std::to_string(args.T) + " with B x H = " + std::to_string(bh) +
            " is beyond the kernel's grid (at most 65535 tiles of 64 tokens)");
  check(bytes <= max_shared_memory_per_block(),
        name + ": d_h = " + std::to_string(args.dh) + ", L = " + std::to_string(args.L) + " needs " +
            std::to_string(bytes) + " bytes of shared memory per block; the device has " +
            std::to_string(max_shared_memory_per_block()));
  return tiles;
}

}  // namespace hkt::cuda::detail::v2
