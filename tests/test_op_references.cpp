// test_op_references.cpp: every op of the test registry (engine/gradcheck/cases.cpp,
// OpInfo::reference) against independent float64 reference values from PyTorch
// (tests/data/op_references.json, written by tools/make_op_references.py; regenerate it
// with /usr/bin/python3 that script).
//
// For each case: our op on the case's inputs in float64 must give the expected output,
// and out.backward(w) the expected gradient of sum(out * w) for every float input, both
// within kFloat64Exact. The same case in float32 (inputs converted with .to(Float32))
// must give the float64 output within kFloat32VsFloat64. A case whose op this file does
// not know fails, as does an input or parameter the dispatch does not use.
//
// The hidden test "[.report]" prints the largest error per op:
//   build/tests/hkt_tests "[.report]"
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gradcheck/gradcheck.h"
#include "ops.h"
#include "tolerances.h"

namespace {

using hkt::DType;
using hkt::Shape;
using hkt::Tensor;
using hkt::test::Tolerance;
using nlohmann::json;

constexpr const char* kFormat = "hkt-op-references";
constexpr int kVersion = 1;

// ---- the reference file ---------------------------------------------------------------------

/// A JSON number, or one of the strings "inf", "-inf", "nan" (JSON has no non-finite numbers).
double number(const json& j) {
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    throw std::runtime_error("op references: '" + s + "' is not a number");
  }
  return j.get<double>();
}

struct RefTensor {
  std::string name;
  bool is_index = false;       // int64 (indices, targets, int masks)
  bool requires_grad = false;  // a float input that is differentiated
  Shape shape;
  std::vector<double> values;         // float tensors
  std::vector<std::int64_t> indices;  // int64 tensors
};

RefTensor parse_tensor(const json& j, const std::string& name, bool is_index) {
  RefTensor t;
  t.name = name;
  t.is_index = is_index;
  t.shape = j.at("shape").get<Shape>();
  for (const auto& v : j.at("values")) {
    if (is_index)
      t.indices.push_back(v.get<std::int64_t>());
    else
      t.values.push_back(number(v));
  }
  const auto n = static_cast<std::size_t>(hkt::numel(t.shape));
  if ((is_index ? t.indices.size() : t.values.size()) != n)
    throw std::runtime_error("op references: tensor '" + name + "' has " + std::to_string(j.at("values").size()) +
                             " values for shape " + hkt::shape_str(t.shape));
  return t;
}

struct RefCase {
  std::string name;  // "op/case"
  std::string op;
  json params;
  std::vector<RefTensor> inputs;
  RefTensor output;
  RefTensor grad_output;
  std::map<std::string, RefTensor> grads;  // one per input with requires_grad
};

struct References {
  std::string format;
  int version = 0;
  std::string generator;
  std::string torch_version;
  std::vector<RefCase> cases;
};

