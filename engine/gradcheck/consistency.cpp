#include "consistency.h"

#include <algorithm>
#include <cmath>

#include "../attention/hkt_attention.h"
#include "../ops.h"
#include "cuda_backend.h"
#include "gradcheck.h"

namespace hkt::gradcheck {

namespace {

// Cases beyond the gradient checker's: shapes large enough to use many GPU threads
// (grid-stride loops wrap, rows of hundreds of elements) and the composite attention op,
// which models run on the GPU where the fused kernels do not apply (L > 4 or d_h > 128).
std::vector<Case> large_cases() {
  std::vector<Case> c;
  const auto randn = [](Generator& g, const Shape& s) { return Tensor::normal(s, g, 0.0, 1.0, DType::Float64); };
  const auto one = [randn](Shape s) { return [randn, s](Generator& g) { return std::vector<Tensor>{randn(g, s)}; }; };
  c.push_back({"add", "[257,33]+[33] (large)",
               [randn](Generator& g) {
                 return std::vector<Tensor>{randn(g, {257, 33}), randn(g, {33})};
               },
               [](const std::vector<Tensor>& x) { return add(x[0], x[1]); }});
  c.push_back({"gelu_erf", "[70001] (large)", one({70001}), [](const std::vector<Tensor>& x) { return gelu(x[0]); }});
  c.push_back(
      {"softmax", "[37,513] (large)", one({37, 513}), [](const std::vector<Tensor>& x) { return softmax(x[0]); }});
  c.push_back({"layer_norm", "[65,129] (large)",
               [randn](Generator& g) {
                 return std::vector<Tensor>{randn(g, {65, 129}), randn(g, {129}), randn(g, {129})};
               },
               [](const std::vector<Tensor>& x) { return layer_norm(x[0], x[1], x[2]); }});
  c.push_back({"matmul", "[3,65,130]x[130,67] (large)",
               [randn](Generator& g) {
                 return std::vector<Tensor>{randn(g, {3, 65, 130}), randn(g, {130, 67})};
               },
               [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); }});
  c.push_back({"sum", "[300,301] axis 0 (large)", one({300, 301}),
               [](const std::vector<Tensor>& x) { return sum(x[0], {0}); }});
  c.push_back({"causal_conv1d", "x[3,101,17] w[17,3] b stride 2 (large)",
               [randn](Generator& g) {
                 return std::vector<Tensor>{randn(g, {3, 101, 17}), randn(g, {17, 3}), randn(g, {17})};
               },
               [](const std::vector<Tensor>& x) { return causal_conv1d(x[0], x[1], x[2], 2); }});
  c.push_back({"embedding", "[50,9] by [400] (large)", one({50, 9}), [](const std::vector<Tensor>& x) {
                 std::vector<std::int64_t> idx(400);
                 for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<std::int64_t>((i * 7 + 3) % 50);
                 return embedding(x[0], Tensor::from_indices(idx, {400}));
               }});
  c.push_back({"dropout", "[100,100] p=0.1 (large)", one({100, 100}), [](const std::vector<Tensor>& x) {
                 Generator gen(11);
                 return dropout(x[0], 0.1, gen);
               }});
  // The fused op at sizes where its CUDA kernels loop over many keys and wide heads.
  for (auto [L, T, dh, causal, name] : {std::tuple{3, 37, 16, true, "B2 H2 T37 dh16 L3 causal padded (large)"},
                                        {4, 64, 64, false, "B2 H2 T64 dh64 L4 padded (large)"},
                                        {2, 21, 128, false, "B2 H2 T21 dh128 L2 padded (large)"}}) {
    c.push_back({"hkt_attention_fused", name,
                 [randn, L = L, T = T, dh = dh](Generator& g) {
                   std::vector<Tensor> in;
                   for (int part = 0; part < 2; ++part)
                     for (int l = 0; l < L; ++l) in.push_back(randn(g, {2, 2, (T + (1 << l) - 1) >> l, dh}));
                   in.push_back(randn(g, {2, 2, T, dh}));
                   in.push_back(Tensor::uniform({2, L}, g, 0.1, 1.0, DType::Float64));
                   return in;
                 },
                 [L = L, T = T, causal = causal](const std::vector<Tensor>& x) {
                   const auto n = static_cast<std::ptrdiff_t>(L);
                   std::vector<std::int64_t> keep(static_cast<std::size_t>(2 * T), 1);
                   for (std::int64_t j = T - 3; j < T; ++j) keep[static_cast<std::size_t>(T + j)] = 0;  // 3 padded keys
                   HktAttentionOptions opt;
                   opt.causal = causal;
                   opt.block_q = opt.block_k = 16;
                   return hkt_attention_fused({x.begin(), x.begin() + n}, {x.begin() + n, x.begin() + 2 * n}, x[2 * L],
                                              x[2 * L + 1], Tensor::from_indices(keep, {2, T}), opt);
                 }});
  }
  for (auto [L, T, causal, name] :
       {std::tuple{3, 13, true, "B2 H2 T13 dh4 L3 causal padded"}, {1, 9, false, "B2 H2 T9 dh4 L1 (MHA) padded"}}) {
    c.push_back({"hkt_attention_composite", name,
                 [randn, L = L, T = T](Generator& g) {
                   std::vector<Tensor> in;
                   for (int part = 0; part < 2; ++part)
                     for (int l = 0; l < L; ++l) in.push_back(randn(g, {2, 2, (T + (1 << l) - 1) >> l, 4}));
                   in.push_back(randn(g, {2, 2, T, 4}));
                   in.push_back(Tensor::uniform({2, L}, g, 0.1, 1.0, DType::Float64));
                   return in;
                 },
                 [L = L, T = T, causal = causal](const std::vector<Tensor>& x) {
                   const auto n = static_cast<std::ptrdiff_t>(L);
                   std::vector<std::int64_t> keep(static_cast<std::size_t>(2 * T), 1);
                   keep.back() = 0;  // one padded key in the second sequence
                   HktAttentionOptions opt;
                   opt.causal = causal;
                   return hkt_attention_composite({x.begin(), x.begin() + n}, {x.begin() + n, x.begin() + 2 * n},
                                                  x[2 * L], x[2 * L + 1], Tensor::from_indices(keep, {2, T}), opt);
                 }});
  }
  return c;
}

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
  // Sums in a different order (cuBLAS vs BLAS blocking, the attention composite's
  // chains of them): a few k * eps relative to the output's magnitude.
  const bool reordered = op == "matmul" || op == "linear" || op.rfind("hkt_attention", 0) == 0;
  // Sums in the same order, but in float32 and with nvcc's fused multiply-adds (one
  // rounding where the CPU has two), which can move a cancelling sum by ~n eps.
  const bool float_sums = op == "layer_norm" || op == "causal_conv1d" || op == "embedding" || op == "gather" ||
                          op == "softmax" || op == "log_softmax" || op == "cross_entropy";
  if (dtype == DType::Float64) return reordered || float_sums ? 1e-11 : 1e-12;
  return reordered ? 5e-5 : float_sums ? 2e-5 : 1e-5;
}

std::vector<ConsistencyResult> run_consistency(const std::string& op, DType dtype) {
  std::vector<const Case*> selected;
  static const std::vector<Case> extra = large_cases();
  for (const auto* list : {&all_cases(), &extra})
    for (const auto& c : *list)
      if (op.empty() || c.op == op) selected.push_back(&c);
  if (selected.empty()) {
    std::string known;
    for (const auto& name : op_names()) known += (known.empty() ? "" : ", ") + name;
    throw Error("cuda consistency: no op named '" + op + "' (known ops: " + known + ", hkt_attention_composite)");
  }
  cuda::require_device("CUDA consistency harness");  // after the op name: a bad name is named first
  std::vector<ConsistencyResult> out;
  for (const Case* c : selected) out.push_back(run_case(*c, dtype));
  return out;
}

}  // namespace hkt::gradcheck
