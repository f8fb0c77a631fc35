// attention_v2.cpp: fused hierarchical attention on tensor cores, version 2, forward
// (kernels/attention_dev/NOTES.md, "v2"). The math is v1's (attention_v1.cpp, top of the
// file); what changes is where it runs:
//   - Q_l, K_l and V are rounded to bfloat16 as they are staged in shared memory (the
//     engine's tensors stay float32); every product is the warp's m16n8k16 instruction
//     (mma.h), accumulating in float32;
//   - the scores, the online-softmax statistics (row max and sum), the O accumulators and
//     the LSE are float32; P is rounded to bfloat16 for P V.
//
// One block of 4 warps per (b h, query tile of 64 rows); warp w owns query rows
// 16 w .. 16 w + 15 of the tile, so its scores against a key tile of 64 are 8 C fragments
// of m16n8 (lane: rows g and g + 8, columns 2t and 2t + 1 of each, g = lane / 4,
// t = lane % 4; mma.h). Per key tile:
//   1. stage K_l (every level) and V^T as bf16, zeros for masked keys (a masked key's
//      K and V never reach a product, even when they hold NaN);
//   2. each coarse level's tile S_l = scale Q_l K_l^T, (64 / 2^l)^2 entries, by MMAs
//      shared out over the warps, into shared memory in float32 (level 3's 8 x 8 as a
//      16 x 8 product whose query rows 8..15 are zeros);
//   3. level 0 by each warp for its rows, in registers; then the lift: each lane adds
//      alpha_l S_l[r >> l][c >> l] to its own fragment elements; masks set -inf;
//   4. the online softmax on the fragments (a row's max and sum over the 4 lanes that
//      hold it, shuffles xor 1 and 2), then O += P V: two neighbouring n8 fragments of P,
//      rounded to bf16, are exactly the A fragment of one k16 slice (the C and A layouts
//      line up), so P never leaves the registers.
// Every output element is written by one lane; sums run in a fixed order: deterministic.
#include <cmath>
#include <cstdint>

#include "attention_common.h"
#include "block.h"
#include "block_reduce.h"
#include "error.h"
#include "mma.h"

namespace hkt::cuda {

namespace detail {
namespace v2 {

constexpr unsigned kThreads = 128;  // 4 warps
constexpr int kTile = 64;           // query and key tile; a multiple of 2^(L-1) for L <= 4
constexpr int kWarps = kThreads / 32;

// d_h rounded up to the k16 of the instruction (zeros past d_h).
HKT_HOST_DEVICE inline int padded_dh(std::int64_t dh) { return static_cast<int>((dh + 15) / 16 * 16); }
// Rows of level l in a tile, and the rows staged for it: at least 16, the instruction's m.
HKT_HOST_DEVICE inline int level_rows(int l) { return kTile >> l; }
HKT_HOST_DEVICE inline int staged_rows(int l) { return level_rows(l) < 16 ? 16 : level_rows(l); }

// Shared memory of a block, carved from the dynamic allocation: bf16 tiles row-major
// [rows][dk + 8] (the pad of 8 bf16 moves each row 16 bytes across the banks), V^T
// [dk][64 + 8], the coarse scores float32 [rows(l)][rows(l)], keep [64].
struct Smem {
  std::uint16_t* q[kMaxAttentionLevels];
  std::uint16_t* k[kMaxAttentionLevels];
  std::uint16_t* vt;
  float* coarse[kMaxAttentionLevels];  // level >= 1
  float* keep;
  int ld;   // row stride of the Q_l and K_l tiles
  int ldv;  // row stride of V^T