References load_references() {
  const std::string path = std::string(HKT_TEST_DATA_DIR) + "/op_references.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("op references: cannot open " + path);
  const json doc = json::parse(in);
  References refs;
  refs.format = doc.at("format").get<std::string>();
  refs.version = doc.at("version").get<int>();
  refs.generator = doc.value("generator", "");
  refs.torch_version = doc.value("torch_version", "");
  if (refs.format != kFormat || refs.version != kVersion) return refs;  // the tests REQUIRE these
  for (const auto& jc : doc.at("cases")) {
    RefCase c;
    c.name = jc.at("name").get<std::string>();
    c.op = jc.at("op").get<std::string>();
    c.params = jc.at("params");
    for (const auto& ji : jc.at("inputs")) {
      const auto dtype = ji.at("dtype").get<std::string>();
      if (dtype != "float64" && dtype != "int64")
        throw std::runtime_error("op references: " + c.name + ": unknown input dtype " + dtype);
      RefTensor t = parse_tensor(ji, ji.at("name").get<std::string>(), dtype == "int64");
      t.requires_grad = ji.at("requires_grad").get<bool>();
      if (t.requires_grad && t.is_index)
        throw std::runtime_error("op references: " + c.name + ": int64 input '" + t.name + "' requires grad");
      c.inputs.push_back(std::move(t));
    }
    c.output = parse_tensor(jc.at("output"), "output", false);
    c.grad_output = parse_tensor(jc.at("grad_output"), "grad_output", false);
    for (const auto& [name, jg] : jc.at("grads").items()) c.grads[name] = parse_tensor(jg, "grad of " + name, false);
    for (const auto& t : c.inputs)
      if (t.requires_grad != (c.grads.count(t.name) == 1))
        throw std::runtime_error("op references: " + c.name + ": input '" + t.name +
                                 "' must have an expected gradient exactly when it requires grad");
    if (c.grads.size() != static_cast<std::size_t>(std::count_if(c.inputs.begin(), c.inputs.end(),
                                                                 [](const RefTensor& t) { return t.requires_grad; })))
      throw std::runtime_error("op references: " + c.name + ": a gradient names no input");
    refs.cases.push_back(std::move(c));
  }
  return refs;
}

/// Parsed once per process.
const References& references() {
  static const References refs = load_references();
  return refs;
}

// ---- from op name to a call of ops.h ---------------------------------------------------------

/// The inputs and parameters of one call; remembers which were used, so that an input or
/// parameter the dispatch ignores is an error rather than a silently different test.
class OpArgs {
 public:
  OpArgs(const json& params, std::vector<std::pair<std::string, Tensor>> inputs)
      : params_(params), inputs_(std::move(inputs)) {}

  const Tensor& in(const std::string& name) const {
    for (const auto& [n, t] : inputs_)
      if (n == name) {
        used_inputs_.insert(n);
        return t;
      }
    throw std::runtime_error("the case has no input '" + name + "'");
  }
  /// An undefined tensor when the case has no such input (optional weight, bias, mask).
  Tensor optional(const std::string& name) const {
    for (const auto& [n, t] : inputs_)
      if (n == name) return in(name);
    return Tensor();
  }
  /// Every input, in order (concat).
  std::vector<Tensor> all() const {
    std::vector<Tensor> xs;
    for (const auto& [n, t] : inputs_) {
      used_inputs_.insert(n);
      xs.push_back(t);
    }
    return xs;
  }
  const json& param(const std::string& key) const {
    used_params_.insert(key);
    if (!params_.contains(key)) throw std::runtime_error("the case has no parameter '" + key + "'");
    return params_.at(key);
  }
  double num(const std::string& key) const { return number(param(key)); }
  int axis(const std::string& key) const { return param(key).get<int>(); }
  std::int64_t i64(const std::string& key) const { return param(key).get<std::int64_t>(); }
  std::vector<int> axes(const std::string& key) const { return param(key).get<std::vector<int>>(); }
  bool flag(const std::string& key) const { return param(key).get<bool>(); }

  /// Throws naming any input or parameter the dispatch did not use.
  void check_all_used() const {
    for (const auto& [n, t] : inputs_)
      if (used_inputs_.count(n) == 0) throw std::runtime_error("the dispatch did not use input '" + n + "'");
    for (const auto& [k, v] : params_.items())
      if (used_params_.count(k) == 0) throw std::runtime_error("the dispatch did not use parameter '" + k + "'");
  }

 private:
  const json& params_;
  std::vector<std::pair<std::string, Tensor>> inputs_;
  mutable std::set<std::string> used_inputs_;
  mutable std::set<std::string> used_params_;
};

using OpFn = std::function<Tensor(const OpArgs&)>;

hkt::GeluApproximation gelu_approximation(const std::string& name) {
  if (name == "none") return hkt::GeluApproximation::Erf;
  if (name == "tanh") return hkt::GeluApproximation::Tanh;
  throw std::runtime_error("gelu: unknown approximation '" + name + "'");
}

