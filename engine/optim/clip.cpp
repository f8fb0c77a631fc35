// clip.cpp: global-norm gradient clipping (see clip.h for the formula and its source).
#include "optim/clip.h"

#include <cmath>
#include <sstream>
#include <string>

#include "cuda_backend.h"
#include "error.h"

namespace hkt::optim {
namespace {

/// "gradient of parameter i (shape [..])", the prefix of every message about one gradient.
std::string which(std::size_t i, const Tensor& grad) {
  return "clip_grad_norm: gradient of parameter " + std::to_string(i) + " (shape " + shape_str(grad.shape()) + ")";
}

/// The gradient of parameter i, checked to be usable; undefined when it has none.
Tensor checked_grad(const std::vector<Tensor>& parameters, std::size_t i) {
  const Tensor& p = parameters[i];
  check(p.defined(), "clip_grad_norm: parameter " + std::to_string(i) + " is undefined");
  Tensor g = p.grad();
  if (!g.defined()) return g;
  check(is_floating(g.dtype()), which(i, g) + " has dtype " + dtype_name(g.dtype()) + "; expected float32 or float64");
  check(g.shape() == p.shape(), which(i, g) + " does not match the parameter's shape " + shape_str(p.shape()));
  return g;
}

/// sum of g^2 over the elements of a gradient in CPU memory, in double.
double sum_of_squares(const Tensor& g) {
  return dispatch_floating(g.dtype(), "clip_grad_norm", [&](auto tag) {
    using E = decltype(tag);
    const E* x = g.data<E>();
    const std::int64_t n = g.numel();  // hoisted: numel() is an out-of-line call
    double s = 0.0;
    for (std::int64_t k = 0; k < n; ++k) s += static_cast<double>(x[k]) * static_cast<double>(x[k]);
    return s;
  });
}

/// Index of the first non-finite element of g, or -1.
std::int64_t first_non_finite(const Tensor& g_any) {
  const Tensor g = g_any.device() == Device::CPU ? g_any : g_any.to(Device::CPU);  // an error path: a copy is fine
  return dispatch_floating(g.dtype(), "clip_grad_norm", [&](auto tag) -> std::int64_t {
    using E = decltype(tag);
    const E* x = g.data<E>();
    const std::int64_t n = g.numel();
    for (std::int64_t k = 0; k < n; ++k)
      if (!std::isfinite(x[k])) return k;
    return -1;
  });
}

/// Throws the error of docs/engine.md convention 9 for a non-finite norm: names the first non-finite value.
[[noreturn]] void throw_non_finite(const std::vector<Tensor>& grads, double norm) {
  for (std::size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) continue;
    const std::int64_t k = first_non_finite(grads[i]);
    if (k < 0) continue;
    const double x = grads[i].to_vector()[static_cast<std::size_t>(k)];
    const std::string value = std::isnan(x) ? "nan" : (x > 0 ? "inf" : "-inf");
    throw Error(which(i, grads[i]) + " is not finite: element " + std::to_string(k) + " is " + value);
  }
  std::ostringstream os;
  os << "clip_grad_norm: the gradient norm is " << norm
     << ": every gradient value is finite but the sum of squares overflows float64";
  throw Error(os.str());
}

/// g *= coef, in g's dtype.
void scale(Tensor& g, double coef) {
  if (g.device() == Device::CUDA)
    return cuda::unary(fn::Unary::MulScalar, g.raw_data(), g.raw_data(), g.numel(), coef, g.dtype());
  dispatch_floating(g.dtype(), "clip_grad_norm", [&](auto tag) {
    using E = decltype(tag);
    E* x = g.data<E>();
    const E c = static_cast<E>(coef);
    const std::int64_t n = g.numel();
    for (std::int64_t k = 0; k < n; ++k) x[k] *= c;
  });
}

}  // namespace

double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm) {
  check(!std::isnan(max_norm), "clip_grad_norm: max_norm is nan");
  std::vector<Tensor> grads(parameters.size());
  for (std::size_t i = 0; i < parameters.size(); ++i) grads[i] = checked_grad(parameters, i);

  // norm = sqrt(sum_i sum_k g_ik^2), in double: the CPU gradients one by one, the GPU
  // gradients in one call (one wait on the device per step, not one per parameter).
  double total = 0.0;
  std::vector<cuda::DeviceArray> on_gpu;
  for (const Tensor& g : grads) {
    if (!g.defined()) continue;
    if (g.device() == Device::CUDA)
      on_gpu.push_back({g.raw_data(), g.numel(), g.dtype()});
    else
      total += sum_of_squares(g);
  }
  if (!on_gpu.empty()) total += cuda::sum_of_squares(on_gpu);
  const double norm = std::sqrt(total);
  if (!std::isfinite(norm)) throw_non_finite(grads, norm);  // docs/engine.md convention 9

  // coef = max_norm / (norm + 1e-6); scale by min(1, coef) (PyTorch clip_grad_norm_)
  if (max_norm <= 0 || std::isinf(max_norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (Tensor& g : grads)
      if (g.defined()) scale(g, coef);
  return norm;
}

Tensor clip_grad_norm_on_device(const std::vector<Tensor>& parameters, double max_norm) {
  check(!std::isnan(max_norm), "clip_grad_norm: max_norm is nan");
  std::vector<Tensor> grads;
  std::vector<cuda::DeviceArray> arrays;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    Tensor g = checked_grad(parameters, i);
    if (!g.defined()) continue;
    check(g.device() == Device::CUDA, which(i, g) + " is on the cpu; clip_grad_norm_on_device takes GPU gradients");
    arrays.push_back({g.raw_data(), g.numel(), g.dtype()});
    grads.push_back(g);
  }
  cuda::require_device("clip_grad_norm_on_device");
  Tensor sum_sq = Tensor::empty({}, DType::Float64, Device::CUDA);
  auto* total = static_cast<double*>(sum_sq.raw_data());
  cuda::sum_of_squares_into(arrays, total);
  if (max_norm > 0 && !std::isinf(max_norm))
    for (Tensor& g : grads) cuda::clip_scale(g.raw_data(), g.numel(), total, max_norm, g.dtype());
  return sum_sq;
}

}  // namespace hkt::optim
