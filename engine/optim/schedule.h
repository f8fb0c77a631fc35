// schedule.h: learning-rate schedules (warmup, then constant, cosine or inverse-sqrt).
//
// Steps are counted from 1 (docs/engine.md convention 8): the learning rate of the first
// optimizer step is learning_rate(config, 1), and linear warmup gives it
// base_lr / warmup_steps, never 0.
#pragma once

#include <cstdint>
#include <string>

namespace hkt::optim {

/// A learning-rate schedule. Every kind starts with linear warmup over warmup_steps
/// (0 = none): lr(step) = base_lr * min(1, step / warmup_steps). After warmup:
///   "constant":     lr = base_lr.
///   "cosine":       lr = min_lr + (base_lr - min_lr) (1 + cos(pi p)) / 2 with
///                   p = (step - warmup_steps) / (total_steps - warmup_steps), so lr is
///                   base_lr at the end of warmup and min_lr at total_steps; after
///                   total_steps it stays at min_lr. (Loshchilov & Hutter, "SGDR",
///                   ICLR 2017, without restarts; the warmup-cosine of GPT-2/3 recipes.)
///   "inverse_sqrt": lr = base_lr * sqrt(warmup_steps / step) (Vaswani et al., "Attention
///                   is all you need", 2017, section 5.3, scaled so that the peak is
///                   base_lr); needs warmup_steps >= 1.
/// total_steps and min_lr are used by "cosine" only, but validate() checks them for
/// every kind (total_steps >= 0, 0 <= min_lr <= base_lr).
struct ScheduleConfig {
  std::string kind = "constant";
  double base_lr = 1e-3;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 0;
  double min_lr = 0.0;
};

/// Checks a schedule; throws hkt::Error naming the bad field: an unknown kind, base_lr
/// not finite and > 0, warmup_steps < 0, total_steps < 0, min_lr not finite or outside
/// [0, base_lr], and for "cosine" total_steps <= warmup_steps, for "inverse_sqrt"
/// warmup_steps < 1.
void validate(const ScheduleConfig& config);

/// The learning rate of optimizer step `step` (counted from 1, convention 8), by the
/// formulas of ScheduleConfig. Always > 0, except that cosine reaches min_lr (which may
/// be 0) at total_steps. Throws hkt::Error for an invalid config (see validate) or step < 1.
double learning_rate(const ScheduleConfig& config, std::int64_t step);

}  // namespace hkt::optim
