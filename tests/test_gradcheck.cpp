// test_gradcheck.cpp: every registered gradient check passes in float64 (and float32
// against float64 differences), and the checker itself detects a wrong gradient.
#include "gradcheck/gradcheck.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

TEST_CASE("gradcheck: the registry has one OpInfo per op with cases, in the same order", "[gradcheck]") {
  std::vector<std::string> registered;
  for (const auto& info : gradcheck::op_infos()) {
    INFO("op " << info.op);
    registered.push_back(info.op);
    // An op has a PyTorch reference name or says why it has none, never both.
    CHECK(info.reference.empty() != info.no_reference.empty());
    bool small = false;
    for (const auto& c : gradcheck::all_cases()) small |= c.op == info.op && !c.large;
    CHECK(small);  // every op is checked by finite differences
  }
  CHECK(registered == gradcheck::op_names());
  require_error([] { gradcheck::op_info("matmull"); }, "gradcheck: no op named 'matmull' (known ops: add, sub,");
}

TEST_CASE("gradcheck: every op's cases pass in float64", "[gradcheck]") {
  gradcheck::Options options;
  options.atol = kGradcheck.atol;
  options.rtol = kGradcheck.rtol;
  const auto results = gradcheck::run("", options);
  CHECK(gradcheck::op_names().size() >= 25);
  for (const auto& r : results) {
    INFO(r.op << " " << r.shape << " (" << r.mode << "): max_abs_err " << r.max_abs_err << " " << r.failure);
    CHECK(r.passed);
  }
}

TEST_CASE("gradcheck: every op's cases pass in float32 against float64 differences", "[gradcheck]") {
  gradcheck::Options options;
  options.dtype = DType::Float32;
  options.atol = kGradcheckFloat32.atol;
  options.rtol = kGradcheckFloat32.rtol;
  for (const auto& r : gradcheck::run("", options)) {
    INFO(r.op << " " << r.shape << " (" << r.mode << "): max_abs_err " << r.max_abs_err << " " << r.failure);
    CHECK(r.passed);
  }
}

TEST_CASE("gradcheck: a wrong backward is caught in each mode", "[gradcheck]") {
  // y = x^3 recorded with the wrong derivative 2x^2 (should be 3x^2).
  gradcheck::Function wrong = [](const std::vector<Tensor>& in) {
    const Tensor& x = in[0];
    Tensor y = x.detach() * x.detach() * x.detach();
    record(y, "wrong_cube", {x},
           [xd = x.detach()](const Tensor& g, const std::vector<bool>&) { return Grads{g * xd * xd * 2.0}; });
    return y;
  };
  Generator gen(3);
  for (std::int64_t n : {4, 200, 5000}) {  // full, vjp, projection
    Tensor x = Tensor::uniform({n}, gen, 0.5, 1.5, DType::Float64);
    const auto r = gradcheck::check("wrong_cube", "[n]", wrong, {x});
    INFO("n = " << n << ", mode " << r.mode);
    CHECK_FALSE(r.passed);
    CHECK(r.failure.find("differ") != std::string::npos);
  }
}

TEST_CASE("gradcheck: nondeterministic backward and nonzero gradient for zero input are caught", "[gradcheck]") {
  int calls = 0;
  gradcheck::Function flaky = [&calls](const std::vector<Tensor>& in) {
    Tensor y = in[0].detach() * 2.0;
    const double bump = ++calls % 2 ? 0.0 : 1e-9;  // differs between two consecutive runs
    record(y, "flaky", {in[0]}, [bump](const Tensor& g, const std::vector<bool>&) { return Grads{g * 2.0 + bump}; });
    return y;
  };
  Generator gen(1);
  const auto r = gradcheck::check("flaky", "[3]", flaky, {Tensor::normal({3}, gen, 0, 1, DType::Float64)});
  CHECK_FALSE(r.passed);
  INFO(r.failure);
  CHECK((r.failure.find("backward run twice") != std::string::npos ||
         r.failure.find("zero output gradient") != std::string::npos));

  gradcheck::Function leaky = [](const std::vector<Tensor>& in) {
    Tensor y = in[0].detach() * 2.0;
    record(y, "leaky", {in[0]},
           [](const Tensor& g, const std::vector<bool>&) { return Grads{g * 2.0 + 0.0 * g + 1e-300}; });
    return y;
  };
  const auto r2 = gradcheck::check("leaky", "[3]", leaky, {Tensor::normal({3}, gen, 0, 1, DType::Float64)});
  CHECK(r2.failure == "a zero output gradient gave a nonzero input gradient");
}

TEST_CASE("gradcheck: unknown op names the known ones", "[gradcheck][errors]") {
  require_error([] { gradcheck::run("nope"); }, "gradcheck: no op named 'nope' (known ops: add, sub, mul, div");
}
