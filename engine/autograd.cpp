#include "autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "ops.h"

namespace hkt {

namespace {
thread_local bool g_grad_mode = true;
}

bool grad_mode_enabled() { return g_grad_mode; }
NoGradGuard::NoGradGuard() : previous_(g_grad_mode) { g_grad_mode = false; }
NoGradGuard::~NoGradGuard() { g_grad_mode = previous_; }

Node::~Node() {
  // Take over every child this node holds the last reference to, and empty their edges
  // before they die, so each destructor below runs with nothing left to recurse into.
  std::vector<std::shared_ptr<Node>> stack;
  for (auto& e : edges)
    if (e.node) stack.push_back(std::move(e.node));
  while (!stack.empty()) {
    std::shared_ptr<Node> node = std::move(stack.back());
    stack.pop_back();
    if (node.use_count() == 1)
      for (auto& e : node->edges)
        if (e.node) stack.push_back(std::move(e.node));
  }
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_mode) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
bool any_requires_grad(std::initializer_list<Tensor> inputs) { return any_requires_grad(std::vector<Tensor>(inputs)); }

void record(Tensor& output, const char* op, const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (!any_requires_grad(inputs)) return;
  auto node = std::make_shared<Node>();
  node->op = op;
  for (const auto& in : inputs) {
    Edge edge;
    if (in.defined() && in.requires_grad()) {
      if (in.grad_fn())
        edge.node = in.grad_fn();
      else
        edge.leaf = in.impl_ptr();
    }
    node->edges.push_back(std::move(edge));
    node->input_shapes.push_back(in.defined() ? in.shape() : Shape{});
  }
  node->backward = std::move(backward);
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
}

namespace {

// Nodes reachable from `root`, ordered so that every node comes before the nodes it
// feeds gradients to (reverse post-order of a depth-first search). Iterative, so a
// graph thousands of ops deep cannot overflow the call stack.
std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> post_order;
  std::unordered_set<Node*> visited{root};
  std::vector<std::pair<Node*, std::size_t>> stack{{root, 0}};  // (node, next edge)
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->edges.size()) {
      Node* child = node->edges[next++].node.get();
      if (child && visited.insert(child).second) stack.push_back({child, 0});
    } else {
      post_order.push_back(node);
      stack.pop_back();
    }
  }
  return {post_order.rbegin(), post_order.rend()};
}

// leaf.grad += g (the first gradient is copied, since g may be shared with other uses).
void accumulate_leaf(TensorImpl& leaf, const Tensor& g) {
  if (!leaf.grad.defined())
    leaf.grad = g.clone();
  else
    add_(leaf.grad, g);
}

}  // namespace

void backward(const Tensor& root, const Tensor& grad_output, bool retain_graph) {
  check(root.defined(), "backward: the tensor is undefined");
  check(root.requires_grad(),
        "backward: the tensor does not require grad (no parameter of it requires grad, "
        "or it was computed under NoGradGuard)");
  Tensor g = grad_output;
  if (!g.defined()) {
    check(root.numel() == 1,
          "backward: a gradient must be given for a non-scalar output of shape " + shape_str(root.shape()));
    g = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  check(g.shape() == root.shape(),
        "backward: gradient shape " + shape_str(g.shape()) + " differs from output shape " + shape_str(root.shape()));
  check(g.dtype() == root.dtype(),
        "backward: gradient dtype " + dtype_name(g.dtype()) + " differs from output dtype " + dtype_name(root.dtype()));
  check(g.device() == root.device(),
        "backward: gradient is on " + device_name(g.device()) + ", the output on " + device_name(root.device()));
  NoGradGuard no_grad;
  if (!root.grad_fn()) {  // the root is itself a leaf
    accumulate_leaf(*root.impl(), g);
    return;
  }
  std::vector<Node*> order = topological_order(root.grad_fn().get());
  std::unordered_map<Node*, Tensor> pending{{order.front(), g}};
  for (Node* node : order) {
    Tensor grad_out = std::move(pending[node]);
    pending.erase(node);
    if (!node->backward)
      throw Error("backward: the graph through '" + node->op +
                  "' was already freed by an earlier backward(); "
                  "pass retain_graph = true to the first backward to differentiate twice");
    if (!grad_out.defined()) {  // no gradient reached this node (every path gave none)
      if (!retain_graph) node->backward = nullptr;
      continue;
    }
    std::vector<bool> needs;
    for (const auto& e : node->edges) needs.push_back(e.wants_grad());
    Grads grads = node->backward(grad_out, needs);
    if (!retain_graph) node->backward = nullptr;  // frees the saved tensors
    check(grads.size() == node->edges.size(), "backward of '" + node->op + "' returned " +
                                                  std::to_string(grads.size()) + " gradients for " +
                                                  std::to_string(node->edges.size()) + " inputs");
    for (std::size_t i = 0; i < grads.size(); ++i) {
      const Edge& edge = node->edges[i];
      if (!edge.wants_grad() || !grads[i].defined()) continue;
      check(grads[i].shape() == node->input_shapes[i],
            "backward of '" + node->op + "' returned a gradient of shape " + shape_str(grads[i].shape()) +
                " for input " + std::to_string(i) + " of shape " + shape_str(node->input_shapes[i]));
      if (edge.leaf) {
        accumulate_leaf(*edge.leaf, grads[i]);
      } else {
        Tensor& slot = pending[edge.node.get()];
        slot = slot.defined() ? add(slot, grads[i]) : grads[i];
      }
    }
  }
}

}  // namespace hkt
