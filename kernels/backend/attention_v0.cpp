// attention_v0.cpp: fused hierarchical attention on the CUDA backend, version 0
// (kernels/attention_dev/NOTES.md): the fused algorithm (docs/attention.md) without
// tiles, one thread per output row. It never forms a T x T matrix (memory O(T d_h) plus
// the LSE), and every output row is summed by one thread in key order (deterministic,
// no atomics). It is the per-element reference that the tiled version
// (attention_v1.cpp, the one in use) is tested against; the fused CPU op
// (engine/attention/fused.cpp) is the reference of both.
//
// Per head h and query row i, with keys j (masked: key_mask = 0, or j > i when causal):
//   s[i, j] = sum_l alpha[h, l] scale Q_l[i >> l] . K_l[j >> l]         (the lift)
//   forward:  online softmax over j: O[i] = sum_j p[i, j] V[j], LSE[i] = log sum_j e^s
//   backward: p = e^(s - LSE), dp = dO[i] . V[j], ds = p (dp - D[i]), D[i] = dO[i] . O[i]
//     dV[j] = sum_i p[i, j] dO[i]
//     dQ_l[t] = alpha_l scale sum_{i >> l = t} sum_j ds[i, j] K_l[j >> l]
//     dK_l[u] = alpha_l scale sum_{j >> l = u} sum_i ds[i, j] Q_l[i >> l]
//     dalpha[h, l] = sum_{b, i, j} ds[i, j] scale Q_l[i >> l] . K_l[j >> l]
// Each backward output recomputes the s and ds it needs: several passes of T^2 (L + 1)
// d_h, the price of one thread per output with no atomics.
#include <cmath>

#include "attention_common.h"

