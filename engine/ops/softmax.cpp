// softmax.cpp: softmax, log_softmax (last axis, optional additive mask) and
// cross_entropy, forward and backward side by side.
//
// Rows are the last axis. For a row z = x + mask with m = max z:
//   softmax p = e^(z - m) / sum e^(z - m),  log_softmax = z - m - log sum e^(z - m).
// A row of all -inf (every key masked) gives p = 0, log p = -inf and zero gradient
// (docs/engine.md convention 2). A masked entry (z = -inf) of a live row is a constant output (0 or
// -inf) whatever x is, so its input gets zero gradient.
#include <cmath>

#include "../ops.h"
#include "common/rows.h"
#include "cpu_kernels.h"

namespace hkt {

namespace {

// Writes log_softmax of the rows of z into out (rows x n). -inf rows stay -inf.
template <class E>
void log_softmax_rows(const E* z, E* out, std::int64_t rows, std::int64_t n) {
  cpu::parallel_for(rows, n * 4,
                    [&](std::int64_t r) { fn::log_softmax_row(z + r * n, out + r * n, n); });  // common/rows.h
}

// z = x + mask (mask broadcast to x, constant), or x itself.
Tensor masked_input(const char* op, const Tensor& x, const Tensor& mask) {
  cpu::check_defined(op, x);
  if (!mask.defined()) return x.detach();
  cpu::check_defined(op, mask, "mask");
  check(mask.dtype() == x.dtype(), std::string(op) + ": mask dtype " + dtype_name(mask.dtype()) +
                                       " differs from input dtype " + dtype_name(x.dtype()) +
                                       " (use 0 and -inf in the input's dtype)");
  check(broadcast_shapes(op, x.shape(), mask.shape()) == x.shape(),
        std::string(op) + ": mask of shape " + shape_str(mask.shape()) + " does not broadcast to input " +
            shape_str(x.shape()));
  NoGradGuard constant;  // the mask follows the input to its device (a constant, like indices)
  return add(x.detach(), cpu::on_device(mask, x.device()).detach());
}

std::int64_t last_size(const Tensor& x) { return x.dim() == 0 ? 1 : x.shape()[x.dim() - 1]; }

// softmax (log = false) or log_softmax (log = true) of the last axis of x + mask: one
// row function each way (common/rows.h), on the CPU or through the CUDA backend.
//   softmax backward:     dx_j = p_j (g_j - sum_k g_k p_k); p_j = 0 gives 0 for masked
//                         entries and dead rows.
//   log_softmax backward: dx_j = g_j - p_j sum_k g_k with p = e^y; 0 where y_j = -inf.
Tensor softmax_family(const char* op, const Tensor& x, const Tensor& mask, bool log) {
  const Tensor z = masked_input(op, x, mask);
  const std::int64_t n = last_size(x), rows = n == 0 ? 0 : x.numel() / n;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using E = decltype(tag);
    if (cpu::on_cuda(x)) return cuda::softmax_rows(z.raw_data(), y.raw_data(), rows, n, !log, x.dtype());
    const E* pz = z.data<E>();
    E* py = y.data<E>();
    if (log) return log_softmax_rows(pz, py, rows, n);
    cpu::parallel_for(rows, n * 5,
                      [&](std::int64_t r) { fn::softmax_row(pz + r * n, py + r * n, n); });  // common/rows.h
  });
  record(y, op, {x}, [y = y.detach(), n, rows, log, op](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(y.shape(), y.dtype(), y.device());
    dispatch_floating(y.dtype(), (std::string(op) + " backward").c_str(), [&](auto tag) {
      using E = decltype(tag);
      if (cpu::on_cuda(y))
        return cuda::softmax_backward_rows(y.raw_data(), g.raw_data(), gx.raw_data(), rows, n, !log, y.dtype());
      const E *py = y.data<E>(), *pg = g.data<E>();
      E* out = gx.data<E>();
      cpu::parallel_for(rows, n * 3, [&](std::int64_t r) {
        if (log)
          fn::log_softmax_backward_row(py + r * n, pg + r * n, out + r * n, n);
        else
          fn::softmax_backward_row(py + r * n, pg + r * n, out + r * n, n);
      });
    });
    return Grads{gx};
  });
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, const Tensor& mask) { return softmax_family("softmax", x, mask, false); }

