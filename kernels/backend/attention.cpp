// attention.cpp: fused hierarchical attention on the CUDA backend, version 0
// (kernels/attention_dev/NOTES.md): the algorithm of ../shared/design/hkt-attention.md
// section 6 without tiles, one thread per output row. It never forms a T x T matrix
// (memory O(T d_h) plus the LSE), and every output row is summed by one thread in key
// order (deterministic, no atomics). It is the correctness baseline that the tiled,
// tensor-core versions are measured and checked against on the GPU; the fused CPU op
// (engine/attention/fused.cpp) is its reference.
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

#include "cuda_backend.h"
#include "launch.h"

namespace hkt::cuda {

namespace detail {

// The arguments with typed pointers, passed to the kernels by value.
template <class T>
struct Attn {
  const T* q[kMaxAttentionLevels];
  const T* k[kMaxAttentionLevels];
  const T* v;
  const T* alpha;
  const std::int64_t* keep;
  std::int64_t B, H, Tn, dh, Tl[kMaxAttentionLevels];  // Tn: tokens T (T is the element type)
  int L;
  bool causal;
  T scale;
};

template <class T>
Attn<T> typed(const AttentionArgs& a) {
  Attn<T> t{};
  for (int l = 0; l < kMaxAttentionLevels; ++l) {
    t.q[l] = static_cast<const T*>(a.q[l]);
    t.k[l] = static_cast<const T*>(a.k[l]);
    t.Tl[l] = a.Tl[l];
  }
  t.v = static_cast<const T*>(a.v);
  t.alpha = static_cast<const T*>(a.alpha);
  t.keep = a.keep;
  t.B = a.B;
  t.H = a.H;
  t.Tn = a.T;
  t.dh = a.dh;
  t.L = a.L;
  t.causal = a.causal;
  t.scale = static_cast<T>(a.scale);
  return t;
}

template <class T>
HKT_HOST_DEVICE inline T neg_inf() {
  return -static_cast<T>(HUGE_VAL);
}

template <class T>
HKT_HOST_DEVICE inline T dot(const T* x, const T* y, std::int64_t n) {
  T s = 0;
  for (std::int64_t d = 0; d < n; ++d) s += x[d] * y[d];
  return s;
}

// The same dot product accumulated in double: for dp = dO . V and D = dO . O, whose
// difference (dp - D) cancels; float sums there made dalpha 6x less accurate than the
// unfused op's in float32 (measured in the EMULATE build, L = 1, T = 17).
template <class T>
HKT_HOST_DEVICE inline double dot_wide(const T* x, const T* y, std::int64_t n) {
  double s = 0;
  for (std::int64_t d = 0; d < n; ++d) s += static_cast<double>(x[d]) * static_cast<double>(y[d]);
  return s;
}

// scale Q_l[i >> l] . K_l[j >> l] of head bh (the level-l score before alpha).
template <class T>
HKT_HOST_DEVICE inline T level_score(const Attn<T>& a, std::int64_t bh, int l, std::int64_t i, std::int64_t j) {
  const T* qr = a.q[l] + (bh * a.Tl[l] + (i >> l)) * a.dh;
  const T* kr = a.k[l] + (bh * a.Tl[l] + (j >> l)) * a.dh;
  return a.scale * dot(qr, kr, a.dh);
}

// The fused score s[i, j] of head bh, -inf where key j is masked for query i.
template <class T>
HKT_HOST_DEVICE inline T fused_score(const Attn<T>& a, std::int64_t bh, std::int64_t i, std::int64_t j) {
  const std::int64_t b = bh / a.H, h = bh % a.H;
  if ((a.keep && a.keep[b * a.Tn + j] == 0) || (a.causal && j > i)) return neg_inf<T>();
  T s = 0;
  for (int l = 0; l < a.L; ++l) s += a.alpha[h * a.L + l] * level_score(a, bh, l, i, j);
  return s;
}

// The backward's s[i, j] in double (the forward's is T): the score gradient ds and
// dalpha = sum ds s cancel along each row (sum_j ds[i, j] = 0), so rounding in s, p or
// dp - D is amplified there. Computing them in double keeps the kernels' float32 error
// within that of the unfused op (tests/test_cuda_attention.cpp); float sums gave dalpha
// 7x the unfused error in the EMULATE build (L = 1, T = 17, d_h = 32).
template <class T>
HKT_HOST_DEVICE inline double level_score_wide(const Attn<T>& a, std::int64_t bh, int l, std::int64_t i, std::int64_t j) {
  const T* qr = a.q[l] + (bh * a.Tl[l] + (i >> l)) * a.dh;
  const T* kr = a.k[l] + (bh * a.Tl[l] + (j >> l)) * a.dh;
  return static_cast<double>(a.scale) * dot_wide(qr, kr, a.dh);
}

template <class T>
HKT_HOST_DEVICE inline double fused_score_wide(const Attn<T>& a, std::int64_t bh, std::int64_t i, std::int64_t j) {
  const std::int64_t h = bh % a.H;
  double s = 0;
  for (int l = 0; l < a.L; ++l) s += static_cast<double>(a.alpha[h * a.L + l]) * level_score_wide(a, bh, l, i, j);
  return s;
}

// ds[i, j] = p (dp - D[i]) with p = e^(s - LSE[i]); 0 where masked or the row is dead.
template <class T>
HKT_HOST_DEVICE inline T score_grad(const Attn<T>& a, std::int64_t bh, std::int64_t i, std::int64_t j, const T* lse,
                                    const double* D, const T* grad_out) {
  const T row_lse = lse[bh * a.Tn + i];
  if (row_lse == neg_inf<T>()) return T(0);
  const std::int64_t b = bh / a.H;
  if ((a.keep && a.keep[b * a.Tn + j] == 0) || (a.causal && j > i)) return T(0);  // masked: p = 0
  const double p = std::exp(fused_score_wide(a, bh, i, j) - static_cast<double>(row_lse));
  const double dp = dot_wide(grad_out + (bh * a.Tn + i) * a.dh, a.v + (bh * a.Tn + j) * a.dh, a.dh);
  return static_cast<T>(p * (dp - D[bh * a.Tn + i]));
}

template <class T>
void forward_impl(const Attn<T> a, T* out, T* lse) {
  for_each(a.B * a.H * a.Tn, HKT_KERNEL(std::int64_t row) {
    const std::int64_t bh = row / a.Tn, i = row % a.Tn;
    T acc[kMaxAttentionHeadDim];
    for (std::int64_t d = 0; d < a.dh; ++d) acc[d] = T(0);
    T m = neg_inf<T>(), l = T(0);
    const std::int64_t j_end = a.causal ? i + 1 : a.Tn;  // later keys are masked
    for (std::int64_t j = 0; j < j_end; ++j) {
      const T s = fused_score(a, bh, i, j);
      if (s == neg_inf<T>()) continue;
      if (s > m) {  // a new running maximum: rescale what was accumulated
        const T correction = std::exp(m - s);  // exp(-inf) = 0 on the first live key
        l *= correction;
        for (std::int64_t d = 0; d < a.dh; ++d) acc[d] *= correction;
        m = s;
      }
      const T p = std::exp(s - m);
      l += p;
      const T* vr = a.v + (bh * a.Tn + j) * a.dh;
      for (std::int64_t d = 0; d < a.dh; ++d) acc[d] += p * vr[d];
    }
    T* o = out + row * a.dh;
    for (std::int64_t d = 0; d < a.dh; ++d) o[d] = l == T(0) ? T(0) : acc[d] / l;  // a dead row outputs 0
    lse[row] = l == T(0) ? neg_inf<T>() : m + std::log(l);
  });
}

template <class T>
void row_dot_impl(const T* x, const T* y, double* out, std::int64_t rows, std::int64_t n) {
  for_each(rows, HKT_KERNEL(std::int64_t r) { out[r] = dot_wide(x + r * n, y + r * n, n); });
}

template <class T>
void dv_impl(const Attn<T> a, const T* lse, const T* grad_out, T* dv) {
  for_each(a.B * a.H * a.Tn, HKT_KERNEL(std::int64_t row) {
    const std::int64_t bh = row / a.Tn, j = row % a.Tn;
    double acc[kMaxAttentionHeadDim];  // sums of up to T * 2^l terms: in double
    for (std::int64_t d = 0; d < a.dh; ++d) acc[d] = 0.0;
    for (std::int64_t i = a.causal ? j : 0; i < a.Tn; ++i) {  // queries before j cannot see it
      const T row_lse = lse[bh * a.Tn + i];
      if (row_lse == neg_inf<T>()) continue;
      const T s = fused_score(a, bh, i, j);
      if (s == neg_inf<T>()) continue;
      const double p = std::exp(fused_score_wide(a, bh, i, j) - static_cast<double>(row_lse));
      const T* g = grad_out + (bh * a.Tn + i) * a.dh;
      for (std::int64_t d = 0; d < a.dh; ++d) acc[d] += p * static_cast<double>(g[d]);
    }
    for (std::int64_t d = 0; d < a.dh; ++d) dv[row * a.dh + d] = static_cast<T>(acc[d]);
  });
}

// dQ_l (queries) or dK_l (keys) of one level: one thread per coarse row.
template <class T>
void dqk_impl(const Attn<T> a, int l, bool keys, const T* lse, const double* D, const T* grad_out, T* out) {
  for_each(a.B * a.H * a.Tl[l], HKT_KERNEL(std::int64_t row) {
    const std::int64_t bh = row / a.Tl[l], t = row % a.Tl[l], h = bh % a.H;
    double acc[kMaxAttentionHeadDim];  // sums of up to T * 2^l terms: in double
    for (std::int64_t d = 0; d < a.dh; ++d) acc[d] = 0.0;
    const std::int64_t f0 = t << l, f1 = ((t + 1) << l) < a.Tn ? ((t + 1) << l) : a.Tn;  // fine rows under t
    for (std::int64_t f = f0; f < f1; ++f) {
      // queries: f is the query, the other index runs over keys (and the reverse)
      const std::int64_t o0 = keys && a.causal ? f : 0, o1 = !keys && a.causal ? f + 1 : a.Tn;
      for (std::int64_t o = o0; o < o1; ++o) {
        const T ds = keys ? score_grad(a, bh, o, f, lse, D, grad_out) : score_grad(a, bh, f, o, lse, D, grad_out);
        if (ds == T(0)) continue;
        const T* other = keys ? a.q[l] + (bh * a.Tl[l] + (o >> l)) * a.dh : a.k[l] + (bh * a.Tl[l] + (o >> l)) * a.dh;
        for (std::int64_t d = 0; d < a.dh; ++d) acc[d] += static_cast<double>(ds) * static_cast<double>(other[d]);
      }
    }
    const double factor = static_cast<double>(a.alpha[h * a.L + l]) * static_cast<double>(a.scale);
    for (std::int64_t d = 0; d < a.dh; ++d) out[row * a.dh + d] = static_cast<T>(factor * acc[d]);
  });
}

// Per query row: sum_j ds[i, j] level_score_l(i, j) for each level, in double.
template <class T>
void dalpha_rows_impl(const Attn<T> a, const T* lse, const double* D, const T* grad_out, double* parts) {
  for_each(a.B * a.H * a.Tn, HKT_KERNEL(std::int64_t row) {
    const std::int64_t bh = row / a.Tn, i = row % a.Tn;
    double acc[kMaxAttentionLevels] = {0.0, 0.0, 0.0, 0.0};
    for (std::int64_t j = 0; j < (a.causal ? i + 1 : a.Tn); ++j) {
      const T ds = score_grad(a, bh, i, j, lse, D, grad_out);
      if (ds == T(0)) continue;
      for (int l = 0; l < a.L; ++l) acc[l] += static_cast<double>(ds) * level_score_wide(a, bh, l, i, j);
    }
    for (int l = 0; l < a.L; ++l) parts[row * a.L + l] = acc[l];
  });
}

// dalpha[h, l] = sum over b, then rows i, of the parts: one thread per (h, l).
template <class T>
void dalpha_reduce_impl(const double* parts, T* dalpha, std::int64_t B, std::int64_t H, std::int64_t Tn, int L) {
  for_each(H * L, HKT_KERNEL(std::int64_t hl) {
    const std::int64_t h = hl / L, l = hl % L;
    double s = 0.0;
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t i = 0; i < Tn; ++i) s += parts[((b * H + h) * Tn + i) * L + l];
    dalpha[hl] = static_cast<T>(s);
  });
}

// Scratch device memory freed on every path out (a kernel launch may throw).
struct Scratch {
  void* ptr;
  explicit Scratch(std::size_t nbytes) : ptr(allocate(nbytes)) {}
  ~Scratch() { free(ptr); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

template <class T>
void backward_impl(const AttentionArgs& args, const T* out, const T* lse, const T* grad_out, void* const* dq,
                   void* const* dk, T* dv, T* dalpha) {
  const Attn<T> a = typed<T>(args);
  const std::int64_t rows = a.B * a.H * a.Tn;
  Scratch D(static_cast<std::size_t>(rows) * sizeof(double));
  row_dot_impl(grad_out, out, static_cast<double*>(D.ptr), rows, a.dh);  // D[i] = dO[i] . O[i]
  const double* pd = static_cast<const double*>(D.ptr);
  dv_impl(a, lse, grad_out, dv);
  for (int l = 0; l < a.L; ++l) {
    dqk_impl(a, l, false, lse, pd, grad_out, static_cast<T*>(dq[l]));
    dqk_impl(a, l, true, lse, pd, grad_out, static_cast<T*>(dk[l]));
  }
  if (dalpha) {
    Scratch parts(static_cast<std::size_t>(rows * a.L) * sizeof(double));
    dalpha_rows_impl(a, lse, pd, grad_out, static_cast<double*>(parts.ptr));
    dalpha_reduce_impl(static_cast<const double*>(parts.ptr), dalpha, a.B, a.H, a.Tn, a.L);
  }
  // The scratch blocks go back to the cache while the kernels may still run: safe, since
  // whatever reuses them is queued on the same stream, after these kernels.
}

}  // namespace detail

void hkt_attention_forward(const AttentionArgs& args, void* out, void* lse, DType dtype) {
  if (dtype == DType::Float64)
    detail::forward_impl(detail::typed<double>(args), static_cast<double*>(out), static_cast<double*>(lse));
  else
    detail::forward_impl(detail::typed<float>(args), static_cast<float*>(out), static_cast<float*>(lse));
}

void hkt_attention_backward(const AttentionArgs& args, const void* out, const void* lse, const void* grad_out,
                            void* const* dq, void* const* dk, void* dv, void* dalpha, DType dtype) {
  if (dtype == DType::Float64)
    detail::backward_impl(args, static_cast<const double*>(out), static_cast<const double*>(lse),
                          static_cast<const double*>(grad_out), dq, dk, static_cast<double*>(dv),
                          static_cast<double*>(dalpha));
  else
    detail::backward_impl(args, static_cast<const float*>(out), static_cast<const float*>(lse),
                          static_cast<const float*>(grad_out), dq, dk, static_cast<float*>(dv),
                          static_cast<float*>(dalpha));
}

}  // namespace hkt::cuda