namespace hkt::cuda {

namespace detail {

template <class E>
HKT_HOST_DEVICE inline E dot(const E* x, const E* y, std::int64_t n) {
  E s = 0;
  for (std::int64_t d = 0; d < n; ++d) s += x[d] * y[d];
  return s;
}

// scale Q_l[i >> l] . K_l[j >> l] of head bh (the level-l score before alpha).
template <class E>
HKT_HOST_DEVICE inline E level_score(const Attn<E>& a, std::int64_t bh, int l, std::int64_t i, std::int64_t j) {
  const E* qr = a.q[l] + (bh * a.Tl[l] + (i >> l)) * a.dh;
  const E* kr = a.k[l] + (bh * a.Tl[l] + (j >> l)) * a.dh;
  return a.scale * dot(qr, kr, a.dh);
}

// The fused score s[i, j] of head bh, -inf where key j is masked for query i.
template <class E>
HKT_HOST_DEVICE inline E fused_score(const Attn<E>& a, std::int64_t bh, std::int64_t i, std::int64_t j) {
  const std::int64_t b = bh / a.H, h = bh % a.H;
  if ((a.keep && a.keep[b * a.T + j] == 0) || (a.causal && j > i)) return neg_inf<E>();
  E s = 0;
  for (int l = 0; l < a.L; ++l) s += a.alpha[h * a.L + l] * level_score(a, bh, l, i, j);
  return s;
}

// The backward's s[i, j] in double (the forward's is in E): the score gradient ds and
// dalpha = sum ds s cancel along each row (sum_j ds[i, j] = 0), so rounding in s, p or
// dp - D is amplified there. Computing them in double keeps the kernels' float32 error
// within that of the unfused op (tests/test_cuda_attention.cpp); float sums gave dalpha
// 7x the unfused error in the EMULATE build (L = 1, T = 17, d_h = 32).
template <class E>
HKT_HOST_DEVICE inline double level_score_wide(const Attn<E>& a, std::int64_t bh, int l, std::int64_t i,
                                               std::int64_t j) {
  const E* qr = a.q[l] + (bh * a.Tl[l] + (i >> l)) * a.dh;
  const E* kr = a.k[l] + (bh * a.Tl[l] + (j >> l)) * a.dh;
  return static_cast<double>(a.scale) * dot_wide(qr, kr, a.dh);
}

template <class E>
HKT_HOST_DEVICE inline double fused_score_wide(const Attn<E>& a, std::int64_t bh, std::int64_t i, std::int64_t j) {
  const std::int64_t h = bh % a.H;
  double s = 0;
  for (int l = 0; l < a.L; ++l) s += static_cast<double>(a.alpha[h * a.L + l]) * level_score_wide(a, bh, l, i, j);
  return s;
}

// ds[i, j] = p (dp - D[i]) with p = e^(s - LSE[i]); 0 where masked or the row is dead.
template <class E>
HKT_HOST_DEVICE inline E score_grad(const Attn<E>& a, std::int64_t bh, std::int64_t i, std::int64_t j,
                                    const double* lse, const double* D, const E* grad_out) {
  const double row_lse = lse[bh * a.T + i];
  if (row_lse == neg_inf<double>()) return E(0);
  const std::int64_t b = bh / a.H;
  if ((a.keep && a.keep[b * a.T + j] == 0) || (a.causal && j > i)) return E(0);  // masked: p = 0
  const double p = std::exp(fused_score_wide(a, bh, i, j) - row_lse);
  const double dp = dot_wide(grad_out + (bh * a.T + i) * a.dh, a.v + (bh * a.T + j) * a.dh, a.dh);
  return static_cast<E>(p * (dp - D[bh * a.T + i]));
}

template <class E>
void forward_impl(const Attn<E> a, E* out, double* lse) {
  for_each(
      a.B * a.H * a.T, HKT_KERNEL(std::int64_t row) {
        const std::int64_t bh = row / a.T, i = row % a.T;
        E acc[kMaxAttentionHeadDim];
        for (std::int64_t d = 0; d < a.dh; ++d) acc[d] = E(0);
        E m = neg_inf<E>(), l = E(0);
        const std::int64_t j_end = a.causal ? i + 1 : a.T;  // later keys are masked
        for (std::int64_t j = 0; j < j_end; ++j) {
          const E s = fused_score(a, bh, i, j);
          if (s == neg_inf<E>()) continue;
          if (s > m) {                             // a new running maximum: rescale what was accumulated
            const E correction = std::exp(m - s);  // exp(-inf) = 0 on the first live key
            l *= correction;
            for (std::int64_t d = 0; d < a.dh; ++d) acc[d] *= correction;
            m = s;
          }
          const E p = std::exp(s - m);
          l += p;
          const E* vr = a.v + (bh * a.T + j) * a.dh;
          for (std::int64_t d = 0; d < a.dh; ++d) acc[d] += p * vr[d];
        }
        E* o = out + row * a.dh;
        for (std::int64_t d = 0; d < a.dh; ++d) o[d] = l == E(0) ? E(0) : acc[d] / l;  // a dead row outputs 0
        lse[row] = l == E(0) ? neg_inf<double>() : static_cast<double>(m) + std::log(static_cast<double>(l));
      });
}

template <class E>
void dv_impl(const Attn<E> a, const double* lse, const E* grad_out, E* dv) {
  for_each(
      a.B * a.H * a.T, HKT_KERNEL(std::int64_t row) {
        const std::int64_t bh = row / a.T, j = row % a.T;
        double acc[kMaxAttentionHeadDim];  // sums of up to T * 2^l terms: in double
        for (std::int64_t d = 0; d < a.dh; ++d) acc[d] = 0.0;
        for (std::int64_t i = a.causal ? j : 0; i < a.T; ++i) {  // queries before j cannot see it
          const double row_lse = lse[bh * a.T + i];
          if (row_lse == neg_inf<double>()) continue;
          const E s = fused_score(a, bh, i, j);
          if (s == neg_inf<E>()) continue;
          const double p = std::exp(fused_score_wide(a, bh, i, j) - row_lse);
          const E* g = grad_out + (bh * a.T + i) * a.dh;
          for (std::int64_t d = 0; d < a.dh; ++d) acc[d] += p * static_cast<double>(g[d]);
        }
        for (std::int64_t d = 0; d < a.dh; ++d) dv[row * a.dh + d] = static_cast<E>(acc[d]);
      });
}

// dQ_l (queries) or dK_l (keys) of one level: one thread per coarse row.
template <class E>
void dqk_impl(const Attn<E> a, int l, bool keys, const double* lse, const double* D, const E* grad_out, E* out) {
  for_each(
      a.B * a.H * a.Tl[l], HKT_KERNEL(std::int64_t row) {
        const std::int64_t bh = row / a.Tl[l], t = row % a.Tl[l], h = bh % a.H;
        double acc[kMaxAttentionHeadDim];  // sums of up to T * 2^l terms: in double
        for (std::int64_t d = 0; d < a.dh; ++d) acc[d] = 0.0;
        const std::int64_t f0 = t << l, f1 = ((t + 1) << l) < a.T ? ((t + 1) << l) : a.T;  // fine rows under t
        for (std::int64_t f = f0; f < f1; ++f) {
          // queries: f is the query, the other index runs over keys (and the reverse)
          const std::int64_t o0 = keys && a.causal ? f : 0, o1 = !keys && a.causal ? f + 1 : a.T;
          for (std::int64_t o = o0; o < o1; ++o) {
            const E ds = keys ? score_grad(a, bh, o, f, lse, D, grad_out) : score_grad(a, bh, f, o, lse, D, grad_out);
            if (ds == E(0)) continue;
            const E* other =
                keys ? a.q[l] + (bh * a.Tl[l] + (o >> l)) * a.dh : a.k[l] + (bh * a.Tl[l] + (o >> l)) * a.dh;
            for (std::int64_t d = 0; d < a.dh; ++d) acc[d] += static_cast<double>(ds) * static_cast<double>(other[d]);
          }
        }
        const double factor = static_cast<double>(a.alpha[h * a.L + l]) * static_cast<double>(a.scale);
        for (std::int64_t d = 0; d < a.dh; ++d) out[row * a.dh + d] = static_cast<E>(factor * acc[d]);
      });
}

// Per query row: sum_j ds[i, j] level_score_l(i, j) for each level, in double.
template <class E>
void dalpha_rows_impl(const Attn<E> a, const double* lse, const double* D, const E* grad_out, double* parts) {
  for_each(
      a.B * a.H * a.T, HKT_KERNEL(std::int64_t row) {
        const std::int64_t bh = row / a.T, i = row % a.T;
        double acc[kMaxAttentionLevels] = {0.0, 0.0, 0.0, 0.0};
        for (std::int64_t j = 0; j < (a.causal ? i + 1 : a.T); ++j) {
          const E ds = score_grad(a, bh, i, j, lse, D, grad_out);
          if (ds == E(0)) continue;
          for (int l = 0; l < a.L; ++l) acc[l] += static_cast<double>(ds) * level_score_wide(a, bh, l, i, j);
        }
        for (int l = 0; l < a.L; ++l) parts[row * a.L + l] = acc[l];
      });
}

template <class E>
void backward_impl(const AttentionArgs& args, const E* out, const double* lse, const E* grad_out, void* const* dq,
                   void* const* dk, E* dv, E* dalpha) {
  const Attn<E> a = typed<E>(args);
  const std::int64_t rows = a.B * a.H * a.T;
  Scratch D(static_cast<std::size_t>(rows) * sizeof(double));
  row_dot_impl(grad_out, out, static_cast<double*>(D.ptr), rows, a.dh);  // D[i] = dO[i] . O[i]
  const double* pd = static_cast<const double*>(D.ptr);
  dv_impl(a, lse, grad_out, dv);
  for (int l = 0; l < a.L; ++l) {
    dqk_impl(a, l, false, lse, pd, grad_out, static_cast<E*>(dq[l]));
    dqk_impl(a, l, true, lse, pd, grad_out, static_cast<E*>(dk[l]));
  }
  if (dalpha) {
    Scratch parts(static_cast<std::size_t>(rows * a.L) * sizeof(double));
    dalpha_rows_impl(a, lse, pd, grad_out, static_cast<double*>(parts.ptr));
    dalpha_reduce_impl(static_cast<const double*>(parts.ptr), dalpha, a.B, a.H, a.T, a.L);
  }
  // The scratch blocks go back to the cache while the kernels may still run: safe, since
  // whatever reuses them is queued on the same stream, after these kernels.
}

}  // namespace detail

void hkt_attention_forward_v0(const AttentionArgs& args, void* out, void* lse, DType dtype) {
  if (dtype == DType::Float64)
    detail::forward_impl(detail::typed<double>(args), static_cast<double*>(out), static_cast<double*>(lse));
  else
    detail::forward_impl(detail::typed<float>(args), static_cast<float*>(out), static_cast<double*>(lse));
}

void hkt_attention_backward_v0(const AttentionArgs& args, const void* out, const void* lse, const void* grad_out,
                               void* const* dq, void* const* dk, void* dv, void* dalpha, DType dtype) {
  if (dtype == DType::Float64)
    detail::backward_impl(args, static_cast<const double*>(out), static_cast<const double*>(lse),
                          static_cast<const double*>(grad_out), dq, dk, static_cast<double*>(dv),
                          static_cast<double*>(dalpha));
  else
    detail::backward_impl(args, static_cast<const float*>(out), static_cast<const double*>(lse),
                          static_cast<const float*>(grad_out), dq, dk, static_cast<float*>(dv),
                          static_cast<float*>(dalpha));
}

}  // namespace hkt::cuda
