// schedule.cpp: learning-rate schedules; the formulas are documented in schedule.h.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "error.h"

namespace hkt::optim {
namespace {

std::string number(double x) { return format_number(x); }  // error.h

/// Linear warmup (docs/engine.md convention 8): base * min(1, step / warmup); the whole base without warmup.
double warmup_factor(const ScheduleConfig& c, std::int64_t step) {
  if (c.warmup_steps == 0) return 1.0;
  return std::min(1.0, static_cast<double>(step) / static_cast<double>(c.warmup_steps));
}

/// Cosine decay after warmup: min + (base - min) (1 + cos(pi p)) / 2, p clamped to [0, 1].
double cosine(const ScheduleConfig& c, std::int64_t step) {
  const double p =
      std::min(1.0, static_cast<double>(step - c.warmup_steps) / static_cast<double>(c.total_steps - c.warmup_steps));
  return c.min_lr + 0.5 * (c.base_lr - c.min_lr) * (1.0 + std::cos(std::numbers::pi * p));
}

}  // namespace

void validate(const ScheduleConfig& c) {
  const std::string where = "schedule (kind '" + c.kind + "'): ";
  check(c.kind == "constant" || c.kind == "cosine" || c.kind == "inverse_sqrt",
        "schedule: unknown kind '" + c.kind + "' (known: constant, cosine, inverse_sqrt)");
  check(std::isfinite(c.base_lr) && c.base_lr > 0, where + "base_lr must be finite and > 0, got " + number(c.base_lr));
  check(c.warmup_steps >= 0, where + "warmup_steps must be >= 0, got " + std::to_string(c.warmup_steps));
  check(c.total_steps >= 0, where + "total_steps must be >= 0, got " + std::to_string(c.total_steps));
  check(std::isfinite(c.min_lr) && c.min_lr >= 0 && c.min_lr <= c.base_lr,
        where + "min_lr must be in [0, base_lr = " + number(c.base_lr) + "], got " + number(c.min_lr));
  if (c.kind == "cosine")
    check(c.total_steps > c.warmup_steps, where + "total_steps (" + std::to_string(c.total_steps) +
                                              ") must be greater than warmup_steps (" + std::to_string(c.warmup_steps) +
                                              ")");
  if (c.kind == "inverse_sqrt")
    check(c.warmup_steps >= 1, where + "warmup_steps must be >= 1 (lr = base_lr * sqrt(warmup_steps / step)), got " +
                                   std::to_string(c.warmup_steps));
}

double learning_rate(const ScheduleConfig& c, std::int64_t step) {
  validate(c);
  check(step >= 1, "learning_rate: step must be >= 1 (steps are counted from 1), got " + std::to_string(step));
  if (step <= c.warmup_steps) return c.base_lr * warmup_factor(c, step);  // base * step / warmup
  if (c.kind == "cosine") return cosine(c, step);
  if (c.kind == "inverse_sqrt")  // base * sqrt(warmup / step)
    return c.base_lr * std::sqrt(static_cast<double>(c.warmup_steps) / static_cast<double>(step));
  return c.base_lr;  // constant
}

}  // namespace hkt::optim
