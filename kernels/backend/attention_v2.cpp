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
//   2. each coarse level's tile Q_l K_l^T (unscaled: the lift applies alpha_l scale),
//      (64 / 2^l)^2 entries, by MMAs shared out over the warps, into shared memory in
//      float32 (level 3's 8 x 8 as a 16 x 8 product whose query rows 8..15 are zeros);
//   3. level 0 by each warp for its rows, in registers; then the lift: each lane adds
//      alpha_l S_l[r >> l][c >> l] to its own fragment elements; masks set -inf;
//   4. the online softmax on the fragments (a row's max and sum over the 4 lanes that
//      hold it, shuffles xor 1 and 2), then O += P V: two neighbouring n8 fragments of P,
//      rounded to bf16, are exactly the A fragment of one k16 slice (the C and A layouts
//      line up), so P never leaves the registers.
// Every output element is written by one lane; sums run in a fixed order: deterministic.
#include <cmath>
#include <cstdint>

#include "attention_v2.h"
#include "block_reduce.h"
#include "error.h"

namespace hkt::cuda {

namespace detail {
namespace v2 {

// Shared memory of the forward, carved from the dynamic allocation: bf16 tiles row-major
// [staged rows][dk + 8] (the pad of 8 bf16 moves each row 16 bytes across the banks), V^T
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
    Carve c{base};
    ld = dk + 8;
    ldv = kTile + 8;
    HKT_FOR_LEVELS(l, L) {
      q[l] = c.take<std::uint16_t>(staged_rows(l) * ld);
      k[l] = c.take<std::uint16_t>(staged_rows(l) * ld);
      coarse[l] = l == 0 ? nullptr : c.take<float>(level_rows(l) * level_rows(l));
    }
    vt = c.take<std::uint16_t>(dk * ldv);
    keep = c.take<float>(kTile);
    return c.bytes;
  }
};

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

    stage_queries(m.q, m.ld, a, bh, q0, dk);
    dev::sync_threads();
    // Q_0's A fragments of the warp's rows, for every key tile.
    std::uint32_t qa[kMaxDk / 16][4];
    for (int s = 0; s < dk / 16; ++s) a_fragment(qa[s], rows_of(m.q[0], m.ld), row0, 16 * s, lane);

    float alpha_scale[kMaxAttentionLevels];
    HKT_FOR_LEVELS(l, a.L) alpha_scale[l] = a.alpha[h * a.L + l] * a.scale;
    const float ninf = neg_inf<float>();
    float row_max[2] = {ninf, ninf}, row_sum[2] = {0.0f, 0.0f};  // rows g and g + 8; sum: this lane's share
    float o[kMaxDk / 8][4] = {};

    const std::int64_t key_tiles = a.causal ? q0 / kTile + 1 : (a.T + kTile - 1) / kTile;
    for (std::int64_t kt = 0; kt < key_tiles; ++kt) {
      const std::int64_t k0 = kt * kTile;
      dev::sync_threads();  // the previous tile's K, V and coarse scores are no longer read
      stage_keep(m.keep, a, b, k0);
      dev::sync_threads();
      const float* keep = m.keep;
      stage_keys(m.k, m.ld, a, bh, k0, dk, keep);
      // V^T: vt[d][c] = V[k0 + c][d], zero for masked keys.
      for (int x = static_cast<int>(tid); x < kTile * dk; x += static_cast<int>(kThreads)) {
        const int c = x / dk, d = x % dk;
        float value = 0.0f;
        if (keep[c] != 0.0f && d < a.dh) value = a.v[(bh * a.T + k0 + c) * a.dh + d];
        m.vt[d * m.ldv + c] = bf16_bits(value);
      }
      dev::sync_threads();

      // 2. The coarse levels' tiles, 16 x 8 blocks shared out over the warps.
      coarse_scores(m.coarse, m.q, m.k, m.ld, a.L, dk, warp, lane);
      // 3. Level 0 for the warp's rows: 8 blocks of 16 x 8.
      float s[kTile / 8][4];
      HKT_UNROLL
      for (int nt = 0; nt < kTile / 8; ++nt) {
        for (int i = 0; i < 4; ++i) s[nt][i] = 0.0f;
        for (int ks = 0; ks < dk / 16; ++ks) {
          MmaFragments f{};
          for (int r = 0; r < 4; ++r) f.a[r] = qa[ks][r];
          b_fragment(f.b, rows_of(m.k[0], m.ld), 8 * nt, 16 * ks, lane);
          float out_frag[4];
          mma_m16n8k16(out_frag, f, s[nt]);
          for (int i = 0; i < 4; ++i) s[nt][i] = out_frag[i];
        }
      }
      dev::sync_threads();  // every warp's coarse tiles are written
      // The lift and the masks: s = sum_l alpha_l scale S_l[r >> l][c >> l], -inf where masked.
      float tile_max[2] = {ninf, ninf};
      HKT_UNROLL
      for (int nt = 0; nt < kTile / 8; ++nt)
        for (int i = 0; i < 4; ++i) {
          const int r = row0 + g + 8 * (i / 2), c = 8 * nt + 2 * t + i % 2;
          float v = alpha_scale[0] * s[nt][i];
          HKT_FOR_LEVELS_FROM(l, 1, a.L) v += alpha_scale[l] * m.coarse[l][(r >> l) * level_rows(l) + (c >> l)];
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
      HKT_UNROLL
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
      HKT_UNROLL
      for (int kk = 0; kk < kTile / 16; ++kk) {
        MmaFragments f{};
        a_from_c(f.a, s[2 * kk], s[2 * kk + 1]);
        for (int nd = 0; nd < dk / 8; ++nd) {
          b_fragment(f.b, rows_of(m.vt, m.ldv), 8 * nd, 16 * kk, lane);
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
  // d_h is checked before it sizes anything.
  detail::v2::check_v2_launch("hkt_attention_forward_v2", args, 0);
  const int dk = detail::v2::padded_dh(args.dh);
  detail::v2::Smem sizes{};
  const std::size_t bytes = sizes.carve(nullptr, args.L, dk);
  const std::int64_t tiles = detail::v2::check_v2_launch("hkt_attention_forward_v2", args, bytes), bh = args.B * args.H;
  if (tiles == 0 || bh == 0) return;
  launch_blocks("hkt_attention_v2_forward", Grid{static_cast<unsigned>(bh), static_cast<unsigned>(tiles)}, bytes,
                detail::v2::Forward{detail::typed<float>(args), dk, out, lse});
}

}  // namespace hkt::cuda
