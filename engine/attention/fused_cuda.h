// fused_cuda.h: the fused hierarchical attention op on CUDA tensors (fused_cuda.cpp),
// called by hkt_attention_fused when its inputs are on the GPU. Internal to attention/.
#pragma once

#include <vector>

#include "hkt_attention.h"

namespace hkt::attention {

/// True when the fused CUDA kernels cover L levels of head width d_h (L <= 4,
/// d_h <= 128; kernels/cuda_backend.h); callers use the composite op otherwise.
bool fused_cuda_supports(int L, std::int64_t d_h);

/// hkt_attention_fused on CUDA tensors (arguments already checked, `scale` resolved).
/// bf16 = true runs float32 tensors through the v2 tensor-core kernels
/// (AttentionPrecision::Bf16); float64 tensors, or bf16 = false, take the kernel version
/// chosen by cuda::set_attention_kernel (v1 unless changed). Throws hkt::Error when L or
/// d_h are outside fused_cuda_supports.
Tensor fused_cuda(const std::vector<Tensor>& q, const std::vector<Tensor>& k, const Tensor& v, const Tensor& alpha,
                  const Tensor& key_mask, bool causal, double scale, bool bf16 = false);

}  // namespace hkt::attention
