#include "gradcheck.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../autograd.h"
#include "../ops.h"

namespace hkt::gradcheck {

namespace {

// f(inputs) in float64 without recording, as a flat vector.
std::vector<double> evaluate(const Function& f, const std::vector<Tensor>& inputs) {
  NoGradGuard no_grad;
  Tensor y = f(inputs);
  return y.to_vector();
}

// Gradients of v . f(x) at x = inputs converted to `dtype`, by backward. Inputs that
// receive no gradient get zeros. Each call is a fresh forward and backward.
std::vector<std::vector<double>> vjp(const Function& f, const std::vector<Tensor>& inputs, const std::vector<double>& v,
                                     const Shape& out_shape, DType dtype) {
  std::vector<Tensor> leaves;
  for (const auto& x : inputs) {
    Tensor leaf = x.detach().to(dtype).clone().detach();  // a fresh leaf with its own storage
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  Tensor y = f(leaves);
  std::vector<std::vector<double>> grads;
  if (y.requires_grad()) y.backward(Tensor::from_vector(v, out_shape, y.dtype()));
  for (const auto& leaf : leaves) {
    if (leaf.grad().defined())
      grads.push_back(leaf.grad().to_vector());
    else
      grads.push_back(std::vector<double>(static_cast<std::size_t>(leaf.numel()), 0.0));
  }
  return grads;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Accumulates the comparison of analytic against numeric entries.
struct Comparison {
  const Options& options;
  double max_abs = 0.0, max_numeric = 0.0;
  bool ok = true, saw_nan = false;
  void add(double analytic, double numeric) {
    if (std::isnan(analytic) || std::isnan(numeric)) {
      saw_nan = true;
      ok = false;
      return;
    }
    const double err = std::fabs(analytic - numeric);
    max_abs = std::max(max_abs, err);
    max_numeric = std::max(max_numeric, std::fabs(numeric));
    if (err > options.atol + options.rtol * std::fabs(numeric)) ok = false;
  }
};

// x + t * direction for every input (direction given per input, flat).
std::vector<Tensor> shifted(const std::vector<Tensor>& inputs, const std::vector<std::vector<double>>& direction,
                            double t) {
  std::vector<Tensor> out;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    std::vector<double> values = inputs[i].to_vector();
    for (std::size_t j = 0; j < values.size(); ++j) values[j] += t * direction[i][j];
    out.push_back(Tensor::from_vector(values, inputs[i].shape(), DType::Float64));
  }
  return out;
}

}  // namespace

Result check(const std::string& op, const std::string& shape, const Function& f, const std::vector<Tensor>& inputs,
             const Options& options) {
  for (const auto& x : inputs)
    hkt::check(x.dtype() == DType::Float64,
               "gradcheck " + op + ": inputs must be float64, got " + dtype_name(x.dtype()));
  Result result;
  result.op = op;
  result.shape = shape;
  Shape out_shape;
  {
    NoGradGuard no_grad;
    Tensor y = f(inputs);
    hkt::check(is_floating(y.dtype()),
               "gradcheck " + op + ": the function returned a " + dtype_name(y.dtype()) + " tensor");
    out_shape = y.shape();
  }
  const std::int64_t n_out = numel(out_shape);
  std::int64_t n_in = 0;
  for (const auto& x : inputs) n_in += x.numel();
  const double eps = options.eps;
  Comparison cmp{options};
  Generator gen(options.seed);
  auto random_vector = [&](std::int64_t n) { return Tensor::normal({n}, gen, 0.0, 1.0, DType::Float64).to_vector(); };
  auto zeros_like_inputs = [&] {
    std::vector<std::vector<double>> d;
    for (const auto& x : inputs) d.emplace_back(static_cast<std::size_t>(x.numel()), 0.0);
    return d;
  };

  if (n_in * n_out <= options.full_jacobian_limit) {
    result.mode = "full";
    // Analytic rows: one backward per output element with a one-hot upstream gradient.
    std::vector<std::vector<std::vector<double>>> rows;  // [o][input][element]
    for (std::int64_t o = 0; o < n_out; ++o) {
      std::vector<double> v(static_cast<std::size_t>(n_out), 0.0);
      v[static_cast<std::size_t>(o)] = 1.0;
      rows.push_back(vjp(f, inputs, v, out_shape, options.dtype));
    }
    // Numeric columns: perturb each input element by +-eps.
    auto direction = zeros_like_inputs();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      for (std::size_t j = 0; j < direction[i].size(); ++j) {
        direction[i][j] = 1.0;
        const auto plus = evaluate(f, shifted(inputs, direction, eps));
        const auto minus = evaluate(f, shifted(inputs, direction, -eps));
        direction[i][j] = 0.0;
        for (std::int64_t o = 0; o < n_out; ++o) {
          const auto oi = static_cast<std::size_t>(o);
          cmp.add(rows[oi][i][j], (plus[oi] - minus[oi]) / (2 * eps));
        }
      }
    }
  } else if (n_in <= options.vjp_limit) {
    result.mode = "vjp";
    const auto v = random_vector(n_out);
    const auto analytic = vjp(f, inputs, v, out_shape, options.dtype);
    auto direction = zeros_like_inputs();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      for (std::size_t j = 0; j < direction[i].size(); ++j) {
        direction[i][j] = 1.0;
        const double numeric = (dot(v, evaluate(f, shifted(inputs, direction, eps))) -
                                dot(v, evaluate(f, shifted(inputs, direction, -eps)))) /
                               (2 * eps);
        direction[i][j] = 0.0;
        cmp.add(analytic[i][j], numeric);
      }
    }
  } else {
    result.mode = "projection";
    for (int r = 0; r < options.projections; ++r) {
      const auto v = random_vector(n_out);
      std::vector<std::vector<double>> u;
      for (const auto& x : inputs) u.push_back(random_vector(x.numel()));
      const auto grads = vjp(f, inputs, v, out_shape, options.dtype);
      double analytic = 0.0;
      for (std::size_t i = 0; i < inputs.size(); ++i) analytic += dot(grads[i], u[i]);
      const double numeric =
          (dot(v, evaluate(f, shifted(inputs, u, eps))) - dot(v, evaluate(f, shifted(inputs, u, -eps)))) / (2 * eps);
      cmp.add(analytic, numeric);
    }
  }
  result.max_abs_err = cmp.max_abs;
  result.max_rel_err = cmp.max_numeric > 0 ? cmp.max_abs / cmp.max_numeric : cmp.max_abs;
  if (cmp.saw_nan)
    result.failure = "a gradient is nan";
  else if (!cmp.ok)
    result.failure = "analytic and numeric gradients differ beyond atol + rtol |numeric|";