const std::map<std::string, OpFn>& op_table() {
  static const std::map<std::string, OpFn> table = {
      // binary, broadcasting
      {"add", [](const OpArgs& a) { return hkt::add(a.in("a"), a.in("b")); }},
      {"sub", [](const OpArgs& a) { return hkt::sub(a.in("a"), a.in("b")); }},
      {"mul", [](const OpArgs& a) { return hkt::mul(a.in("a"), a.in("b")); }},
      {"div", [](const OpArgs& a) { return hkt::div(a.in("a"), a.in("b")); }},
      // scalar variants
      {"add_scalar", [](const OpArgs& a) { return hkt::add(a.in("x"), a.num("value")); }},
      {"sub_scalar", [](const OpArgs& a) { return hkt::sub(a.in("x"), a.num("value")); }},
      {"rsub_scalar", [](const OpArgs& a) { return hkt::rsub(a.in("x"), a.num("value")); }},
      {"mul_scalar", [](const OpArgs& a) { return hkt::mul(a.in("x"), a.num("value")); }},
      {"div_scalar", [](const OpArgs& a) { return hkt::div(a.in("x"), a.num("value")); }},
      {"rdiv_scalar", [](const OpArgs& a) { return hkt::rdiv(a.in("x"), a.num("value")); }},
      {"pow", [](const OpArgs& a) { return hkt::pow(a.in("x"), a.num("p")); }},
      // unary
      {"neg", [](const OpArgs& a) { return hkt::neg(a.in("x")); }},
      {"exp", [](const OpArgs& a) { return hkt::exp(a.in("x")); }},
      {"log", [](const OpArgs& a) { return hkt::log(a.in("x")); }},
      {"sqrt", [](const OpArgs& a) { return hkt::sqrt(a.in("x")); }},
      {"tanh", [](const OpArgs& a) { return hkt::tanh(a.in("x")); }},
      {"sigmoid", [](const OpArgs& a) { return hkt::sigmoid(a.in("x")); }},
      {"relu", [](const OpArgs& a) { return hkt::relu(a.in("x")); }},
      {"gelu",
       [](const OpArgs& a) {
         return hkt::gelu(a.in("x"), gelu_approximation(a.param("approximation").get<std::string>()));
       }},
      // matrix product
      {"matmul", [](const OpArgs& a) { return hkt::matmul(a.in("a"), a.in("b")); }},
      // layout
      {"reshape", [](const OpArgs& a) { return hkt::reshape(a.in("x"), a.param("shape").get<Shape>()); }},
      {"permute", [](const OpArgs& a) { return hkt::permute(a.in("x"), a.axes("dims")); }},
      {"transpose", [](const OpArgs& a) { return hkt::transpose(a.in("x"), a.axis("axis0"), a.axis("axis1")); }},
      {"slice", [](const OpArgs& a) { return hkt::slice(a.in("x"), a.axis("axis"), a.i64("start"), a.i64("end")); }},
      {"concat", [](const OpArgs& a) { return hkt::concat(a.all(), a.axis("axis")); }},
      // reductions
      {"sum", [](const OpArgs& a) { return hkt::sum(a.in("x"), a.axes("axes"), a.flag("keepdim")); }},
      {"mean", [](const OpArgs& a) { return hkt::mean(a.in("x"), a.axes("axes"), a.flag("keepdim")); }},
      {"max", [](const OpArgs& a) { return hkt::max(a.in("x"), a.axes("axes"), a.flag("keepdim")); }},
      // softmax family
      {"softmax", [](const OpArgs& a) { return hkt::softmax(a.in("x"), a.optional("mask")); }},
      {"log_softmax", [](const OpArgs& a) { return hkt::log_softmax(a.in("x"), a.optional("mask")); }},
      {"cross_entropy",
       [](const OpArgs& a) {
         return hkt::cross_entropy(a.in("logits"), a.in("targets"), a.i64("ignore_index"), a.num("label_smoothing"));
       }},
      // normalisation
      {"layer_norm",
       [](const OpArgs& a) {
         return hkt::layer_norm(a.in("x"), a.optional("weight"), a.optional("bias"), a.num("eps"));
       }},
      // indexing
      {"embedding", [](const OpArgs& a) { return hkt::embedding(a.in("weight"), a.in("indices")); }},
      {"gather", [](const OpArgs& a) { return hkt::gather(a.in("x"), a.axis("axis"), a.in("index")); }},
      {"repeat_interleave",
       [](const OpArgs& a) { return hkt::repeat_interleave(a.in("x"), a.i64("repeats"), a.axis("axis")); }},
      // masking
      {"masked_fill", [](const OpArgs& a) { return hkt::masked_fill(a.in("x"), a.in("mask"), a.num("value")); }},
      // the downsampler
      {"causal_conv1d",
       [](const OpArgs& a) {
         return hkt::causal_conv1d(a.in("x"), a.in("weight"), a.optional("bias"), a.i64("stride"));
       }},
  };
  return table;
}

