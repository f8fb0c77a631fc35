// adamw.h: the AdamW optimizer (decoupled weight decay), identical to PyTorch's
// torch.optim.AdamW (v1.13, foreach=False, amsgrad=False) up to float64 rounding.
//
// Reference: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019
// (Algorithm 2), as implemented by torch/optim/adamw.py (_single_tensor_adamw). With
// t = step_count() after the increment, g the gradient, and PyTorch's order of updates:
//
//   p <- p * (1 - lr * wd)                        (decoupled weight decay, first)
//   m <- beta1 * m + (1 - beta1) * g              (exp_avg)
//   v <- beta2 * v + (1 - beta2) * g * g          (exp_avg_sq)
//   p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// which is docs/engine.md convention 7, p <- p - lr * (m_hat / (sqrt(v_hat) + eps) + wd * p),
// except that (as in PyTorch) eps is added to sqrt(v_hat) and the decay term uses p
// before this step's Adam update. wd is config.weight_decay for parameters that decay()
// and 0 for the others.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tensor.h"

namespace hkt::optim {

/// AdamW hyperparameters (PyTorch's defaults except weight_decay's 0.01, which is also
/// PyTorch's). Valid values: lr finite >= 0, beta1 and beta2 in [0, 1), eps finite > 0
/// (PyTorch also allows 0, which gives 0/0 = NaN for a zero gradient), weight_decay
/// finite >= 0.
struct AdamWConfig {
  double lr = 1e-3;  // checked, but step(lr) takes the rate of each step (from a schedule)
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

/// AdamW over named parameters. Parameters are leaf tensors (requires_grad) in CPU
/// memory, float32 or float64; step() updates them in place (under a NoGradGuard,
/// writing through data<E>()), so every holder of the tensor sees the new values. The
/// moments exp_avg and exp_avg_sq have the parameter's shape and dtype and start at 0.
///
/// Weight decay (docs/engine.md convention 7) applies to matrices (rank >= 2) only; never to rank-0/1
/// parameters (biases, LayerNorm weights and biases), to level-weight logits (a name
/// containing "level_logits") or to downsampler taps (a name containing "downsample.").
///
/// One difference from PyTorch: the step count t is one count for the whole optimizer,
/// where PyTorch keeps one per parameter. They agree whenever every parameter with a
/// gradient has had one at every step (the usual case); a parameter that first gets a
/// gradient at step t is bias-corrected with t here, with 1 in PyTorch.
class AdamW {
 public:
  /// Takes (name, parameter) pairs, e.g. Module::named_parameters(). Throws hkt::Error
  /// naming the parameter for an empty or duplicate name, the same tensor under two
  /// names, an undefined tensor, a tensor that is not a leaf or does not require grad, a
  /// non-float dtype or a tensor not in CPU memory; and naming the field for an invalid
  /// config (see AdamWConfig).
  AdamW(std::vector<std::pair<std::string, Tensor>> named_parameters, const AdamWConfig& config);

  /// One AdamW update with learning rate `lr` (the formula in the file comment), using
  /// each parameter's .grad(). Increments step_count() first; bias correction uses the
  /// new count. A parameter without a gradient is left unchanged, and so are its moments
  /// (as PyTorch). Throws hkt::Error, before changing anything, for lr not finite and
  /// >= 0, or a gradient whose shape, dtype or device differs from its parameter's
  /// (naming the parameter). Non-finite gradients are not checked here (clip_grad_norm
  /// does that, convention 9); they propagate into the parameters.
  void step(double lr);

  /// Clears every parameter's .grad (sets it undefined), as PyTorch's set_to_none=True.
  void zero_grad();

  /// Number of step() calls so far (or the loaded "step").
  std::int64_t step_count() const;

  /// Whether weight decay applies to the parameter `name` (rank >= 2 and the name holds
  /// neither "level_logits" nor "downsample."). Throws hkt::Error for an unknown name.
  bool decays(const std::string& name) const;

  /// The optimizer state for a checkpoint: "<name>.exp_avg" and "<name>.exp_avg_sq"
  /// (copies, shape and dtype of the parameter) for every parameter in construction
  /// order, then "step" (an int64 scalar, shape []).
  std::vector<std::pair<std::string, Tensor>> state() const;

  /// Restores what state() returned (from any AdamW over parameters with the same names,
  /// shapes and dtypes), copying the values. Throws hkt::Error, before changing
  /// anything, naming every missing or unexpected entry, a repeated entry, an entry whose
  /// shape, dtype or device does not match its parameter, "step" that is not a
  /// non-negative int64 scalar, or moments that are not finite (exp_avg_sq also >= 0; it
  /// may be +inf, which AdamW itself writes when a finite gradient's square overflows).
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state);

 private:
  /// One parameter and its moments.
  struct Slot {
    std::string name;
    Tensor param;
    Tensor exp_avg;     // m, first moment
    Tensor exp_avg_sq;  // v, second moment
    bool decay = false;
  };

  const Slot& slot(const std::string& name) const;
  void check_grads() const;

  std::vector<Slot> slots_;
  AdamWConfig config_;
  std::int64_t step_count_ = 0;
};

}  // namespace hkt::optim
