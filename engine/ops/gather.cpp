// gather.cpp: gather along an axis (torch.gather) and repeat_interleave (the "lift").
#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

namespace {
void outer_inner(const Shape& s, int axis, std::int64_t& outer, std::int64_t& inner) {
  outer = inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  for (int i = axis + 1; i < static_cast<int>(s.size()); ++i) inner *= s[i];
}
}  // namespace

Tensor gather(const Tensor& x, int axis_in, const Tensor& index) {
  cpu::check_defined("gather", x);
  cpu::check_indices("gather", index, "index");
  const int axis = normalize_axis("gather", axis_in, x.dim());
  check(index.dim() == x.dim(),
        "gather: index has rank " + std::to_string(index.dim()) + ", input has rank " + std::to_string(x.dim()));
  for (int d = 0; d < x.dim(); ++d)
    check(d == axis || index.shape()[d] == x.shape()[d], "gather: index shape " + shape_str(index.shape()) +
                                                             " must equal input shape " + shape_str(x.shape()) +
                                                             " outside axis " + std::to_string(axis));
  std::int64_t outer, inner;
  outer_inner(x.shape(), axis, outer, inner);
  const std::int64_t n_x = x.shape()[axis], n_i = index.shape()[axis];
  const std::vector<std::int64_t> host = cpu::host_indices(index);  // checked on the host
  const std::int64_t* idx = host.data();
  const std::int64_t n_index = index.numel();
  for (std::int64_t i = 0; i < n_index; ++i)
    check(idx[i] >= 0 && idx[i] < n_x, "gather: index " + std::to_string(idx[i]) + " at position " + std::to_string(i) +
                                           " is outside [0, " + std::to_string(n_x) + ")");
  Tensor y = Tensor::empty(index.shape(), x.dtype(), x.device());
  if (cpu::on_cuda(x)) {
    check(is_floating(x.dtype()), "gather: expected a float32 or float64 tensor, got " + dtype_name(x.dtype()));
    const Tensor dev_index = cpu::on_device(index, Device::CUDA);
    const auto* pi = static_cast<const std::int64_t*>(dev_index.raw_data());
    cuda::gather_forward(x.raw_data(), pi, y.raw_data(), outer, n_x, n_i, inner, x.dtype());
    record(y, "gather", {x, index},
           [xs = x.shape(), dev_index, outer, inner, n_x, n_i](const Tensor& g, const std::vector<bool>&) {
             Tensor dx = Tensor::empty(xs, g.dtype(), g.device());
             cuda::gather_backward(g.raw_data(), static_cast<const std::int64_t*>(dev_index.raw_data()), dx.raw_data(),
                                   outer, n_x, n_i, inner, g.dtype());
             return Grads{dx, Tensor()};
           });
    return y;
  }
  dispatch_floating(x.dtype(), "gather", [&](auto tag) {
    using E = decltype(tag);
    const E* px = x.data<E>();
    E* py = y.data<E>();
    // y[o, i, k] = x[o, index[o, i, k], k]
    cpu::parallel_for(outer, n_i * inner, [&](std::int64_t o) {
      for (std::int64_t i = 0; i < n_i; ++i)
        for (std::int64_t k = 0; k < inner; ++k) {
          const std::int64_t at = (o * n_i + i) * inner + k;
          py[at] = px[(o * n_x + idx[at]) * inner + k];
        }
    });
  });
  // dx[o, index[o, i, k], k] += g[o, i, k]; each o owns its slab of dx: deterministic.
  record(y, "gather", {x, index},
         [xs = x.shape(), index = cpu::on_device(index, Device::CPU).detach(), outer, inner, n_x, n_i](
             const Tensor& g, const std::vector<bool>&) {
           Tensor dx = Tensor::zeros(xs, g.dtype());
           dispatch_floating(g.dtype(), "gather backward", [&](auto tag) {
             using E = decltype(tag);
             const E* pg = g.data<E>();
             const std::int64_t* ix = index.data<std::int64_t>();
             E* out = dx.data<E>();
             cpu::parallel_for(outer, n_i * inner, [&](std::int64_t o) {
               for (std::int64_t i = 0; i < n_i; ++i)
                 for (std::int64_t k = 0; k < inner; ++k) {
                   const std::int64_t at = (o * n_i + i) * inner + k;
                   out[(o * n_x + ix[at]) * inner + k] += pg[at];
                 }
             });
           });
           return Grads{dx, Tensor()};
         });
  return y;
}

Tensor repeat_interleave(const Tensor& x, std::int64_t repeats, int axis_in) {
  cpu::check_defined("repeat_interleave", x);
  check(repeats >= 1, "repeat_interleave: repeats must be >= 1, got " + std::to_string(repeats));
  const int axis = normalize_axis("repeat_interleave", axis_in, x.dim());
  std::int64_t outer, inner;
  outer_inner(x.shape(), axis, outer, inner);
  const std::int64_t n = x.shape()[axis];
  check(n == 0 || repeats <= (std::int64_t{1} << 60) / n, "repeat_interleave: " + std::to_string(n) + " x " +
                                                              std::to_string(repeats) + " elements along axis " +
                                                              std::to_string(axis) + " is too large");
  Shape out_shape = x.shape();
  out_shape[axis] = n * repeats;
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  if (cpu::on_cuda(x))
    cuda::repeat_interleave(x.raw_data(), y.raw_data(), outer, n, repeats, inner, dtype_size(x.dtype()));
  else
    dispatch_any(x.dtype(), [&](auto tag) {
      using E = decltype(tag);
      const E* px = x.data<E>();
      E* py = y.data<E>();
      // y[o, j, k] = x[o, j / repeats, k]
      cpu::parallel_for(outer, n * repeats * inner, [&](std::int64_t o) {
        for (std::int64_t j = 0; j < n * repeats; ++j)
          for (std::int64_t k = 0; k < inner; ++k)
            py[(o * n * repeats + j) * inner + k] = px[(o * n + j / repeats) * inner + k];
      });
    });
  // dx[o, j, k] = sum over the r copies: view g as [outer, n, repeats, inner], sum axis 2.
  record(y, "repeat_interleave", {x},
         [xs = x.shape(), outer, n, repeats, inner](const Tensor& g, const std::vector<bool>&) {
           return Grads{reshape(sum(reshape(g, {outer, n, repeats, inner}), {2}), xs)};
         });
  return y;
}

}  // namespace hkt
