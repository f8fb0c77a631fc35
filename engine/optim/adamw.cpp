// adamw.cpp: AdamW; the update formula and its source are in adamw.h.
#include "optim/adamw.h"

#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "autograd.h"
#include "common/adamw_update.h"
#include "cuda_backend.h"
#include "error.h"

namespace hkt::optim {
namespace {

std::string number(double x) { return format_number(x); }  // error.h

/// "AdamW: parameter 'name'", the prefix of messages about one parameter.
std::string param_where(const std::string& name) { return "AdamW: parameter '" + name + "'"; }

void validate(const AdamWConfig& c) {
  check(std::isfinite(c.lr) && c.lr >= 0, "AdamW: lr must be finite and >= 0, got " + number(c.lr));
  check(c.beta1 >= 0 && c.beta1 < 1, "AdamW: beta1 must be in [0, 1), got " + number(c.beta1));
  check(c.beta2 >= 0 && c.beta2 < 1, "AdamW: beta2 must be in [0, 1), got " + number(c.beta2));
  check(std::isfinite(c.eps) && c.eps > 0, "AdamW: eps must be finite and > 0, got " + number(c.eps));
  check(std::isfinite(c.weight_decay) && c.weight_decay >= 0,
        "AdamW: weight_decay must be finite and >= 0, got " + number(c.weight_decay));
}

void validate_parameter(const std::string& name, const Tensor& p) {
  check(!name.empty(), "AdamW: a parameter has an empty name");
  check(p.defined(), param_where(name) + " is undefined");
  check(is_floating(p.dtype()),
        param_where(name) + " has dtype " + dtype_name(p.dtype()) + "; expected float32 or float64");
  if (!p.is_leaf())
    throw Error(param_where(name) + " is not a leaf (it was produced by the op '" + p.grad_fn()->op + "')");
  check(p.requires_grad(), param_where(name) + " does not require grad");
}

/// docs/engine.md convention 7: decay matrices only, except level-weight logits and downsampler taps.
bool decay_rule(const std::string& name, int rank) {
  return rank >= 2 && name.find("level_logits") == std::string::npos && name.find("downsample.") == std::string::npos;
}

/// One AdamW update of n elements, in E, in PyTorch's order (adamw.h). `step_size` is
/// lr / (1 - beta1^t), `bc2_sqrt` is sqrt(1 - beta2^t), `decay` is 1 - lr * wd. The
/// per-element formula is kernels/common/adamw_update.h, shared with the CUDA backend.
template <class E>
void update(E* p, const E* g, E* m, E* v, std::int64_t n, const AdamWConfig& c, double decay, double step_size,
            double bc2_sqrt) {
  const auto constants = fn::adamw_step_constants<E>(c.beta1, c.beta2, c.eps, decay, step_size, bc2_sqrt);
  for (std::int64_t k = 0; k < n; ++k) fn::adamw_update_one(p[k], g[k], m[k], v[k], constants);
}

/// dst <- src (a CPU tensor of the same shape and dtype; dst on either device).
void copy_into(const Tensor& dst, const Tensor& src) {
  if (dst.device() == Device::CUDA)
    cuda::copy_host_to_device(dst.raw_data(), src.raw_data(), dst.nbytes());
  else
    std::memcpy(dst.raw_data(), src.raw_data(), dst.nbytes());
}

/// Joins names for an error message: "a, b, c" (at most 8, then "and N more").
std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < 8; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 8) s += " and " + std::to_string(names.size() - 8) + " more";
  return s;
}

/// Checks a loaded moment against its parameter (shape, dtype, device, finite values).
/// The second moment (non_negative) may also hold +inf: AdamW writes it itself when a
/// finite gradient's (1 - beta2) g^2 overflows (|g| above about 6e20 in float32 at beta2 = 0.999); that element's
/// update is then 0, as in PyTorch, and the run goes on, so its checkpoints must load.
void check_moment(const std::string& key, const Tensor& t, const Tensor& param, bool non_negative) {
  const std::string where = "AdamW.load_state: entry '" + key + "'";
  check(t.defined(), where + " is undefined");
  check(t.dtype() == param.dtype(),
        where + " has dtype " + dtype_name(t.dtype()) + ", the parameter " + dtype_name(param.dtype()));
  check(t.shape() == param.shape(),
        where + " has shape " + shape_str(t.shape()) + ", the parameter " + shape_str(param.shape()));
  check(t.device() == Device::CPU, where + " is on " + device_name(t.device()) + "; expected cpu");
  const auto values = t.to_vector();
  for (std::size_t k = 0; k < values.size(); ++k) {
    if (!std::isfinite(values[k]) && !(non_negative && values[k] == HUGE_VAL))
      throw Error(where + ": element " + std::to_string(k) + " is " + number(values[k]));
    if (non_negative && values[k] < 0)
      throw Error(where + ": element " + std::to_string(k) + " is negative (" + number(values[k]) + ")");
  }
}

}  // namespace

AdamW::AdamW(std::vector<std::pair<std::string, Tensor>> named_parameters, const AdamWConfig& config)
    : config_(config) {
  validate(config_);
  std::set<std::string> names;
  std::map<const TensorImpl*, std::string> seen;
  for (auto& [name, p] : named_parameters) {
    validate_parameter(name, p);
    check(names.insert(name).second, param_where(name) + " is listed twice");
    auto [it, inserted] = seen.emplace(p.impl(), name);
    check(inserted, param_where(name) + " is the same tensor as parameter '" + it->second + "'");
    Slot s;
    s.name = name;
    s.param = p;
    s.exp_avg = Tensor::zeros(p.shape(), p.dtype(), p.device());
    s.exp_avg_sq = Tensor::zeros(p.shape(), p.dtype(), p.device());
    s.decay = decay_rule(name, p.dim());
    slots_.push_back(std::move(s));
  }
}