  // Backward twice (fresh forward each time) must give bit-identical gradients.
  {
    Generator vgen(options.seed + 1);
    const auto v = Tensor::normal({n_out}, vgen, 0.0, 1.0, DType::Float64).to_vector();
    const auto first = vjp(f, inputs, v, out_shape, options.dtype);
    const auto second = vjp(f, inputs, v, out_shape, options.dtype);
    bool same = true;
    for (std::size_t i = 0; i < first.size(); ++i)
      same = same && std::memcmp(first[i].data(), second[i].data(), first[i].size() * sizeof(double)) == 0;
    if (!same && result.failure.empty()) result.failure = "backward run twice gave different gradients";
  }
  // A zero upstream gradient must give exactly zero input gradients.
  {
    const auto grads =
        vjp(f, inputs, std::vector<double>(static_cast<std::size_t>(n_out), 0.0), out_shape, options.dtype);
    bool zero = true;
    for (const auto& g : grads)
      for (double x : g) zero = zero && x == 0.0;
    if (!zero && result.failure.empty()) result.failure = "a zero output gradient gave a nonzero input gradient";
  }
  result.passed = result.failure.empty();
  return result;
}

std::vector<std::string> op_names() {
  std::vector<std::string> names;
  for (const auto& c : all_cases())
    if (std::find(names.begin(), names.end(), c.op) == names.end()) names.push_back(c.op);
  return names;
}

std::vector<Result> run(const std::string& op, const Options& options) {
  std::vector<Result> results;
  for (const auto& c : all_cases()) {
    if ((!op.empty() && c.op != op) || c.large) continue;
    Generator gen(options.seed);
    results.push_back(check(c.op, c.shape, c.f, c.make_inputs(gen), options));
  }
  if (results.empty()) {
    std::string known;
    for (const auto& name : op_names()) known += (known.empty() ? "" : ", ") + name;
    throw Error("gradcheck: no op named '" + op + "' (known ops: " + known + ")");
  }
  return results;
}

}  // namespace hkt::gradcheck
