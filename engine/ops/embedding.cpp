// embedding.cpp: token embedding lookup and its scatter-add backward.
#include <cstring>
#include <vector>

#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  cpu::check_defined("embedding", weight, "weight");
  cpu::check_indices("embedding", indices, "indices");
  check(weight.dim() == 2, "embedding: weight must be [V, D], got " + shape_str(weight.shape()));
  check(is_floating(weight.dtype()), "embedding: weight must be float32 or float64");
  const std::int64_t V = weight.shape()[0], D = weight.shape()[1], N = indices.numel();
  const std::vector<std::int64_t> host = cpu::host_indices(indices);  // checked on the host
  const std::int64_t* idx = host.data();
  for (std::int64_t i = 0; i < N; ++i)
    check(idx[i] >= 0 && idx[i] < V, "embedding: index " + std::to_string(idx[i]) + " at position " +
                                         std::to_string(i) + " is outside [0, " + std::to_string(V) + ")");
  Shape out_shape = indices.shape();
  out_shape.push_back(D);
  Tensor y = Tensor::empty(out_shape, weight.dtype(), weight.device());
  if (cpu::on_cuda(weight)) {
    const Tensor dev_indices = cpu::on_device(indices, Device::CUDA);
    cuda::embedding_forward(weight.raw_data(), static_cast<const std::int64_t*>(dev_indices.raw_data()), y.raw_data(),
                            N, D, weight.dtype());
    if (!grad_mode_enabled() || !weight.requires_grad()) return y;  // nothing to record (evaluation)
    // dW[v] = sum of g rows whose index is v: the positions of each row v, in increasing
    // order, as a CSR list (row_start [V + 1], rows_of [N]) built here on the host, so
    // that one GPU thread per dW element sums its rows in a fixed order (no atomics).
    std::vector<std::int64_t> row_start(static_cast<std::size_t>(V) + 1, 0), rows_of(static_cast<std::size_t>(N));
    for (std::int64_t i = 0; i < N; ++i) ++row_start[static_cast<std::size_t>(idx[i]) + 1];
    for (std::int64_t v = 0; v < V; ++v)
      row_start[static_cast<std::size_t>(v) + 1] += row_start[static_cast<std::size_t>(v)];
    std::vector<std::int64_t> next(row_start.begin(), row_start.end() - 1);
    for (std::int64_t i = 0; i < N; ++i)
      rows_of[static_cast<std::size_t>(next[static_cast<std::size_t>(idx[i])]++)] = i;
    const Tensor csr_start = Tensor::from_indices(row_start, {V + 1}).to(Device::CUDA);
    const Tensor csr_rows = Tensor::from_indices(rows_of, {N}).to(Device::CUDA);
    record(y, "embedding", {weight, indices}, [csr_start, csr_rows, V, D](const Tensor& g, const std::vector<bool>&) {
      Tensor dw = Tensor::empty({V, D}, g.dtype(), g.device());
      cuda::embedding_backward(g.raw_data(), static_cast<const std::int64_t*>(csr_start.raw_data()),
                               static_cast<const std::int64_t*>(csr_rows.raw_data()), dw.raw_data(), V, D, g.dtype());
      return Grads{dw, Tensor()};
    });
    return y;
  }
  const std::size_t row_bytes = static_cast<std::size_t>(D) * dtype_size(weight.dtype());
  const auto* pw = static_cast<const unsigned char*>(weight.raw_data());
  auto* py = static_cast<unsigned char*>(y.raw_data());
  cpu::parallel_for(N, D, [&](std::int64_t i) {
    if (row_bytes)
      std::memcpy(py + static_cast<std::size_t>(i) * row_bytes, pw + static_cast<std::size_t>(idx[i]) * row_bytes,
                  row_bytes);
  });
  // dW[v] = sum of g rows whose index is v. Threads split the D columns; each walks the
  // indices in order, so the sums never depend on timing (no atomics).
  record(y, "embedding", {weight, indices},
         [indices = cpu::on_device(indices, Device::CPU).detach(), V, D, N](const Tensor& g, const std::vector<bool>&) {
           Tensor dw = Tensor::empty({V, D}, g.dtype());
           dispatch_floating(g.dtype(), "embedding backward", [&](auto tag) {
             using E = decltype(tag);
             const E* pg = g.data<E>();
             const std::int64_t* ix = indices.data<std::int64_t>();
             E* out = dw.data<E>();
             // The sums run in double whatever E is (a token seen a million times would drift
             // by 1 % in a float32 total), then round once into dW.
             std::vector<double> acc(static_cast<std::size_t>(V * D), 0.0);
             constexpr std::int64_t kBlock = 64;
             const std::int64_t blocks = (D + kBlock - 1) / kBlock;
             cpu::parallel_for(blocks, N * kBlock, [&](std::int64_t b) {
               const std::int64_t j0 = b * kBlock, j1 = std::min(D, j0 + kBlock);
               for (std::int64_t i = 0; i < N; ++i)
                 for (std::int64_t j = j0; j < j1; ++j)
                   acc[static_cast<std::size_t>(ix[i] * D + j)] += static_cast<double>(pg[i * D + j]);
             });
             for (std::int64_t e = 0; e < V * D; ++e) out[e] = static_cast<E>(acc[static_cast<std::size_t>(e)]);
           });
           return Grads{dw, Tensor()};
         });
  return y;
}

}  // namespace hkt