void AdamW::check_grads() const {
  for (const Slot& s : slots_) {
    const Tensor g = s.param.grad();
    if (!g.defined()) continue;
    const std::string where = param_where(s.name) + ": gradient";
    check(g.dtype() == s.param.dtype(),
          where + " has dtype " + dtype_name(g.dtype()) + ", the parameter " + dtype_name(s.param.dtype()));
    check(g.shape() == s.param.shape(),
          where + " has shape " + shape_str(g.shape()) + ", the parameter " + shape_str(s.param.shape()));
    check(g.device() == s.param.device(),
          where + " is on " + device_name(g.device()) + ", the parameter on " + device_name(s.param.device()));
  }
}

void AdamW::step(double lr) {
  check(std::isfinite(lr) && lr >= 0, "AdamW.step: lr must be finite and >= 0, got " + number(lr));
  check_grads();
  NoGradGuard no_grad;
  ++step_count_;
  const double t = static_cast<double>(step_count_);
  const double step_size = lr / (1 - std::pow(config_.beta1, t));     // lr / (1 - beta1^t)
  const double bc2_sqrt = std::sqrt(1 - std::pow(config_.beta2, t));  // sqrt(1 - beta2^t)
  for (Slot& s : slots_) {
    const Tensor g = s.param.grad();
    if (!g.defined()) continue;  // no gradient: parameter and moments unchanged
    const double decay = 1 - lr * (s.decay ? config_.weight_decay : 0.0);  // 1 - lr wd
    if (s.exp_avg.device() != s.param.device()) {  // the model moved after the optimizer was built
      s.exp_avg = s.exp_avg.to(s.param.device()).detach();
      s.exp_avg_sq = s.exp_avg_sq.to(s.param.device()).detach();
    }
    if (s.param.device() == Device::CUDA) {
      cuda::adamw_update(s.param.raw_data(), g.raw_data(), s.exp_avg.raw_data(), s.exp_avg_sq.raw_data(),
                         s.param.numel(), config_.beta1, config_.beta2, config_.eps, decay, step_size, bc2_sqrt,
                         s.param.dtype());
      continue;
    }
    dispatch_floating(s.param.dtype(), "AdamW.step", [&](auto tag) {
      using E = decltype(tag);
      update<E>(s.param.data<E>(), g.data<E>(), s.exp_avg.data<E>(), s.exp_avg_sq.data<E>(), s.param.numel(), config_,
                decay, step_size, bc2_sqrt);
    });
  }
}

void AdamW::zero_grad() {
  for (Slot& s : slots_) s.param.zero_grad();
}

std::int64_t AdamW::step_count() const { return step_count_; }

const AdamW::Slot& AdamW::slot(const std::string& name) const {
  for (const Slot& s : slots_)
    if (s.name == name) return s;
  throw Error("AdamW: no parameter named '" + name + "'");
}

bool AdamW::decays(const std::string& name) const { return slot(name).decay; }

std::vector<std::pair<std::string, Tensor>> AdamW::state() const {
  NoGradGuard no_grad;
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Slot& s : slots_) {
    // Copies on the CPU, whatever the device: checkpoints are device-independent.
    const auto host_copy = [](const Tensor& t) { return t.device() == Device::CPU ? t.clone() : t.to(Device::CPU); };
    out.emplace_back(s.name + ".exp_avg", host_copy(s.exp_avg));
    out.emplace_back(s.name + ".exp_avg_sq", host_copy(s.exp_avg_sq));
  }
  out.emplace_back("step", Tensor::from_indices({step_count_}, {}));
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  // Index the entries; a name given twice is an error.
  std::map<std::string, Tensor> given;
  for (const auto& [key, t] : state)
    check(given.emplace(key, t).second, "AdamW.load_state: entry '" + key + "' is given twice");

  // Every expected entry present, nothing else.
  std::vector<std::string> expected{"step"}, missing, extra;
  for (const Slot& s : slots_) {
    expected.push_back(s.name + ".exp_avg");
    expected.push_back(s.name + ".exp_avg_sq");
  }
  for (const auto& key : expected)
    if (!given.count(key)) missing.push_back(key);
  const std::set<std::string> expected_set(expected.begin(), expected.end());
  for (const auto& [key, t] : state)
    if (!expected_set.count(key)) extra.push_back(key);
  check(missing.empty(), "AdamW.load_state: missing entries: " + join(missing));
  check(extra.empty(), "AdamW.load_state: unexpected entries (no such parameter): " + join(extra));

  // Each entry matches; check everything before changing anything.
  const Tensor& step = given.at("step");
  check(step.defined() && step.dtype() == DType::Int64 && step.dim() == 0,
        "AdamW.load_state: entry 'step' must be an int64 scalar (shape []), got " +
            (step.defined() ? dtype_name(step.dtype()) + " " + shape_str(step.shape()) : std::string("undefined")));
  const std::int64_t count = step.data<std::int64_t>()[0];
  check(count >= 0, "AdamW.load_state: entry 'step' is negative (" + std::to_string(count) + ")");
  for (const Slot& s : slots_) {
    check_moment(s.name + ".exp_avg", given.at(s.name + ".exp_avg"), s.param, false);
    check_moment(s.name + ".exp_avg_sq", given.at(s.name + ".exp_avg_sq"), s.param, true);
  }

  for (Slot& s : slots_) {
    copy_into(s.exp_avg, given.at(s.name + ".exp_avg"));
    copy_into(s.exp_avg_sq, given.at(s.name + ".exp_avg_sq"));
  }
  step_count_ = count;
}

}  // namespace hkt::optim