  // With base = nullptr only counts: the returned size is what to launch with.
  HKT_HOST_DEVICE std::size_t carve(unsigned char* base, int L, int dk) {
    std::size_t bytes = 0;
    auto take = [&](std::size_t n) {
      bytes = (bytes + 15) / 16 * 16;
      unsigned char* p = base ? base + bytes : nullptr;
      bytes += n;
      return p;
    };
    ld = dk + 8;
    ldv = kTile + 8;
    for (int l = 0; l < L; ++l) {
      q[l] = reinterpret_cast<std::uint16_t*>(take(sizeof(std::uint16_t) * staged_rows(l) * ld));
      k[l] = reinterpret_cast<std::uint16_t*>(take(sizeof(std::uint16_t) * staged_rows(l) * ld));
      coarse[l] = l == 0 ? nullptr : reinterpret_cast<float*>(take(sizeof(float) * level_rows(l) * level_rows(l)));
    }
    vt = reinterpret_cast<std::uint16_t*>(take(sizeof(std::uint16_t) * dk * ldv));
    keep = reinterpret_cast<float*>(take(sizeof(float) * kTile));
    return bytes;
  }
};

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

// One lane's A fragment of the 16 x 16 block of a bf16 tile at (row0, k0), and its B
// fragment of the 16 x 8 block whose B^T is the tile's rows col0 .. col0 + 7 from column
// k0 (the layout of mma.h): pairs of neighbouring bf16 are one 32-bit word.
HKT_DEVICE std::uint32_t pair_at(const std::uint16_t* tile, int ld, int row, int col) {
  return pack_bf16x2(tile[row * ld + col], tile[row * ld + col + 1]);
}
HKT_DEVICE void a_fragment(std::uint32_t (&a)[4], const std::uint16_t* tile, int ld, int row0, int k0, unsigned lane) {
  for (int r = 0; r < 4; ++r)
    a[r] = pair_at(tile, ld, row0 + MmaLayout::a_row(lane, 2 * r), k0 + MmaLayout::a_col(lane, 2 * r));
}
HKT_DEVICE void b_fragment(std::uint32_t (&b)[2], const std::uint16_t* tile_t, int ld, int col0, int k0,
                           unsigned lane) {
  for (int r = 0; r < 2; ++r)
    b[r] = pair_at(tile_t, ld, col0 + MmaLayout::b_col(lane, 2 * r), k0 + MmaLayout::b_row(lane, 2 * r));
}

// acc = sum over k blocks of A[row0.., k] B^T[col0.., k] for one 16 x 8 block.
HKT_DEVICE void block_product(float (&acc)[4], const std::uint16_t* a, const std::uint16_t* bt, int ld, int row0,
                              int col0, int dk, unsigned lane) {
  for (int i = 0; i < 4; ++i) acc[i] = 0.0f;
  for (int k0 = 0; k0 < dk; k0 += MmaLayout::kK) {
    MmaFragments f{};
    a_fragment(f.a, a, ld, row0, k0, lane);
    b_fragment(f.b, bt, ld, col0, k0, lane);
    float out[4];
    mma_m16n8k16(out, f, acc);
    for (int i = 0; i < 4; ++i) acc[i] = out[i];
  }
}

// The largest d_h this kernel holds in registers: 8 k16 slices of Q_0 and 16 n8 tiles of O.
constexpr int kMaxDk = 128;

struct Forward {
  static constexpr unsigned kThreads = v2::kThreads;
  Attn<float> a;
  int dk;
  float* out;   // [B, H, T, d_h]
  double* lse;  // [B, H, T]

