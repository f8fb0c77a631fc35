// conv1d.cpp: the depthwise causal strided conv1d of the HKT downsampler
// (docs/hkt-attention.md section 1), forward and backward; the CPU version
// with the same formulas is engine/ops/conv1d.cpp. One output element per thread.
#include "cuda_backend.h"
#include "launch.h"

namespace hkt::cuda {

namespace detail {

template <class E>
void conv1d_forward_impl(const E* x, const E* w, const E* bias, E* y, std::int64_t T_in, std::int64_t C, std::int64_t k,
                         std::int64_t stride, std::int64_t T_out, std::int64_t total) {
  for_each(
      total, HKT_KERNEL(std::int64_t i) {  // i = (b, t, c)
        const std::int64_t c = i % C, t = (i / C) % T_out, b = i / (C * T_out);
        E acc = bias ? bias[c] : E(0);
        for (std::int64_t r = 0; r < k && stride * t - r >= 0; ++r)
          acc += w[c * k + r] * x[(b * T_in + stride * t - r) * C + c];
        y[i] = acc;
      });
}

template <class E>
void conv1d_backward_input_impl(const E* g, const E* w, E* dx, std::int64_t T_in, std::int64_t C, std::int64_t k,
                                std::int64_t stride, std::int64_t T_out, std::int64_t total) {
  for_each(
      total, HKT_KERNEL(std::int64_t i) {  // i = (b, p, c): input position p
        const std::int64_t c = i % C, p = (i / C) % T_in, b = i / (C * T_in);
        E acc = 0;
        // Outputs t that read p: s t - r = p with 0 <= r < k, i.e. p <= s t < p + k.
        for (std::int64_t t = (p + stride - 1) / stride; t < T_out && stride * t < p + k; ++t)
          acc += g[(b * T_out + t) * C + c] * w[c * k + (stride * t - p)];
        dx[i] = acc;
      });
}

template <class E>
void conv1d_backward_params_impl(const E* g, const E* x, E* dw, E* dbias, std::int64_t B, std::int64_t T_in,
                                 std::int64_t C, std::int64_t k, std::int64_t stride, std::int64_t T_out) {
  // Thread per (c, r) for r < k, plus r = k for the bias: each sums over (b, t) in order.
  for_each(
      C * (k + 1), HKT_KERNEL(std::int64_t i) {
        const std::int64_t c = i / (k + 1), r = i % (k + 1);
        if (r == k ? dbias == nullptr : dw == nullptr) return;
        double acc = 0;  // B x T_out terms: summed in double whatever E is, as on the CPU
        for (std::int64_t b = 0; b < B; ++b)
          for (std::int64_t t = 0; t < T_out; ++t) {
            const double gv = g[(b * T_out + t) * C + c];
            if (r == k)
              acc += gv;
            else if (stride * t - r >= 0)
              acc += gv * x[(b * T_in + stride * t - r) * C + c];
          }
        if (r == k)
          dbias[c] = static_cast<E>(acc);
        else
          dw[c * k + r] = static_cast<E>(acc);
      });
}

}  // namespace detail

void conv1d_forward(const void* x, const void* w, const void* bias, void* y, std::int64_t B, std::int64_t T,
                    std::int64_t C, std::int64_t k, std::int64_t stride, std::int64_t T_out, DType dtype) {
  dispatch_floating(dtype, "conv1d_forward on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::conv1d_forward_impl(static_cast<const E*>(x), static_cast<const E*>(w), static_cast<const E*>(bias),
                                static_cast<E*>(y), T, C, k, stride, T_out, B * T_out * C);
  });
}

void conv1d_backward_input(const void* g, const void* w, void* dx, std::int64_t B, std::int64_t T, std::int64_t C,
                           std::int64_t k, std::int64_t stride, std::int64_t T_out, DType dtype) {
  dispatch_floating(dtype, "conv1d_backward_input on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::conv1d_backward_input_impl(static_cast<const E*>(g), static_cast<const E*>(w), static_cast<E*>(dx), T, C, k,
                                       stride, T_out, B * T * C);
  });
}

void conv1d_backward_params(const void* g, const void* x, void* dw, void* dbias, std::int64_t B, std::int64_t T,
                            std::int64_t C, std::int64_t k, std::int64_t stride, std::int64_t T_out, DType dtype) {
  dispatch_floating(dtype, "conv1d_backward_params on cuda", [&](auto tag) {
    using E = decltype(tag);
    detail::conv1d_backward_params_impl(static_cast<const E*>(g), static_cast<const E*>(x), static_cast<E*>(dw),
                                        static_cast<E*>(dbias), B, T, C, k, stride, T_out);
  });
}

}  // namespace hkt::cuda
