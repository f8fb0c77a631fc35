// fused_cuda.cpp: hkt_attention_fused for CUDA tensors: forward and backward through
// the fused attention kernels of the CUDA backend (kernels/backend/attention_v1.cpp; v0 when chosen;
// attention_v2.cpp and attention_v2_backward.cpp for AttentionPrecision::Bf16),
// recorded for autodiff like the CPU op. Same meaning as the CPU op: O(T d_h) memory,
// the LSE saved by the forward, dq[l], dk[l], dv and dalpha from the backward.
#include "fused_cuda.h"

#include "../autograd.h"
#include "../ops/cpu_kernels.h"
#include "cuda_backend.h"

namespace hkt::attention {

bool fused_cuda_supports(int L, std::int64_t d_h) {
  return L >= 1 && L <= cuda::kMaxAttentionLevels && d_h >= 1 && d_h <= cuda::kMaxAttentionHeadDim;
}

Tensor fused_cuda(const std::vector<Tensor>& q, const std::vector<Tensor>& k, const Tensor& v, const Tensor& alpha,
                  const Tensor& key_mask, bool causal, double scale, bool bf16) {
  const int L = static_cast<int>(q.size());
  const std::int64_t B = v.shape()[0], H = v.shape()[1], T = v.shape()[2], dh = v.shape()[3];
  check(fused_cuda_supports(L, dh),
        "hkt_attention_fused: the CUDA kernels take L <= " + std::to_string(cuda::kMaxAttentionLevels) +
            " levels and d_h <= " + std::to_string(cuda::kMaxAttentionHeadDim) + ", got L = " + std::to_string(L) +
            ", d_h = " + std::to_string(dh) + " (use hkt_attention_composite)");
  // The key mask as int64 on the device (the mask is [B, T] of 0/1, any dtype, any device).
  Tensor keep;
  if (key_mask.defined()) {
    std::vector<std::int64_t> values;
    for (double x : key_mask.to_vector()) values.push_back(x != 0.0 ? 1 : 0);
    keep = Tensor::from_indices(values, {B, T}).to(Device::CUDA);
  }
  cuda::AttentionArgs args{.v = v.raw_data(),
                           .alpha = alpha.raw_data(),
                           .keep = keep.defined() ? static_cast<const std::int64_t*>(keep.raw_data()) : nullptr,
                           .B = B,
                           .H = H,
                           .T = T,
                           .dh = dh,
                           .L = L,
                           .causal = causal,
                           .scale = scale};
  for (int l = 0; l < L; ++l) {  // the per-level arrays
    args.q[l] = q[static_cast<std::size_t>(l)].raw_data();
    args.k[l] = k[static_cast<std::size_t>(l)].raw_data();
    args.Tl[l] = q[static_cast<std::size_t>(l)].shape()[2];
  }
  Tensor out = Tensor::empty(v.shape(), v.dtype(), Device::CUDA);
  Tensor lse = Tensor::empty({B, H, T}, DType::Float64, Device::CUDA);  // float64 whatever the dtype (cuda_backend.h)
  std::vector<Tensor> inputs(q);
  inputs.insert(inputs.end(), k.begin(), k.end());
  inputs.push_back(v);
  inputs.push_back(alpha);
  const bool v2 = bf16 && v.dtype() == DType::Float32;  // float64 keeps its precision
  // A training step that would reach a v2 backward too large for the device fails now,
  // before the forward.
  if (v2 && any_requires_grad(inputs)) cuda::check_attention_backward_v2(args);
  const int version = v2 ? 2 : -1;  // -1: the process-wide choice (cuda::set_attention_kernel)
  cuda::hkt_attention_forward(args, out.raw_data(), lse.raw_data(), v.dtype(), version);

  // The saved tensors keep the memory args points into alive until the backward.
  std::vector<Tensor> saved;
  for (const auto& t : inputs) saved.push_back(t.detach());
  record(out, "hkt_attention_fused", inputs,
         [args, saved, keep, out = out.detach(), lse, version](const Tensor& grad_out, const std::vector<bool>& needs) {
           const auto n = static_cast<std::size_t>(args.L);
           Grads grads;
           void* dq[cuda::kMaxAttentionLevels] = {};
           void* dk[cuda::kMaxAttentionLevels] = {};
           for (std::size_t i = 0; i < 2 * n + 1; ++i)  // q[l], k[l], v: every element is written
             grads.push_back(Tensor::empty(saved[i].shape(), saved[i].dtype(), Device::CUDA));
           for (std::size_t l = 0; l < n; ++l) {
             dq[l] = grads[l].raw_data();
             dk[l] = grads[n + l].raw_data();
           }
           const bool want_dalpha = needs[2 * n + 1];
           Tensor dalpha = want_dalpha ? Tensor::empty(saved[2 * n + 1].shape(), out.dtype(), Device::CUDA) : Tensor();
           cuda::hkt_attention_backward(args, out.raw_data(), lse.raw_data(), grad_out.raw_data(), dq, dk,
                                        grads[2 * n].raw_data(), want_dalpha ? dalpha.raw_data() : nullptr, out.dtype(),
                                        version);
           grads.push_back(dalpha);
           return grads;
         });
  return out;
}

}  // namespace hkt::attention