  HKT_DEVICE void operator()() const {
    Smem m{};
    m.carve(dev::dynamic_shared<unsigned char>(), a.L, dk);
    const std::int64_t bh = dev::block_x(), b = bh / a.H, h = bh % a.H;
    const std::int64_t q0 = std::int64_t{dev::block_y()} * kTile;
    const unsigned tid = dev::thread_index(), lane = tid % 32, warp = tid / 32;
    const int g = static_cast<int>(lane / 4), t = static_cast<int>(lane % 4);
    const int row0 = 16 * static_cast<int>(warp);  // the warp's first query row in the tile

    for (int l = 0; l < a.L; ++l)
      stage_rows(m.q[l], m.ld, a.q[l] + bh * a.Tl[l] * a.dh, q0 >> l, level_rows(l), staged_rows(l), a.Tl[l], a.dh, dk,
                 [](int) { return false; });
    dev::sync_threads();
    // Q_0's A fragments of the warp's rows, for every key tile.
    std::uint32_t qa[kMaxDk / 16][4];
    for (int s = 0; s < dk / 16; ++s) a_fragment(qa[s], m.q[0], m.ld, row0, 16 * s, lane);

    float alpha_scale[kMaxAttentionLevels];
    for (int l = 0; l < a.L; ++l) alpha_scale[l] = a.alpha[h * a.L + l] * a.scale;
    const float ninf = neg_inf<float>();
    float row_max[2] = {ninf, ninf}, row_sum[2] = {0.0f, 0.0f};  // rows g and g + 8; sum: this lane's share
    float o[kMaxDk / 8][4] = {};

    const std::int64_t key_tiles = a.causal ? q0 / kTile + 1 : (a.T + kTile - 1) / kTile;
    for (std::int64_t kt = 0; kt < key_tiles; ++kt) {
      const std::int64_t k0 = kt * kTile;
      dev::sync_threads();  // the previous tile's K, V and coarse scores are no longer read
      for (int c = static_cast<int>(tid); c < kTile; c += static_cast<int>(kThreads))
        m.keep[c] = (k0 + c < a.T && (a.keep == nullptr || a.keep[b * a.T + k0 + c] != 0)) ? 1.0f : 0.0f;
      dev::sync_threads();
      const float* keep = m.keep;
      for (int l = 0; l < a.L; ++l)
        stage_rows(m.k[l], m.ld, a.k[l] + bh * a.Tl[l] * a.dh, k0 >> l, level_rows(l), staged_rows(l), a.Tl[l], a.dh,
                   dk, [=](int w) {
                     for (int c = w << l; c < (w + 1) << l; ++c)
                       if (keep[c] != 0.0f) return false;
                     return true;  // every key under coarse row w is masked
                   });
      // V^T: vt[d][c] = V[k0 + c][d], zero for masked keys.
      for (int x = static_cast<int>(tid); x < kTile * dk; x += static_cast<int>(kThreads)) {
        const int c = x / dk, d = x % dk;
        float value = 0.0f;
        if (keep[c] != 0.0f && d < a.dh) value = a.v[(bh * a.T + k0 + c) * a.dh + d];
        m.vt[d * m.ldv + c] = bf16_bits(value);
      }
      dev::sync_threads();

      // 2. The coarse levels' tiles, 16 x 8 blocks shared out over the warps.
      for (int l = 1; l < a.L; ++l) {
        const int n = level_rows(l), mt = staged_rows(l) / 16, nt = n / 8;
        for (int blk = static_cast<int>(warp); blk < mt * nt; blk += kWarps) {
          const int br = 16 * (blk / nt), bc = 8 * (blk % nt);
          float acc[4];
          block_product(acc, m.q[l], m.k[l], m.ld, br, bc, dk, lane);
          for (int i = 0; i < 4; ++i) {
            const int r = br + MmaLayout::c_row(lane, i), c = bc + MmaLayout::c_col(lane, i);
            if (r < n) m.coarse[l][r * n + c] = acc[i];
          }
        }
      }
      // 3. Level 0 for the warp's rows: 8 blocks of 16 x 8.
      float s[kTile / 8][4];
      for (int nt = 0; nt < kTile / 8; ++nt) {
        for (int i = 0; i < 4; ++i) s[nt][i] = 0.0f;
        for (int ks = 0; ks < dk / 16; ++ks) {
          MmaFragments f{};
          for (int r = 0; r < 4; ++r) f.a[r] = qa[ks][r];
          b_fragment(f.b, m.k[0], m.ld, 8 * nt, 16 * ks, lane);
          float out_frag[4];
          mma_m16n8k16(out_frag, f, s[nt]);
          for (int i = 0; i < 4; ++i) s[nt][i] = out_frag[i];
        }
      }
      dev::sync_threads();  // every warp's coarse tiles are written
      // The lift and the masks: s = sum_l alpha_l scale S_l[r >> l][c >> l], -inf where masked.
      float tile_max[2] = {ninf, ninf};
      for (int nt = 0; nt < kTile / 8; ++nt)
        for (int i = 0; i < 4; ++i) {
          const int r = row0 + g + 8 * (i / 2), c = 8 * nt + 2 * t + i % 2;
          float v = alpha_scale[0] * s[nt][i];
          for (int l = 1; l < a.L; ++l) v += alpha_scale[l] * m.coarse[l][(r >> l) * level_rows(l) + (c >> l)];
          if (keep[c] == 0.0f || (a.causal && k0 + c > q0 + r)) v = ninf;
          s[nt][i] = v;
          tile_max[i / 2] = v > tile_max[i / 2] ? v : tile_max[i / 2];
        }
      // 4. The online softmax: the row's max over its 4 lanes, rescale, p = e^(s - max).
      float correction[2];
      for (int h2 = 0; h2 < 2; ++h2) {
        for (unsigned mask = 1; mask <= 2; mask *= 2) {
          const float other = dev::shfl_xor(kFullWarp, tile_max[h2], mask);
          tile_max[h2] = other > tile_max[h2] ? other : tile_max[h2];
        }
        const float m_new = row_max[h2] > tile_max[h2] ? row_max[h2] : tile_max[h2];
        correction[h2] = m_new == ninf ? 1.0f : std::exp(row_max[h2] - m_new);  // e^-inf = 0 on the first live tile
        row_max[h2] = m_new;
        row_sum[h2] *= correction[h2];
      }
      for (int nt = 0; nt < kTile / 8; ++nt)
        for (int i = 0; i < 4; ++i) {
          const float mx = row_max[i / 2];
          const float p = mx == ninf ? 0.0f : std::exp(s[nt][i] - mx);  // masked: e^-inf = 0
          s[nt][i] = p;
          row_sum[i / 2] += p;
        }
      for (int nd = 0; nd < dk / 8; ++nd)
        for (int i = 0; i < 4; ++i) o[nd][i] *= correction[i / 2];
      // O += P V, k16 slice by slice: P's fragments of n-tiles 2 kk and 2 kk + 1 are the
      // A fragment of slice kk (mma.h's layouts); V's B fragments from V^T.
      for (int kk = 0; kk < kTile / 16; ++kk) {
        MmaFragments f{};
        f.a[0] = pack_bf16x2(bf16_bits(s[2 * kk][0]), bf16_bits(s[2 * kk][1]));
        f.a[1] = pack_bf16x2(bf16_bits(s[2 * kk][2]), bf16_bits(s[2 * kk][3]));
        f.a[2] = pack_bf16x2(bf16_bits(s[2 * kk + 1][0]), bf16_bits(s[2 * kk + 1][1]));
        f.a[3] = pack_bf16x2(bf16_bits(s[2 * kk + 1][2]), bf16_bits(s[2 * kk + 1][3]));
        for (int nd = 0; nd < dk / 8; ++nd) {
          b_fragment(f.b, m.vt, m.ldv, 8 * nd, 16 * kk, lane);
          float out_frag[4];
          mma_m16n8k16(out_frag, f, o[nd]);
          for (int i = 0; i < 4; ++i) o[nd][i] = out_frag[i];
        }
      }
    }
    // The row sums over the 4 lanes of each row (a fixed butterfly), then O / sum and
    // LSE = max + log sum; a row with every key masked: O = 0, LSE = -inf.
    for (int h2 = 0; h2 < 2; ++h2)
      for (unsigned mask = 1; mask <= 2; mask *= 2) row_sum[h2] += dev::shfl_xor(kFullWarp, row_sum[h2], mask);
    for (int h2 = 0; h2 < 2; ++h2) {
      const std::int64_t row = q0 + row0 + g + 8 * h2;
      if (row >= a.T) continue;
      const bool dead = row_sum[h2] == 0.0f;
      for (int nd = 0; nd < dk / 8; ++nd)
        for (int j = 0; j < 2; ++j) {
          const std::int64_t d = 8 * nd + 2 * t + j;
          if (d < a.dh) out[(bh * a.T + row) * a.dh + d] = dead ? 0.0f : o[nd][2 * h2 + j] / row_sum[h2];
        }
      if (t == 0)
        lse[bh * a.T + row] =
            dead ? -HUGE_VAL : static_cast<double>(row_max[h2]) + std::log(static_cast<double>(row_sum[h2]));
    }
  }
};

}  // namespace v2
}  // namespace detail

void hkt_attention_forward_v2(const AttentionArgs& args, float* out, double* lse) {
  check(args.L >= 1 && args.L <= kMaxAttentionLevels && args.dh >= 1 && args.dh <= detail::v2::kMaxDk,
        "hkt_attention_forward_v2: takes 1 <= L <= 4 and 1 <= d_h <= 128, got L = " + std::to_string(args.L) +
            ", d_h = " + std::to_string(args.dh));
  const std::int64_t tiles = (args.T + detail::v2::kTile - 1) / detail::v2::kTile, bh = args.B * args.H;
  check(tiles <= 65535 && bh < (std::int64_t{1} << 31),
        "hkt_attention_forward_v2: T = " + std::to_string(args.T) + " with B x H = " + std::to_string(bh) +
            " is beyond the kernel's grid (at most 65535 tiles of 64 tokens)");
  if (tiles == 0 || bh == 0) return;
  const int dk = detail::v2::padded_dh(args.dh);
  detail::v2::Smem sizes{};
  const std::size_t bytes = sizes.carve(nullptr, args.L, dk);
  launch_blocks("hkt_attention_v2_forward", Grid{static_cast<unsigned>(bh), static_cast<unsigned>(tiles)}, bytes,
                detail::v2::Forward{detail::typed<float>(args), dk, out, lse});
}

}  // namespace hkt::cuda
