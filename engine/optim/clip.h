// clip.h: gradient clipping by the global L2 norm, with the non-finite check of
// docs/engine.md convention 9 (a NaN or inf gradient stops training; it is never skipped).
#pragma once

#include <vector>

#include "tensor.h"

namespace hkt::optim {

/// Clips the gradients of `parameters` in place by their global L2 norm and returns that
/// norm (before clipping) as a double.
///
/// norm = sqrt(sum over every .grad() element of g^2), accumulated in double whatever the
/// gradients' dtype. Parameters without a gradient are skipped (as PyTorch). With
/// coef = max_norm / (norm + 1e-6), every gradient is multiplied by coef when coef < 1:
/// PyTorch's torch.nn.utils.clip_grad_norm_ (v1.13) formula, which scales by
/// min(1, coef). (So a norm within 1e-6 below max_norm is scaled too, by a factor within
/// 1e-6 of 1, exactly as in PyTorch.) max_norm <= 0 or +inf disables the scaling but the
/// norm is still computed and checked. No gradients at all: returns 0.
///
/// Throws hkt::Error (and changes nothing) when the norm is not finite, naming the
/// parameter (its index in `parameters`) and the element holding the first non-finite
/// value: "clip_grad_norm: gradient of parameter 3 (shape [4,4]) is not finite: element 5
/// is nan"; or, if every value is finite but the sum of squares overflows float64, saying
/// so. Also throws for a NaN max_norm, an undefined parameter, or a gradient that is not
/// a float tensor of the parameter's shape. Gradients in GPU memory are summed in one
/// call (cuda::sum_of_squares: one wait for the device).
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm);

/// clip_grad_norm for gradients in GPU memory, with no wait for the device: the sum of
/// squares of every gradient goes into a float64 scalar in device memory, and each
/// gradient is scaled by a kernel that reads it there (the formula and rounding of
/// clip_grad_norm: by coef = max_norm / (norm + 1e-6) when coef < 1). Returns that sum of
/// squares, a float64 tensor of shape [] on the GPU; the norm is the square root of its
/// value, read when the caller needs it (the trainer: at its next log step).
///
/// A non-finite norm is not checked here (that would wait for the device): the gradients
/// are then left unscaled, and the caller must check the returned value before trusting
/// what was computed from them (docs/engine.md convention 9; the trainer stops the run,
/// naming the step). No gradients at all: returns 0. Throws hkt::Error for a NaN
/// max_norm, an undefined parameter, a gradient that is not float, not of its parameter's
/// shape, or not in GPU memory.
Tensor clip_grad_norm_on_device(const std::vector<Tensor>& parameters, double max_norm);

}  // namespace hkt::optim