// ---- comparisons ------------------------------------------------------------------------------

std::string index_str(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] == 0 ? 0 : flat % shape[d];
    flat = shape[d] == 0 ? 0 : flat / shape[d];
  }
  std::ostringstream os;
  os << "[";
  for (std::size_t d = 0; d < idx.size(); ++d) os << (d ? "," : "") << idx[d];
  os << "]";
  return os.str();
}

/// One tensor of one case against its expectation.
struct Comparison {
  std::string what;  // "output", "grad of x"
  bool ok = true;
  std::vector<std::string> errors;  // the first few failures, each a full sentence
  std::int64_t n_bad = 0;
  double max_abs = 0.0;    // largest |a - e| over finite expectations
  double max_ratio = 0.0;  // largest |a - e| / (atol + rtol |e|): <= 1 passes
};

constexpr std::size_t kMaxMessages = 8;

Comparison compare(const std::string& what, const Tensor& actual, DType dtype, const RefTensor& expected,
                   const Tolerance& tol) {
  Comparison c;
  c.what = what;
  const auto fail = [&](const std::string& message) {
    c.ok = false;
    if (c.errors.size() < kMaxMessages) c.errors.push_back(what + ": " + message);
  };
  if (!actual.defined()) {
    fail("undefined (no value was computed)");
    return c;
  }
  if (actual.dtype() != dtype)
    fail("dtype " + hkt::dtype_name(actual.dtype()) + ", expected " + hkt::dtype_name(dtype));
  if (actual.shape() != expected.shape) {
    fail("shape " + hkt::shape_str(actual.shape()) + ", expected " + hkt::shape_str(expected.shape));
    return c;
  }
  const std::vector<double> a = actual.to_vector();
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double e = expected.values[i];
    bool good;
    double err = 0.0;
    if (!std::isfinite(e)) {
      good = std::isnan(e) ? std::isnan(a[i]) : a[i] == e;
    } else {
      err = std::fabs(a[i] - e);
      const double allowed = tol.atol + tol.rtol * std::fabs(e);
      good = err <= allowed;  // false for a nan or inf result
      if (std::isfinite(err)) {
        c.max_abs = std::max(c.max_abs, err);
        c.max_ratio = std::max(c.max_ratio, err / allowed);
      }
    }
    if (!good) {
      ++c.n_bad;
      std::ostringstream os;
      os << std::setprecision(17) << "element " << i << " " << index_str(static_cast<std::int64_t>(i), expected.shape)
         << " is " << a[i] << ", expected " << e << std::setprecision(3) << " (|diff| " << err << " > " << tol.atol
         << " + " << tol.rtol << " |expected|)";
      fail(os.str());
    }
  }
  if (c.n_bad > static_cast<std::int64_t>(kMaxMessages))
    c.errors.push_back(what + ": ... " + std::to_string(c.n_bad) + " of " + std::to_string(a.size()) +
                       " elements out of tolerance in all");
  return c;
}

