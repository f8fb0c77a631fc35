// masking.cpp: masked_fill and dropout.
#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  cpu::check_defined("masked_fill", x);
  cpu::check_defined("masked_fill", mask, "mask");
  check(broadcast_shapes("masked_fill", x.shape(), mask.shape()) == x.shape(),
        "masked_fill: mask of shape " + shape_str(mask.shape()) + " does not broadcast to input " + shape_str(x.shape()));
  check(is_floating(x.dtype()), "masked_fill: expected a float32 or float64 tensor, got " + dtype_name(x.dtype()));
  // The mask as 0/1 in x's dtype on x's device (any mask dtype: nonzero means fill).
  const Tensor mask_here = cpu::on_device(mask, x.device());
  Tensor m = Tensor::empty(mask.shape(), x.dtype(), x.device());
  if (cpu::on_cuda(x)) {
    cuda::convert(mask_here.raw_data(), mask.dtype(), m.raw_data(), x.dtype(), mask.numel(), true);
  } else {
    dispatch_any(mask.dtype(), [&](auto mtag) {
      using M = decltype(mtag);
      const M* pm = mask_here.data<M>();
      dispatch_floating(x.dtype(), "masked_fill", [&](auto tag) {
        using T = decltype(tag);
        T* out = m.data<T>();
        for (std::int64_t i = 0; i < mask.numel(); ++i) out[i] = pm[i] != M(0) ? T(1) : T(0);
      });
    });
  }
  Tensor y = cpu::map_binary<fn::Binary::MaskedFill>("masked_fill", x, m, value);
  // dx = g where not filled, 0 where filled (the output there does not depend on x).
  record(y, "masked_fill", {x}, [m](const Tensor& g, const std::vector<bool>&) {
    return Grads{cpu::map_binary<fn::Binary::MaskedZero>("masked_fill backward", g, m)};
  });
  return y;
}

Tensor dropout(const Tensor& x, double p, Generator& gen, bool training) {
  cpu::check_defined("dropout", x);
  check(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got " + std::to_string(p));
  check(is_floating(x.dtype()), "dropout: expected a float32 or float64 tensor, got " + dtype_name(x.dtype()));
  if (!training || p == 0.0) return x;
  // scale_mask[i] = 1/(1-p) if kept else 0; y = x * scale_mask, and mul's backward
  // gives dx = g * scale_mask. The mask is a constant: it needs no gradient.
  Tensor scale_mask = Tensor::empty(x.shape(), x.dtype(), x.device());
  const std::uint64_t first = gen.advance(static_cast<std::uint64_t>(x.numel()));
  const std::uint64_t seed = gen.seed();
  if (cpu::on_cuda(x)) {  // the same Philox numbers on the GPU (engine/random.h)
    cuda::dropout_mask(scale_mask.raw_data(), x.numel(), seed, first, p, x.dtype());
    return mul(x, scale_mask);
  }
  dispatch_floating(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    T* pm = scale_mask.data<T>();
    const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
    cpu::parallel_for(x.numel(), 16, [&](std::int64_t i) {
      const float u = uniform24(philox_at(seed, first + static_cast<std::uint64_t>(i)).out[0]);
      // keep_scale or 0 as a product, not a select: a select that reads keep_scale
      // through the closure only on one side is a masked load, which stops GCC from
      // vectorising the loop (8x slower on AVX2); the values are the same.
      pm[i] = keep_scale * static_cast<T>(static_cast<double>(u) >= p);
    });
  });
  return mul(x, scale_mask);
}

}  // namespace hkt
