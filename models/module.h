// module.h: the smallest useful "module": a named collection of parameters and child
// modules, with PyTorch's dotted parameter names (blocks.0.attn.w_q.1.weight), so that
// optimizers, checkpoints and docs all speak of the same names.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor.h"

namespace hkt {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// Every parameter of this module and its children, depth first in registration
  /// order, named "child.sub.name".
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  /// The parameters alone, in the same order.
  std::vector<Tensor> parameters() const;
  /// Total number of scalar parameters.
  std::int64_t parameter_count() const;

 protected:
  /// Adds a parameter (marked requires_grad) under `name`; returns it.
  Tensor register_parameter(const std::string& name, Tensor value);
  /// Adds a child whose parameters are listed under "name.".
  void register_module(const std::string& name, Module* child);

 private:
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Module*>> children_;
};

}  // namespace hkt