// ---- running a case -------------------------------------------------------------------------

/// Our inputs for a case: float inputs in `dtype` (from float64 values, converted with
/// .to() for float32), marked requires_grad when asked; int64 inputs as indices.
std::vector<std::pair<std::string, Tensor>> make_inputs(const RefCase& c, DType dtype, bool with_grad) {
  std::vector<std::pair<std::string, Tensor>> inputs;
  for (const auto& t : c.inputs) {
    Tensor x;
    if (t.is_index) {
      x = Tensor::from_indices(t.indices, t.shape);
    } else {
      x = Tensor::from_vector(t.values, t.shape, DType::Float64);
      if (dtype != DType::Float64) x = x.to(dtype);
      if (with_grad && t.requires_grad) x.set_requires_grad(true);
    }
    inputs.emplace_back(t.name, x);
  }
  return inputs;
}

Tensor call_op(const RefCase& c, const std::vector<std::pair<std::string, Tensor>>& inputs) {
  const auto& table = op_table();
  const auto it = table.find(c.op);
  if (it == table.end()) throw std::runtime_error("no C++ dispatch for op '" + c.op + "'");
  OpArgs args(c.params, inputs);
  Tensor out = it->second(args);
  args.check_all_used();
  return out;
}

/// Float64: the output and every gradient, against kFloat64Exact.
std::vector<Comparison> run_float64(const RefCase& c) {
  const auto inputs = make_inputs(c, DType::Float64, true);
  const Tensor out = call_op(c, inputs);
  std::vector<Comparison> results;
  results.push_back(compare("output", out, DType::Float64, c.output, hkt::test::kFloat64Exact));
  if (!results.back().ok) return results;  // a wrong output: its gradients say nothing more
  out.backward(Tensor::from_vector(c.grad_output.values, c.grad_output.shape, DType::Float64));
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i].requires_grad) continue;
    const std::string& name = c.inputs[i].name;
    results.push_back(compare("grad of " + name, inputs[i].second.grad(), DType::Float64, c.grads.at(name),
                              hkt::test::kFloat64Exact));
  }
  return results;
}

/// Float32: the output only, against the float64 expectation with kFloat32VsFloat64.
Comparison run_float32(const RefCase& c) {
  const auto inputs = make_inputs(c, DType::Float32, false);
  const Tensor out = call_op(c, inputs);
  return compare("float32 output", out, DType::Float32, c.output, hkt::test::kFloat32VsFloat64);
}

void report(const Comparison& cmp) {
  for (const auto& message : cmp.errors) FAIL_CHECK(message);
  CHECK(cmp.n_bad == 0);
}

void require_header(const References& refs) {
  INFO("tests/data/op_references.json, written by " << refs.generator << " (torch " << refs.torch_version << ")");
  REQUIRE(refs.format == kFormat);
  REQUIRE(refs.version == kVersion);
}

/// Every case of `op` in float64, each in its own section.
void check_op(const References& refs, const std::string& op) {
  std::vector<const RefCase*> cases;
  for (const auto& c : refs.cases)
    if (c.op == op) cases.push_back(&c);
  INFO("op " << op);
  REQUIRE(!cases.empty());  // an op without reference cases is untested
  for (const RefCase* c : cases) {
    DYNAMIC_SECTION(c->name) {
      INFO("case " << c->name);
      for (const auto& cmp : run_float64(*c)) report(cmp);
    }
  }
}

/// The reference names of the registry's ops (engine/gradcheck/cases.cpp), each once.
std::set<std::string> registry_references() {
  std::set<std::string> out;
  for (const auto& info : hkt::gradcheck::op_infos())
    if (!info.reference.empty()) out.insert(info.reference);
  return out;
}

}  // namespace

TEST_CASE("op references: every op of the registry against PyTorch in float64", "[op_references]") {
  const References& refs = references();
  require_header(refs);
  for (const auto& op : registry_references()) DYNAMIC_SECTION(op) {
      check_op(refs, op);
    }
}

