// layout.cpp: reshape (a view), permute/transpose, slice and concat (copies).
#include <algorithm>
#include <cstring>

#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  check(x.defined(), "reshape: the tensor is undefined");
  Shape shape = shape_in;
  int infer = -1;
  std::int64_t known = 1;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    if (shape[i] == -1) {
      check(infer < 0, "reshape: only one size may be -1, got " + shape_str(shape_in));
      infer = i;
    } else {
      check(shape[i] >= 0, "reshape: invalid size in " + shape_str(shape_in));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    check(known > 0 && x.numel() % known == 0,
          "reshape: cannot reshape " + shape_str(x.shape()) + " into " + shape_str(shape_in));
    shape[infer] = x.numel() / known;
  }
  validate_shape("reshape", shape);
  check(numel(shape) == x.numel(), "reshape: cannot reshape " + shape_str(x.shape()) + " (" +
                                       std::to_string(x.numel()) + " elements) into " + shape_str(shape_in));
  // A view: new TensorImpl, same storage (contiguous, so no data moves).
  Tensor y = x.detach();
  y.impl()->shape = shape;
  record(y, "reshape", {x},
         [xs = x.shape()](const Tensor& g, const std::vector<bool>&) { return Grads{reshape(g, xs)}; });
  return y;
}

Tensor permute(const Tensor& x, const std::vector<int>& dims_in) {
  cpu::check_defined("permute", x);
  const int rank = x.dim();
  check(static_cast<int>(dims_in.size()) == rank,
        "permute: " + std::to_string(dims_in.size()) + " dims given for a tensor of rank " + std::to_string(rank));
  std::vector<int> dims;
  for (int d : dims_in) dims.push_back(normalize_axis("permute", d, rank));
  std::vector<int> sorted = dims;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < rank; ++i)
    check(sorted[i] == i, "permute: dims are not a permutation of 0.." + std::to_string(rank - 1));

  const Shape& s = x.shape();
  Shape out_shape(rank);
  for (int i = 0; i < rank; ++i) out_shape[i] = s[dims[i]];
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  // Output coordinate i along dimension d reads input stride in_strides[dims[d]].
  const auto in_strides = contiguous_strides(s);
  std::vector<std::int64_t> read_strides(rank);
  for (int d = 0; d < rank; ++d) read_strides[d] = in_strides[dims[d]];
  std::vector<int> inverse(rank);  // backward: permute g by the inverse permutation
  for (int i = 0; i < rank; ++i) inverse[dims[i]] = i;
  const auto backward = [inverse](const Tensor& g, const std::vector<bool>&) { return Grads{permute(g, inverse)}; };
  if (cpu::on_cuda(x)) {
    cuda::StridedView view;
    view.rank = rank;
    for (int d = 0; d < rank; ++d) {
      view.shape[d] = out_shape[d];
      view.strides_a[d] = read_strides[d];
    }
    cuda::strided_copy(x.raw_data(), y.raw_data(), view, dtype_size(x.dtype()));
    record(y, "permute", {x}, backward);
    return y;
  }
  const std::int64_t inner = rank == 0 ? 1 : out_shape[rank - 1];
  const std::int64_t rows = inner == 0 ? 0 : y.numel() / inner;
  const std::int64_t step = rank == 0 ? 0 : read_strides[rank - 1];
  // Output rows in blocks of kRows: a block finds its first row's input offset by
  // division, then steps the coordinates like an odometer (a division per dimension and
  // row, and a memcpy call per row of d_h floats, were two thirds of the head split's
  // time, perf).
  constexpr std::int64_t kRows = 64;
  const std::int64_t blocks = (rows + kRows - 1) / kRows;
  dispatch_any(x.dtype(), [&](auto tag) {
    using E = decltype(tag);
    const E* px = x.data<E>();
    E* py = y.data<E>();
    cpu::parallel_for(blocks, kRows * inner, [&](std::int64_t block) {
      const std::int64_t r0 = block * kRows, r1 = std::min(rows, r0 + kRows);
      std::vector<std::int64_t> coord(static_cast<std::size_t>(std::max(rank - 1, 0)));
      std::int64_t offset = 0, rest = r0;
      for (int d = rank - 2; d >= 0; --d) {
        coord[static_cast<std::size_t>(d)] = rest % out_shape[d];
        offset += coord[static_cast<std::size_t>(d)] * read_strides[d];
        rest /= out_shape[d];
      }
      for (std::int64_t row = r0; row < r1; ++row) {
        const E* __restrict src = px + offset;
        E* __restrict dst = py + row * inner;
        if (step == 1)  // the last axis stays last (the attention's head split and merge): a row copy
          for (std::int64_t j = 0; j < inner; ++j) dst[j] = src[j];
        else
          for (std::int64_t j = 0; j < inner; ++j) dst[j] = src[j * step];
        // Next row: add one to the last coordinate, carrying into earlier ones.
        for (int d = rank - 2; d >= 0; --d) {
          auto& c = coord[static_cast<std::size_t>(d)];
          offset += read_strides[d];
          if (++c < out_shape[d]) break;
          offset -= c * read_strides[d];
          c = 0;
        }
      }
    });
  });
  record(y, "permute", {x}, backward);
  return y;
}

