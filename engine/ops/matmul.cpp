// matmul.cpp: batched matrix product through BLAS, forward and backward.
//
// C = A B with A [..., m, k], B [..., k, n]. Backward (g = dL/dC, [..., m, n]):
//   dA = g B^T   [..., m, k]      dB = A^T g   [..., k, n]
// then summed over batch dimensions that were broadcast. The transposes are BLAS flags,
// never copies.
#include <cblas.h>

#include "../ops.h"
#include "cpu_kernels.h"

namespace hkt {

namespace {

template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, const T* b, T* c) {
  // Row-major C[m,n] = op(A) op(B); lda/ldb are the stored row lengths.
  const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  const auto lda = static_cast<blasint>(trans_a ? m : k), ldb = static_cast<blasint>(trans_b ? k : n);
  const auto M = static_cast<blasint>(m), N = static_cast<blasint>(n), K = static_cast<blasint>(k);
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, 1.0, a, lda, b, ldb, 0.0, c, N);
}

// op(a) op(b) over broadcast batch dimensions. a is [..., m, k] ([..., k, m] if trans_a),
// b is [..., k, n] ([..., n, k] if trans_b). Shapes were checked by the caller.
Tensor batched_gemm(const char* op, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const Shape &sa = a.shape(), &sb = b.shape();
  const int ra = a.dim(), rb = b.dim();
  const std::int64_t m = trans_a ? sa[ra - 1] : sa[ra - 2], k = trans_a ? sa[ra - 2] : sa[ra - 1];
  const std::int64_t n = trans_b ? sb[rb - 2] : sb[rb - 1];
  const Shape batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
  const Shape batch = broadcast_shapes(op, batch_a, batch_b);
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor c = Tensor::zeros(out_shape, a.dtype());
  if (m == 0 || n == 0 || k == 0) return c;  // BLAS needs no call; an empty sum is 0
  const auto stride_a = cpu::broadcast_strides(batch_a, batch), stride_b = cpu::broadcast_strides(batch_b, batch);
  const std::int64_t batches = numel(batch);
  dispatch_floating(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T *pa = a.data<T>(), *pb = b.data<T>();
    T* pc = c.data<T>();
    for (std::int64_t i = 0; i < batches; ++i) {  // BLAS threads each product itself
      std::int64_t ia = 0, ib = 0, rest = i;
      for (int d = static_cast<int>(batch.size()) - 1; d >= 0; --d) {
        const std::int64_t coord = rest % batch[d];
        rest /= batch[d];
        ia += coord * stride_a[d];
        ib += coord * stride_b[d];
      }
      gemm<T>(trans_a, trans_b, m, n, k, pa + ia * m * k, pb + ib * k * n, pc + i * m * n);
    }
  });
  return c;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  cpu::check_cpu("matmul", a, "first input");
  cpu::check_cpu("matmul", b, "second input");
  cpu::check_same_kind("matmul", a, b);
  check(is_floating(a.dtype()), "matmul: expected float32 or float64 tensors, got " + dtype_name(a.dtype()));
  const std::string shapes = shape_str(a.shape()) + " x " + shape_str(b.shape());
  check(a.dim() >= 2 && b.dim() >= 2, "matmul: " + shapes + ": both inputs need rank >= 2");
  const std::int64_t ka = a.shape()[a.dim() - 1], kb = b.shape()[b.dim() - 2];
  check(ka == kb, "matmul: " + shapes + ": inner sizes " + std::to_string(ka) + " and " + std::to_string(kb) + " differ");
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
