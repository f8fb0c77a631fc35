// matmul.cpp: batched matrix product through BLAS, forward and backward.
//
// C = A B with A [..., m, k], B [..., k, n]. Backward (g = dL/dC, [..., m, n]):
//   dA = g B^T   [..., m, k]      dB = A^T g   [..., k, n]
// then summed over batch dimensions that were broadcast. The transposes are BLAS flags,
// never copies.
#include <cblas.h>
#include <omp.h>

#include <mutex>

#include "../ops.h"
#include "blas_gemm.h"
#include "cpu_kernels.h"

namespace hkt {

namespace cpu {

// OpenBLAS runs single-threaded; the engine splits products over its own OpenMP threads
// (below). Two thread pools on the same cores spin against each other: measured on a
// 2-core machine, OpenBLAS's and OpenMP's idle-waiting took 65 % of a training step.
void use_single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

}  // namespace cpu

namespace {

// op(a) op(b) over broadcast batch dimensions. a is [..., m, k] ([..., k, m] if trans_a),
// b is [..., k, n] ([..., n, k] if trans_b). Shapes were checked by the caller.
// Parallel work: whole products when there are enough of them, else blocks of rows of
// each product (rows of C are independent). Each element of C is always one BLAS dot
// product over k, so the split changes no result.
Tensor batched_gemm(const char* op, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  cpu::use_single_threaded_blas();
  const Shape &sa = a.shape(), &sb = b.shape();
  const int ra = a.dim(), rb = b.dim();
  const std::int64_t m = trans_a ? sa[ra - 1] : sa[ra - 2], k = trans_a ? sa[ra - 2] : sa[ra - 1];
  const std::int64_t n = trans_b ? sb[rb - 2] : sb[rb - 1];
  const Shape batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
  const Shape batch = broadcast_shapes(op, batch_a, batch_b);
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  if (m == 0 || n == 0 || k == 0) return Tensor::zeros(out_shape, a.dtype(), a.device());  // an empty sum is 0
  // Not zeroed here: every row block below is written by blas_gemm with beta = 0, which
  // zeroes its own rows in the thread that computes them.
  Tensor c = Tensor::empty(out_shape, a.dtype(), a.device());
  const auto stride_a = cpu::broadcast_strides(batch_a, batch), stride_b = cpu::broadcast_strides(batch_b, batch);
  const std::int64_t batches = numel(batch);
  if (cpu::on_cuda(a)) {
    // cuBLAS's strided batch walks one stride per operand; a broadcast that repeats a
    // whole operand is stride 0, any other broadcast is materialised first.
    const auto batch_stride = [&](const Tensor& t, const Shape& own,
                                  std::int64_t matrix) -> std::pair<Tensor, std::int64_t> {
      if (numel(own) == 1) return {t, 0};
      if (numel(own) == batches) return {t, matrix};  // same batch size: the batch dims match
      Shape full = batch;
      full.push_back(t.shape()[t.dim() - 2]);
      full.push_back(t.shape()[t.dim() - 1]);
      NoGradGuard constant;  // a copy inside the op, not a recorded step
      return {add(Tensor::zeros(full, t.dtype(), t.device()), t.detach()), matrix};
    };
    const auto [ta, sa_] = batch_stride(a, batch_a, m * k);
    const auto [tb, sb_] = batch_stride(b, batch_b, k * n);
    cuda::gemm_strided_batched(trans_a, trans_b, m, n, k, ta.raw_data(), sa_, tb.raw_data(), sb_, c.raw_data(), m * n,
                               batches, a.dtype());
    return c;
  }
  const std::int64_t threads = omp_get_max_threads();
  // Tasks: (batch, row block). Enough products: one task each; else split rows.
  const std::int64_t blocks = batches >= threads ? 1 : std::min<std::int64_t>(m, (threads + batches - 1) / batches);
  const std::int64_t rows_per_block = (m + blocks - 1) / blocks;
  dispatch_floating(a.dtype(), op, [&](auto tag) {
    using E = decltype(tag);
    const E *pa = a.data<E>(), *pb = b.data<E>();
    E* pc = c.data<E>();
    cpu::parallel_for(batches * blocks, m * n * k / blocks, [&](std::int64_t task) {
      const std::int64_t i = task / blocks, r0 = (task % blocks) * rows_per_block,
                         r1 = std::min(m, r0 + rows_per_block);
      if (r0 >= r1) return;
      std::int64_t ia = 0, ib = 0, rest = i;
      for (int d = static_cast<int>(batch.size()) - 1; d >= 0; --d) {
        const std::int64_t coord = rest % batch[d];
        rest /= batch[d];
        ia += coord * stride_a[d];
        ib += coord * stride_b[d];
      }
      // Rows r0..r1 of op(A): rows of A, or columns of a transposed A.
      const E* a_rows = pa + ia * m * k + (trans_a ? r0 : r0 * k);
      cpu::blas_gemm<E>(trans_a, trans_b, r1 - r0, n, k, E(1), a_rows, trans_a ? m : k, pb + ib * k * n,
                        trans_b ? k : n, false, pc + i * m * n + r0 * n, n);
    });
  });
  return c;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  cpu::check_defined("matmul", a, "first input");
  cpu::check_defined("matmul", b, "second input");
  cpu::check_same_kind("matmul", a, b);
  check(is_floating(a.dtype()), "matmul: expected float32 or float64 tensors, got " + dtype_name(a.dtype()));
  const std::string shapes = shape_str(a.shape()) + " x " + shape_str(b.shape());
  check(a.dim() >= 2 && b.dim() >= 2, "matmul: " + shapes + ": both inputs need rank >= 2");
  const std::int64_t ka = a.shape()[a.dim() - 1], kb = b.shape()[b.dim() - 2];
  check(ka == kb,
        "matmul: " + shapes + ": inner sizes " + std::to_string(ka) + " and " + std::to_string(kb) + " differ");
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  bool broadcastable = true;
  try {
    broadcast_shapes("matmul", batch_a, batch_b);
  } catch (const Error&) {
    broadcastable = false;
  }
  check(broadcastable, "matmul: " + shapes + ": batch dimensions " + shape_str(batch_a) + " and " + shape_str(batch_b) +
                           " cannot be broadcast");
  Tensor c = batched_gemm("matmul", a, b, false, false);
  record(c, "matmul", {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g, const std::vector<bool>& needs) {
    Grads grads(2);
    if (needs[0]) grads[0] = sum_to(batched_gemm("matmul backward", g, b, false, true), a.shape());  // g B^T
    if (needs[1]) grads[1] = sum_to(batched_gemm("matmul backward", a, g, true, false), b.shape());  // A^T g
    return grads;
  });
  return c;
}

}  // namespace hkt
