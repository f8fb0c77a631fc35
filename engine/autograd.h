// autograd.h: define-by-run reverse-mode differentiation.
//
// How it works (the whole idea in one page, as in micrograd):
//  * Each op computes its output, then (if grad mode is on and an input requires grad)
//    calls record(): the output gets a Node holding the op's backward closure and one
//    Edge per input. An edge points at the input's own Node (non-leaf) or at the input
//    tensor itself (a leaf that requires grad), or is empty (no gradient wanted).
//  * The closure captures only what the backward formula needs (detached tensors, so
//    no graph is kept alive by saved values), never the inputs' full graphs.
//  * backward(root) sorts the Nodes reachable from root topologically, then visits
//    them from the root down: each receives the sum of the gradients flowing into it
//    (this is what makes diamonds and reused tensors right), calls its closure, and
//    passes each input gradient along its edge. Leaves accumulate into .grad.
//  * Backward runs with grad mode off. Unless retain_graph, each visited Node drops
//    its closure afterwards, freeing saved tensors; a second backward through it is
//    an error that says so.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor.h"

namespace hkt {

/// Gradients of an op's inputs, one per input in order (undefined = none/zero).
using Grads = std::vector<Tensor>;

/// backward(grad_output, needs) -> Grads. needs[i] is false when input i wants no
/// gradient, so a closure may skip that work (returning an undefined Tensor).
using BackwardFn = std::function<Grads(const Tensor& grad_output, const std::vector<bool>& needs)>;

/// Where an input's gradient goes: into another node, or into a leaf's .grad.
struct Edge {
  std::shared_ptr<Node> node;        // set when the input was produced by an op
  std::shared_ptr<TensorImpl> leaf;  // set when the input is a leaf that requires grad
  bool wants_grad() const { return node || leaf; }
};

/// One recorded op application.
struct Node {
  std::string op;                   // the op's name, for error messages
  std::vector<Edge> edges;          // one per input
  std::vector<Shape> input_shapes;  // to check each gradient's shape
  BackwardFn backward;              // empty after the graph has been freed

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  /// Releases the chain of nodes below without recursion, so dropping a graph that is
  /// tens of thousands of ops deep cannot overflow the call stack.
  ~Node();
};

/// True while gradients are recorded (the default; thread-local).
bool grad_mode_enabled();

/// While alive, ops record nothing (inference, optimizer updates, backward itself).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// True when grad mode is on and any of `inputs` requires grad: the op should record.
bool any_requires_grad(std::initializer_list<Tensor> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

/// Attaches a Node for `op` to `output` (which then requires grad) if any input requires
/// grad and grad mode is on; otherwise does nothing. `inputs` are in the order the
/// closure returns their gradients.
void record(Tensor& output, const char* op, const std::vector<Tensor>& inputs, BackwardFn backward);

/// Runs reverse-mode differentiation from `root`.
/// grad_output: same shape as root; undefined means 1 and requires root.numel() == 1.
/// Throws hkt::Error if root does not require grad, the shapes differ, or the graph was
/// already freed by an earlier backward without retain_graph.
void backward(const Tensor& root, const Tensor& grad_output = Tensor(), bool retain_graph = false);

}  // namespace hkt
