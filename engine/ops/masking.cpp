// masking.cpp: masked_fill and dropout.
#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  cpu::check_defined("masked_fill", x);
  cpu::check_defined("masked_fill", mask, "mask");
  check(
      broadcast_shapes("masked_fill", x.shape(), mask.shape()) == x.shape(),
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
        using E = decltype(tag);
        E* out = m.data<E>();
        const std::int64_t n = mask.numel();
        for (std::int64_t i = 0; i < n; ++i) out[i] = pm[i] != M(0) ? E(1) : E(0);
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
  const std::int64_t n = x.numel();
  // Four uniforms per Philox counter (uniform24_at, engine/random.h): n numbers take
  // ceil(n / 4) counters.
  const std::uint64_t first = gen.advance(static_cast<std::uint64_t>((n + 3) / 4));
  const std::uint64_t seed = gen.seed();
  if (cpu::on_cuda(x)) {  // the same Philox numbers on the GPU (engine/random.h)
    cuda::dropout_mask(scale_mask.raw_data(), n, seed, first, p, x.dtype());
    return mul(x, scale_mask);
  }
  dispatch_floating(x.dtype(), "dropout", [&](auto tag) {
    using E = decltype(tag);
    E* pm = scale_mask.data<E>();
    const E keep_scale = static_cast<E>(1.0 / (1.0 - p));
    // Element i is kept when uniform24_at(seed, first, i) >= p. Whole blocks of four
    // compute one Philox block each (the loop vectorises across blocks); the last,
    // partial block goes through uniform24_at itself. keep_scale or 0 is a product, not a
    // select: a select that reads keep_scale through the closure on one side only is a
    // masked load, which stops GCC from vectorising the loop.
    const std::int64_t full = n / 4;
    cpu::parallel_for(full, 64, [=](std::int64_t b) {
      const Philox4x32 block = philox_at(seed, first + static_cast<std::uint64_t>(b));
      for (int w = 0; w < 4; ++w)
        pm[4 * b + w] = keep_scale * static_cast<E>(static_cast<double>(uniform24(block.out[w])) >= p);
    });
    for (std::int64_t i = 4 * full; i < n; ++i)
      pm[i] = keep_scale *
              static_cast<E>(static_cast<double>(uniform24_at(seed, first, static_cast<std::uint64_t>(i))) >= p);
  });
  return mul(x, scale_mask);
}

}  // namespace hkt
