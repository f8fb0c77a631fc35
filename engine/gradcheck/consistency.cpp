#include "consistency.h"

#include <algorithm>
#include <cmath>

#include "../attention/hkt_attention.h"
#include "../ops.h"
#include "cuda_backend.h"
#include "gradcheck.h"

namespace hkt::gradcheck {

namespace {

// max |a - b| / max(max |b|, floor) over the elements (b is the CPU result); NaN
// anywhere, or an infinity in one but not the other, gives +inf with `why` set. The
// floor (1 % of the case's scale: its output's and gradients' largest magnitude) keeps
// a gradient that is zero in exact arithmetic, rounding noise on both devices, from
// being divided by its own noise (a
// level whose every query and key fall in one coarse block adds a constant to each
// score row, which softmax ignores: its gradient is 0 plus rounding).
double scaled_error(const Tensor& cuda_result, const Tensor& cpu_result, double floor, std::string& why) {
  const auto a = cuda_result.to(Device::CPU).to_vector(), b = cpu_result.to_vector();
  if (a.size() != b.size()) {
    why = "sizes differ";
    return HUGE_VAL;
  }
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) {
      why = "NaN at element " + std::to_string(i) + (std::isnan(a[i]) ? " on cuda" : " on the cpu");
      return HUGE_VAL;
    }
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      if (a[i] != b[i]) {
        why = "infinity mismatch at element " + std::to_string(i);
        return HUGE_VAL;
      }
      continue;
    }
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return diff == 0.0 ? 0.0 : diff / std::max({scale, floor, 1e-300});
}

double max_abs(const Tensor& t) {
  double m = 0.0;
  for (double x : t.to_vector())
    if (std::isfinite(x)) m = std::max(m, std::abs(x));
  return m;
}

// f on `inputs` (already on their device, leaves requiring grad), then backward with
// upstream `g`: the output and each input's gradient (undefined when it got none).
std::vector<Tensor> forward_backward(const Case& c, const std::vector<Tensor>& inputs, const Tensor& g_cpu) {
  Tensor y = c.f(inputs);
  std::vector<Tensor> out{y.detach()};
  y.backward(g_cpu.to(y.device()));
  for (const auto& x : inputs) out.push_back(x.grad());
  return out;
}

ConsistencyResult run_case(const Case& c, DType dtype) {
  ConsistencyResult r;
  r.op = c.op;
  r.shape = c.shape;
  r.dtype = dtype;
  r.bound = bound_for(c.op, dtype);
  Generator gen(2024);
  const auto base = c.make_inputs(gen);
  std::vector<Tensor> on_cpu, on_cuda;
  cuda::set_guard_mode(true);
  try {
    for (const auto& x : base) {
      on_cpu.push_back(x.to(dtype));
      on_cuda.push_back(x.to(dtype).to(Device::CUDA));
      on_cpu.back().set_requires_grad(true);
      on_cuda.back().set_requires_grad(true);
    }
    // The upstream gradient: the CPU output's shape, fixed random values.
    Tensor y_shape = c.f(on_cpu).detach();
    Generator ggen(99);
    const Tensor g = Tensor::normal(y_shape.shape(), ggen, 0.0, 1.0, DType::Float64).to(dtype);
    for (auto& x : on_cpu) x.zero_grad();
    const auto expected = forward_backward(c, on_cpu, g);
    auto got = forward_backward(c, on_cuda, g);
    cuda::synchronize();
    std::string why;
    int worst_input = -1;  // the input whose gradient differs most
    // The floor: 1 % of the case's scale, the largest magnitude of its output and its
    // gradients (the CPU's), which the rounding noise of an exactly-zero gradient follows.
    double case_scale = 0.0;
    for (const auto& t : expected)
      if (t.defined()) case_scale = std::max(case_scale, max_abs(t));
    const double floor = 0.01 * case_scale;
    r.forward_err = scaled_error(got[0], expected[0], floor, why);
    for (std::size_t i = 1; i < expected.size() && why.empty(); ++i) {
      if (expected[i].defined() != got[i].defined()) {
        why = "input " + std::to_string(i - 1) + " has a gradient on one device only";
        break;
      }
      if (!expected[i].defined()) continue;
      std::string w;
      const double err = scaled_error(got[i], expected[i], floor, w);
      if (err > r.backward_err) worst_input = static_cast<int>(i) - 1;
      r.backward_err = std::max(r.backward_err, err);
      if (!w.empty()) why = "gradient of input " + std::to_string(i - 1) + ": " + w;
    }
    got.clear();
    on_cuda.clear();  // frees the guarded blocks, which checks their guards
    for (const auto& v : cuda::take_guard_violations())
      why += (why.empty() ? "" : "; ") + std::string("out-of-bounds write: ") + v;
    cuda::set_guard_mode(false);
    r.passed = why.empty() && r.forward_err <= r.bound && r.backward_err <= r.bound;
    r.note = !why.empty() ? why
             : r.passed
                 ? ""
                 : (r.forward_err > r.bound ? std::string("output error above the bound")
                                            : "gradient of input " + std::to_string(worst_input) + " above the bound");
  } catch (const std::exception& e) {
    cuda::set_guard_mode(false);
    r.passed = false;
    r.note = std::string("threw: ") + e.what();
  }
  return r;
}

}  // namespace

double bound_for(const std::string& op, DType dtype) {
  const Summation summation = op_info(op).summation;
  if (dtype == DType::Float64) return summation == Summation::Exact ? 1e-12 : 1e-11;
  return summation == Summation::Reordered ? 5e-5 : summation == Summation::FloatSums ? 2e-5 : 1e-5;
}

std::vector<ConsistencyResult> run_consistency(const std::string& op, DType dtype) {
  std::vector<const Case*> selected;
  for (const auto& c : all_cases())
    if (op.empty() || c.op == op) selected.push_back(&c);
  if (selected.empty()) {
    std::string known;
    for (const auto& name : op_names()) known += (known.empty() ? "" : ", ") + name;
    throw Error("cuda consistency: no op named '" + op + "' (known ops: " + known + ")");
  }
  cuda::require_device("CUDA consistency harness");  // after the op name: a bad name is named first
  std::vector<ConsistencyResult> out;
  for (const Case* c : selected) out.push_back(run_case(*c, dtype));
  return out;
}

}  // namespace hkt::gradcheck
