// conv1d.cpp: the depthwise causal strided conv1d of the HKT downsampler
// (docs/hkt-attention.md section 1), forward and backward.
//
//   y[b, t, c] = bias[c] + sum_{r<k} w[c, r] x[b, s t - r, c],  t < T_out = ceil(T / s),
// with x[b, p, c] = 0 for p < 0. Backward (g = dL/dy):
//   dx[b, s t - r, c] += g[b, t, c] w[c, r]
//   dw[c, r] = sum_{b, t} g[b, t, c] x[b, s t - r, c],   dbias[c] = sum_{b, t} g[b, t, c].
#include <algorithm>
#include <vector>

#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

namespace {

// The taps of a [C, k] weight as k rows of C ([k, C]): the inner loops over channels then
// read the taps of one offset r contiguously instead of one value every k.
template <class E>
std::vector<E> taps_by_row(const Tensor& weight, std::int64_t C, std::int64_t k) {
  const E* pw = weight.data<E>();
  std::vector<E> wt(static_cast<std::size_t>(C * k));
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t r = 0; r < k; ++r) wt[static_cast<std::size_t>(r * C + c)] = pw[c * k + r];
  return wt;
}

}  // namespace

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, std::int64_t stride) {
  cpu::check_defined("causal_conv1d", x);
  cpu::check_defined("causal_conv1d", weight, "weight");
  cpu::check_same_kind("causal_conv1d", x, weight);
  check(x.dim() == 3, "causal_conv1d: input must be [B, T, C], got " + shape_str(x.shape()));
  check(stride >= 1, "causal_conv1d: stride must be >= 1, got " + std::to_string(stride));
  const std::int64_t B = x.shape()[0], T = x.shape()[1], C = x.shape()[2];
  check(weight.dim() == 2 && weight.shape()[0] == C && weight.shape()[1] >= 1,
        "causal_conv1d: weight must be [C, k] = [" + std::to_string(C) + ", k >= 1] for input " + shape_str(x.shape()) +
            ", got " + shape_str(weight.shape()));
  if (bias.defined()) {
    cpu::check_defined("causal_conv1d", bias, "bias");
    cpu::check_same_kind("causal_conv1d", x, bias);
    check(bias.shape() == Shape{C},
          "causal_conv1d: bias must be [" + std::to_string(C) + "], got " + shape_str(bias.shape()));
  }
  const std::int64_t k = weight.shape()[1], T_out = T == 0 ? 0 : (T - 1) / stride + 1;  // ceil(T / stride), no overflow
  Tensor y = Tensor::empty({B, T_out, C}, x.dtype(), x.device());
  dispatch_floating(x.dtype(), "causal_conv1d", [&](auto tag) {
    using E = decltype(tag);
    if (cpu::on_cuda(x))
      return cuda::conv1d_forward(x.raw_data(), weight.raw_data(), bias.defined() ? bias.raw_data() : nullptr,
                                  y.raw_data(), B, T, C, k, stride, T_out, x.dtype());
    const E* px = x.data<E>();
    const E* pb = bias.defined() ? bias.data<E>() : nullptr;
    const std::vector<E> wt = taps_by_row<E>(weight, C, k);
    E* py = y.data<E>();
    cpu::parallel_for(B * T_out, C * k, [&](std::int64_t bt) {
      const std::int64_t b = bt / T_out, t = bt % T_out;
      E* out = py + bt * C;
      for (std::int64_t c = 0; c < C; ++c) out[c] = pb ? pb[c] : E(0);
      for (std::int64_t r = 0; r < k && stride * t - r >= 0; ++r) {
        const E* in = px + (b * T + stride * t - r) * C;
        const E* wr = wt.data() + r * C;
        for (std::int64_t c = 0; c < C; ++c) out[c] += wr[c] * in[c];
      }
    });
  });
  record(y, "causal_conv1d", {x, weight, bias},
         [x = x.detach(), w = weight.detach(), B, T, C, k, T_out, stride](const Tensor& g,
                                                                          const std::vector<bool>& needs) {
           Grads grads(3);
           if (cpu::on_cuda(g)) {
             if (needs[0]) {
               grads[0] = Tensor::empty({B, T, C}, g.dtype(), g.device());
               cuda::conv1d_backward_input(g.raw_data(), w.raw_data(), grads[0].raw_data(), B, T, C, k, stride, T_out,
                                           g.dtype());
             }
             if (needs[1]) grads[1] = Tensor::empty({C, k}, g.dtype(), g.device());
             if (needs[2]) grads[2] = Tensor::empty({C}, g.dtype(), g.device());
             if (needs[1] || needs[2])
               cuda::conv1d_backward_params(g.raw_data(), x.raw_data(), needs[1] ? grads[1].raw_data() : nullptr,
                                            needs[2] ? grads[2].raw_data() : nullptr, B, T, C, k, stride, T_out,
                                            g.dtype());
             return grads;
           }
           dispatch_floating(g.dtype(), "causal_conv1d backward", [&](auto tag) {
             using E = decltype(tag);
             const E *pg = g.data<E>(), *px = x.data<E>();
             if (needs[0]) {  // each batch element owns its slab of dx
               const std::vector<E> wt = taps_by_row<E>(w, C, k);
               grads[0] = Tensor::zeros({B, T, C}, g.dtype());
               E* dx = grads[0].data<E>();
               cpu::parallel_for(B, T_out * C * k, [&](std::int64_t b) {
                 for (std::int64_t t = 0; t < T_out; ++t)
                   for (std::int64_t r = 0; r < k && stride * t - r >= 0; ++r) {
                     E* dxr = dx + (b * T + stride * t - r) * C;
                     const E *gr = pg + (b * T_out + t) * C, *wr = wt.data() + r * C;
                     for (std::int64_t c = 0; c < C; ++c) dxr[c] += gr[c] * wr[c];
                   }
               });
             }
             if (needs[1] || needs[2]) {  // each channel sums its own terms in a fixed order
               if (needs[1]) grads[1] = Tensor::empty({C, k}, g.dtype());
               if (needs[2]) grads[2] = Tensor::empty({C}, g.dtype());
               E* dw = needs[1] ? grads[1].data<E>() : nullptr;
               E* db = needs[2] ? grads[2].data<E>() : nullptr;
               // Sums over B x T_out terms, in double whatever the dtype (a float32
               // total drifts by N eps), rounded once at the end. Each task owns a block
               // of kColumns channels and walks the rows (b, t) in order, so every
               // channel adds its terms in a fixed order; across the block the inner
               // loops run over contiguous channels and vectorise (one channel per task,
               // walking down a column, read one float per cache line: 1.5 % of an HKT
               // training step, as the LayerNorm backward's column sums once were).
               constexpr std::int64_t kColumns = 16;
               const std::int64_t blocks = (C + kColumns - 1) / kColumns;
               cpu::parallel_for(blocks, B * T_out * (k + 1) * kColumns, [&](std::int64_t blk) {
                 const std::int64_t c0 = blk * kColumns, width = std::min(C, c0 + kColumns) - c0;
                 double bias_sum[kColumns] = {};
                 std::vector<double> w_sum(static_cast<std::size_t>(k * kColumns), 0.0);  // [k, kColumns]
                 for (std::int64_t b = 0; b < B; ++b)
                   for (std::int64_t t = 0; t < T_out; ++t) {
                     const E* gr = pg + (b * T_out + t) * C + c0;
                     for (std::int64_t c = 0; c < width; ++c) bias_sum[c] += static_cast<double>(gr[c]);
                     if (dw)
                       for (std::int64_t r = 0; r < k && stride * t - r >= 0; ++r) {
                         const E* xr = px + (b * T + stride * t - r) * C + c0;
                         double* ws = w_sum.data() + r * kColumns;
                         for (std::int64_t c = 0; c < width; ++c)
                           ws[c] += static_cast<double>(gr[c]) * static_cast<double>(xr[c]);
                       }
                   }
                 for (std::int64_t c = 0; c < width; ++c) {
                   if (db) db[c0 + c] = static_cast<E>(bias_sum[c]);
                   if (dw)
                     for (std::int64_t r = 0; r < k; ++r)
                       dw[(c0 + c) * k + r] = static_cast<E>(w_sum[static_cast<std::size_t>(r * kColumns + c)]);
                 }
               });
             }
           });
           return grads;
         });
  return y;
}

}  // namespace hkt