Tensor log_softmax(const Tensor& x, const Tensor& mask) { return softmax_family("log_softmax", x, mask, true); }

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, std::int64_t ignore_index, double label_smoothing) {
  cpu::check_defined("cross_entropy", logits, "logits");
  cpu::check_indices("cross_entropy", targets, "targets");
  check(logits.dim() >= 1, "cross_entropy: logits must have a class axis, got shape []");
  check(label_smoothing >= 0.0 && label_smoothing <= 1.0,
        "cross_entropy: label_smoothing must be in [0, 1], got " + std::to_string(label_smoothing));
  const Shape expected(logits.shape().begin(), logits.shape().end() - 1);
  check(targets.shape() == expected, "cross_entropy: logits " + shape_str(logits.shape()) + " need targets of shape " +
                                         shape_str(expected) + ", got " + shape_str(targets.shape()));
  const std::int64_t C = logits.shape().back(), N = targets.numel();
  check(C > 0, "cross_entropy: logits have 0 classes");
  const std::vector<std::int64_t> host_targets = cpu::host_indices(targets);
  const std::int64_t* t = host_targets.data();
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < N; ++i) {
    if (t[i] == ignore_index) continue;
    check(t[i] >= 0 && t[i] < C, "cross_entropy: target " + std::to_string(t[i]) + " at position " + std::to_string(i) +
                                     " is outside [0, " + std::to_string(C) + ")");
    ++count;
  }
  Tensor logp = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  Tensor loss = Tensor::empty({}, logits.dtype(), logits.device());
  const double eps = label_smoothing;
  const Tensor saved_targets = cpu::on_device(targets, logits.device()).detach();
  dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using E = decltype(tag);
    if (cpu::on_cuda(logits)) {
      cuda::softmax_rows(logits.raw_data(), logp.raw_data(), N, C, false, logits.dtype());
      const auto* pt = static_cast<const std::int64_t*>(saved_targets.raw_data());
      cuda::cross_entropy_loss(logp.raw_data(), pt, loss.raw_data(), N, C, ignore_index, eps, count, logits.dtype());
      return;
    }
    const E* pl = logits.data<E>();
    E* lp = logp.data<E>();
    log_softmax_rows(pl, lp, N, C);
    // Summed in double in row order: one deterministic number whatever the threads.
    double total = 0.0;
    for (std::int64_t i = 0; i < N; ++i)
      if (t[i] != ignore_index) total += fn::cross_entropy_row(lp + i * C, C, t[i], eps);  // common/rows.h
    loss.data<E>()[0] = count > 0 ? static_cast<E>(total / static_cast<double>(count)) : E(0);
  });
  // dlogits[i, c] = g (p[i, c] - q[i, c]) / count, q = (1 - eps) onehot(t_i) + eps / C;
  // rows with an ignored target get 0 (and so does everything when count = 0).
  record(loss, "cross_entropy", {logits, targets},
         [logp = logp.detach(), targets = saved_targets, ignore_index, eps, count, N, C](const Tensor& g,
                                                                                         const std::vector<bool>&) {
           Tensor gx = Tensor::zeros(logp.shape(), logp.dtype(), logp.device());
           if (count == 0) return Grads{gx, Tensor()};
           dispatch_floating(logp.dtype(), "cross_entropy backward", [&](auto tag) {
             using E = decltype(tag);
             if (cpu::on_cuda(logp)) {
               const auto* pt = static_cast<const std::int64_t*>(targets.raw_data());
               // The upstream gradient stays on the device: the kernel reads it.
               cuda::cross_entropy_backward(logp.raw_data(), pt, gx.raw_data(), N, C, ignore_index, eps, g.raw_data(),
                                            count, logp.dtype());
               return;
             }
             const E* lp = logp.data<E>();
             const std::int64_t* tt = targets.data<std::int64_t>();
             E* out = gx.data<E>();
             const E scale = static_cast<E>(g.item() / static_cast<double>(count));
             if (scale == E(0)) return;  // docs/engine.md conventions 3 and 4: exactly zero
             cpu::parallel_for(N, C, [&](std::int64_t i) {
               if (tt[i] == ignore_index) return;
               for (std::int64_t c = 0; c < C; ++c)
                 out[i * C + c] = fn::cross_entropy_grad(lp[i * C + c], c, C, tt[i], eps, scale);
             });
           });
           return Grads{gx, Tensor()};
         });
  return loss;
}

}  // namespace hkt