TEST_CASE("op references: file header and coverage", "[op_references]") {
  const References& refs = references();
  require_header(refs);
  CHECK(refs.generator == "tools/make_op_references.py");
  REQUIRE(!refs.cases.empty());
  std::set<std::string> names;
  std::set<std::string> ops_in_file;
  const std::set<std::string> wanted = registry_references();
  for (const auto& c : refs.cases) {
    INFO("case " << c.name);
    CHECK(names.insert(c.name).second);  // case names are unique
    ops_in_file.insert(c.op);
    // A case of an op without a dispatch, or that no registry op names, would go untested.
    if (op_table().count(c.op) == 0) FAIL_CHECK("op '" << c.op << "' has no C++ dispatch in test_op_references.cpp");
    if (wanted.count(c.op) == 0)
      FAIL_CHECK("op '" << c.op << "' is the reference of no op in engine/gradcheck/cases.cpp's op_infos()");
  }
  for (const auto& op : wanted) {
    INFO("registry reference " << op);
    CHECK(ops_in_file.count(op) == 1);  // every reference the registry names has cases
    CHECK(op_table().count(op) == 1);   // and a dispatch
  }
  CHECK(op_table().size() == wanted.size());  // no dispatch for an op nobody tests
}

TEST_CASE("op references: float32 forward", "[op_references]") {
  const References& refs = references();
  require_header(refs);
  REQUIRE(!refs.cases.empty());
  for (const auto& c : refs.cases) {
    DYNAMIC_SECTION(c.name) {
      INFO("case " << c.name << " in float32");
      report(run_float32(c));
    }
  }
}

// Not run by ctest (hidden): the largest error of each op, float64 (output and gradients)
// and float32 (output), as a fraction of the tolerance and in absolute terms.
TEST_CASE("op references: error report", "[.report]") {
  const References& refs = references();
  require_header(refs);
  struct Worst {
    double abs = 0.0, ratio = 0.0;
    std::string where;
  };
  std::map<std::string, std::pair<Worst, Worst>> worst;  // op -> (float64, float32)
  std::vector<std::string> order;
  const auto note = [](Worst& w, const Comparison& cmp, const std::string& name) {
    if (cmp.max_ratio >= w.ratio) {
      w.ratio = cmp.max_ratio;
      w.abs = std::max(w.abs, cmp.max_abs);
      w.where = name + " " + cmp.what;
    }
    w.abs = std::max(w.abs, cmp.max_abs);
  };
  int failures = 0;
  for (const auto& c : refs.cases) {
    if (worst.count(c.op) == 0) order.push_back(c.op);
    auto& [w64, w32] = worst[c.op];
    try {
      for (const auto& cmp : run_float64(c)) {
        note(w64, cmp, c.name);
        for (const auto& e : cmp.errors) std::cout << "FAIL " << c.name << ": " << e << "\n";
        failures += cmp.ok ? 0 : 1;
      }
      const Comparison cmp = run_float32(c);
      note(w32, cmp, c.name);
      for (const auto& e : cmp.errors) std::cout << "FAIL " << c.name << ": " << e << "\n";
      failures += cmp.ok ? 0 : 1;
    } catch (const std::exception& e) {
      std::cout << "FAIL " << c.name << ": " << e.what() << "\n";
      ++failures;
    }
  }
  std::cout << std::setprecision(3) << std::scientific;
  std::cout << "op references (" << refs.cases.size() << " cases): largest |error| and |error| / tolerance\n";
  for (const auto& op : order) {
    const auto& [w64, w32] = worst[op];
    std::cout << "  " << std::left << std::setw(18) << op << " f64 " << w64.abs << " (" << w64.ratio << " of tol, "
              << w64.where << ")  f32 " << w32.abs << " (" << w32.ratio << " of tol, " << w32.where << ")\n";
  }
  CHECK(failures == 0);
}
