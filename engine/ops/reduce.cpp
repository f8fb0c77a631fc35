// reduce.cpp: sum, mean, max over axes (keepdim or not), and sum_to.
//
// A reduction over one axis views x as [outer, n, inner] and writes [outer, 1, inner];
// several axes are reduced one after another (keepdim), then squeezed if asked.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

namespace {

// Sorted, de-duplicated, normalised axes; all axes when `axes` is empty.
std::vector<int> resolve_axes(const char* op, const std::vector<int>& axes, int rank) {
  std::vector<int> out;
  if (axes.empty()) {
    for (int i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (int a : axes) out.push_back(normalize_axis(op, a, rank));
  std::sort(out.begin(), out.end());
  check(std::adjacent_find(out.begin(), out.end()) == out.end(), std::string(op) + ": an axis is repeated");
  return out;
}

// The shape after reducing `axes`: those sizes become 1 (keepdim) or disappear.
Shape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdim) {
  Shape out;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    const bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced)
      out.push_back(shape[i]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

// One axis, keepdim: out[o, 0, i] = sum (or max) over j of x[o, j, i]. The CUDA
// backend's reduce_axis computes the same thing with the same order and double sums.
Tensor reduce_one_axis(const char* op, const Tensor& x, int axis, bool is_max) {
  const Shape& s = x.shape();
  std::int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  for (int i = axis + 1; i < static_cast<int>(s.size()); ++i) inner *= s[i];
  const std::int64_t n = s[axis];
  Shape out_shape = s;
  out_shape[axis] = 1;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (cpu::on_cuda(x)) {
    cuda::reduce_axis(is_max, x.raw_data(), out.raw_data(), outer, n, inner, x.dtype());
    return out;
  }
  const double init = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using E = decltype(tag);
    const E* px = x.data<E>();
    E* po = out.data<E>();
    // Accumulate in double whatever E is: a float32 running sum of n terms loses about
    // n * 6e-8 relative (1 % at n = 1e6, and stops growing at 2^24), a double one does not.
    cpu::parallel_for(outer, n * inner, [&](std::int64_t o) {
      std::vector<double> acc(static_cast<std::size_t>(inner), init);
      for (std::int64_t j = 0; j < n; ++j) {  // j outside, i inside: contiguous, vectorisable
        const E* src = px + (o * n + j) * inner;
        for (std::int64_t i = 0; i < inner; ++i) {
          double& a = acc[static_cast<std::size_t>(i)];
          const double b = static_cast<double>(src[i]);
          if (!is_max)
            a += b;
          else if ((b > a || std::isnan(b)) && !std::isnan(a))
            a = b;  // NaN propagates, as in PyTorch
        }
      }
      E* row = po + o * inner;
      for (std::int64_t i = 0; i < inner; ++i) row[i] = static_cast<E>(acc[static_cast<std::size_t>(i)]);
    });
  });
  return out;
}

Tensor reduce_axes(const char* op, const Tensor& x, const std::vector<int>& axes, bool keepdim, bool is_max) {
  Tensor out = x;
  for (int a : axes) out = reduce_one_axis(op, out, a, is_max);
  if (axes.empty()) out = out.clone();  // a reduction over no axes still returns new storage
  return out.detach().reshape(reduced_shape(x.shape(), axes, keepdim));
}
}  // namespace

Tensor sum(const Tensor& x, const std::vector<int>& axes_in, bool keepdim) {
  cpu::check_defined("sum", x);
  check(is_floating(x.dtype()), "sum: expected a float32 or float64 tensor, got " + dtype_name(x.dtype()));
  const auto axes = resolve_axes("sum", axes_in, x.dim());
  Tensor y = reduce_axes("sum", x, axes, keepdim, false);
  // d(sum)/dx = 1 for every summed element: broadcast g back over the reduced axes.
  record(y, "sum", {x}, [xs = x.shape(), axes](const Tensor& g, const std::vector<bool>&) {
    Tensor gk = g.reshape(reduced_shape(xs, axes, true));
    return Grads{add(Tensor::zeros(xs, g.dtype(), g.device()), gk)};
  });
  return y;
}

Tensor mean(const Tensor& x, const std::vector<int>& axes_in, bool keepdim) {
  cpu::check_defined("mean", x);
  check(is_floating(x.dtype()), "mean: expected a float32 or float64 tensor, got " + dtype_name(x.dtype()));
  const auto axes = resolve_axes("mean", axes_in, x.dim());
  std::int64_t count = 1;
  for (int a : axes) count *= x.shape()[a];
  return div(sum(x, axes, keepdim), static_cast<double>(count));  // 0/0 = nan for empty, as PyTorch
}

Tensor max(const Tensor& x, const std::vector<int>& axes_in, bool keepdim) {
  cpu::check_defined("max", x);
  check(is_floating(x.dtype()), "max: expected a float32 or float64 tensor, got " + dtype_name(x.dtype()));
  const auto axes = resolve_axes("max", axes_in, x.dim());
  for (int a : axes)
    check(x.shape()[a] > 0,
          "max: cannot reduce axis " + std::to_string(a) + " of size 0 (shape " + shape_str(x.shape()) + ")");
  Tensor y = reduce_axes("max", x, axes, keepdim, true);
  // Ties (docs/engine.md convention 1): g is split evenly among the elements equal to the maximum:
  // dx = g * [x == max] / count([x == max]) over the reduced axes.
  record(y, "max", {x}, [x = x.detach(), y = y.detach(), axes](const Tensor& g, const std::vector<bool>&) {
    const Shape kept = reduced_shape(x.shape(), axes, true);
    // NaN compares unequal to itself, so a NaN maximum marks the NaN elements instead.
    Tensor is_max = cpu::map_binary<fn::Binary::IsMax>("max backward", x, y.reshape(kept));
    Tensor count = sum(is_max, axes, true);
    return Grads{mul(is_max, div(g.reshape(kept), count))};
  });
  return y;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const Shape& s = x.shape();
  check(s.size() >= shape.size(),
        "sum_to: cannot reduce " + shape_str(s) + " to the larger rank of " + shape_str(shape));
  // Axes to sum: the extra leading ones, and those where the target has size 1.
  std::vector<int> axes;
  const std::size_t lead = s.size() - shape.size();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i < lead) {
      axes.push_back(static_cast<int>(i));
    } else if (shape[i - lead] == 1 && s[i] != 1) {
      axes.push_back(static_cast<int>(i));
    } else {
      check(shape[i - lead] == s[i], "sum_to: " + shape_str(s) + " does not broadcast from " + shape_str(shape));
    }
  }
  return reshape(sum(x, axes, true), shape);
}

}  // namespace hkt