Tensor transpose(const Tensor& x, int axis0, int axis1) {
  check(x.defined(), "transpose: the tensor is undefined");
  const int a = normalize_axis("transpose", axis0, x.dim()), b = normalize_axis("transpose", axis1, x.dim());
  std::vector<int> dims(x.dim());
  for (int i = 0; i < x.dim(); ++i) dims[i] = i;
  std::swap(dims[a], dims[b]);
  return permute(x, dims);
}

namespace {
// View of a shape around `axis` as [outer, size, inner].
void split_at(const Shape& s, int axis, std::int64_t& outer, std::int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  for (int i = axis + 1; i < static_cast<int>(s.size()); ++i) inner *= s[i];
}

// Copies block [outer, n, inner] of src starting at src_start along the axis into dst
// at dst_start (element sizes `esize` bytes). Used by slice, concat and their backward.
void copy_along_axis(const Tensor& src, std::int64_t src_n, std::int64_t src_start, Tensor& dst, std::int64_t dst_n,
                     std::int64_t dst_start, std::int64_t count, std::int64_t outer, std::int64_t inner) {
  const std::size_t esize = dtype_size(src.dtype());
  if (cpu::on_cuda(src)) {
    cuda::copy_block(src.raw_data(), src_n, src_start, dst.raw_data(), dst_n, dst_start, count, outer, inner, esize);
    return;
  }
  const auto* ps = static_cast<const unsigned char*>(src.raw_data());
  auto* pd = static_cast<unsigned char*>(dst.raw_data());
  const std::size_t block = static_cast<std::size_t>(count * inner) * esize;
  cpu::parallel_for(outer, count * inner, [&](std::int64_t o) {
    if (block)
      std::memcpy(pd + static_cast<std::size_t>((o * dst_n + dst_start) * inner) * esize,
                  ps + static_cast<std::size_t>((o * src_n + src_start) * inner) * esize, block);
  });
}
}  // namespace

Tensor slice(const Tensor& x, int axis_in, std::int64_t start, std::int64_t end) {
  cpu::check_defined("slice", x);
  const int axis = normalize_axis("slice", axis_in, x.dim());
  const std::int64_t n = x.shape()[axis];
  const std::int64_t given_start = start, given_end = end;
  if (start < 0) start += n;
  if (end < 0) end += n;
  check(0 <= start && start <= end && end <= n,
        "slice: range [" + std::to_string(given_start) + ", " + std::to_string(given_end) + ") is outside axis " +
            std::to_string(axis) + " of size " + std::to_string(n) + " (shape " + shape_str(x.shape()) + ")");
  Shape out_shape = x.shape();
  out_shape[axis] = end - start;
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  std::int64_t outer, inner;
  split_at(x.shape(), axis, outer, inner);
  copy_along_axis(x, n, start, y, end - start, 0, end - start, outer, inner);
  // Backward: g lands at [start, end) of a zero tensor of x's shape.
  record(y, "slice", {x}, [xs = x.shape(), axis, start, n, outer, inner](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::zeros(xs, g.dtype(), g.device());
    const std::int64_t count = g.shape()[axis];
    copy_along_axis(g, count, 0, gx, n, start, count, outer, inner);
    return Grads{gx};
  });
  return y;
}

Tensor concat(const std::vector<Tensor>& xs, int axis_in) {
  check(!xs.empty(), "concat: no tensors given");
  for (const auto& x : xs) cpu::check_defined("concat", x);
  const Shape& first = xs[0].shape();
  const int axis = normalize_axis("concat", axis_in, static_cast<int>(first.size()));
  std::int64_t total = 0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const Shape& s = xs[k].shape();
    check(xs[k].dtype() == xs[0].dtype(), "concat: tensor " + std::to_string(k) + " has dtype " +
                                              dtype_name(xs[k].dtype()) + ", tensor 0 has " +
                                              dtype_name(xs[0].dtype()));
    check(xs[k].device() == xs[0].device(), "concat: tensor " + std::to_string(k) + " is on " +
                                                device_name(xs[k].device()) + ", tensor 0 on " +
                                                device_name(xs[0].device()));
    bool same = s.size() == first.size();
    for (std::size_t i = 0; same && i < s.size(); ++i) same = static_cast<int>(i) == axis || s[i] == first[i];
    check(same, "concat: tensor " + std::to_string(k) + " has shape " + shape_str(s) + ", which does not match " +
                    shape_str(first) + " outside axis " + std::to_string(axis));
    total += s[axis];
  }
  Shape out_shape = first;
  out_shape[axis] = total;
  Tensor y = Tensor::empty(out_shape, xs[0].dtype(), xs[0].device());
  std::int64_t outer, inner;
  split_at(out_shape, axis, outer, inner);
  std::vector<std::int64_t> starts;
  std::int64_t at = 0;
  for (const auto& x : xs) {
    starts.push_back(at);
    copy_along_axis(x, x.shape()[axis], 0, y, total, at, x.shape()[axis], outer, inner);
    at += x.shape()[axis];
  }
  // Backward: each input's gradient is its slice of g.
  record(y, "concat", xs, [axis, starts, total](const Tensor& g, const std::vector<bool>& needs) {
    Grads grads(starts.size());
    for (std::size_t k = 0; k < starts.size(); ++k) {
      const std::int64_t end = k + 1 < starts.size() ? starts[k + 1] : total;
      if (needs[k]) grads[k] = slice(g, axis, starts[k], end);
    }
    return grads;
  });
  return y;
}

}  // namespace hkt
