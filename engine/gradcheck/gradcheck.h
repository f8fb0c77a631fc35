// gradcheck.h: checks an op's analytic gradient against central finite differences,
// following PyTorch's gradcheck (torch.autograd.gradcheck): float64, eps 1e-6,
// atol 1e-5, rtol 1e-3, an entry passes when |analytic - numeric| <= atol + rtol |numeric|.
//
// Three ways to compare, chosen by size:
//  * "full": the whole Jacobian J[o][p], numeric by perturbing each input element,
//    analytic by one backward per output element (one-hot upstream gradients);
//  * "vjp": for a random upstream v, the gradient of v . f(x) for every input element;
//  * "projection": for random u and v, the single number v^T J u (PyTorch's fast mode),
//    repeated for several (u, v) pairs.
// Besides the values, each check requires: backward run twice gives bit-identical
// gradients; a zero upstream gradient gives exactly zero input gradients; no NaN.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../tensor.h"

namespace hkt::gradcheck {

/// A function of differentiable float tensors to one float tensor. It is called many
/// times and must be deterministic (a dropout case builds its Generator inside).
using Function = std::function<Tensor(const std::vector<Tensor>&)>;

struct Options {
  double eps = 1e-6;   ///< finite-difference step, in input units
  double atol = 1e-5;  ///< absolute tolerance
  double rtol = 1e-3;  ///< relative tolerance
  /// Analytic gradients in this dtype; the numeric side is always float64. With
  /// Float32 the check measures the float32 kernels against float64 differences.
  DType dtype = DType::Float64;
  std::int64_t full_jacobian_limit = 4096;  ///< largest (inputs x outputs) for "full"
  std::int64_t vjp_limit = 4096;            ///< largest input count for "vjp"
  int projections = 3;                      ///< (u, v) pairs in "projection" mode
  std::uint64_t seed = 1234;                ///< for v and u
};

struct Result {
  std::string op;            ///< e.g. "matmul"
  std::string shape;         ///< the case's shapes, e.g. "[2,3]x[3,4]"
  std::string mode;          ///< "full", "vjp" or "projection"
  double max_abs_err = 0.0;  ///< max |analytic - numeric| over compared entries
  /// max_abs_err / max |numeric|: the error relative to the gradient's magnitude.
  double max_rel_err = 0.0;
  bool passed = false;
  std::string failure;  ///< empty when passed; else what failed
};

/// Checks f at `inputs` (float64 leaves; they are not modified). Throws hkt::Error if
/// an input is not float64 or f returns a non-floating tensor.
Result check(const std::string& op, const std::string& shape, const Function& f, const std::vector<Tensor>& inputs,
             const Options& options = Options());

/// One registered check: an op at one set of shapes.
struct Case {
  std::string op;
  std::string shape;
  /// Builds the float64 inputs (moved away from the op's kinks, see cases.cpp).
  std::function<std::vector<Tensor>(Generator&)> make_inputs;
  Function f;
  /// A shape large enough to use many GPU threads (grid-stride loops wrap, rows of
  /// hundreds of elements): run by the CUDA consistency harness only, not by the
  /// finite-difference checks (their cost grows with the number of elements).
  bool large = false;
};

/// How far an op's CUDA result may be from the CPU's (consistency.h, bound_for).
enum class Summation {
  Exact,      ///< elementwise: both devices round each operation correctly
  FloatSums,  ///< long sums in the same order, which fused multiply-adds can move by ~n eps
  Reordered,  ///< sums in a different order (cuBLAS against BLAS blocking, tiled attention, warp and block sums)
};

/// Everything the tests know about one op besides its cases: the op's name among the
/// PyTorch reference cases (tests/data/op_references.json, tools/make_op_references.py)
/// or why it has none, and its CUDA error class. Adding an op is one OpInfo line and
/// its cases in cases.cpp; the tests then check it by finite differences (float64 and
/// float32), on the CUDA backend against the CPU, and require its PyTorch reference
/// cases (tests/test_op_references.cpp).
struct OpInfo {
  std::string op;
  std::string reference;     ///< the op's name in op_references.json; empty when it has none
  std::string no_reference;  ///< why there is no PyTorch reference (only when `reference` is empty)
  Summation summation = Summation::Exact;
};

/// Every op with cases, in the order of all_cases() (cases.cpp).
const std::vector<OpInfo>& op_infos();
/// The OpInfo of `op`. Throws hkt::Error naming the known ops when there is none.
const OpInfo& op_info(const std::string& op);

/// Every registered case, grouped by op (cases.cpp), the large ones included.
const std::vector<Case>& all_cases();
/// The distinct op names of all_cases(), in order.
std::vector<std::string> op_names();

/// Runs the finite-difference checks of `op` (all ops when empty), every case that is
/// not `large`. Throws hkt::Error naming the known ops when `op` matches none.
std::vector<Result> run(const std::string& op, const Options& options = Options());

}  // namespace hkt::gradcheck
