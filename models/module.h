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

class ParameterGroup;

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

  /// Moves every parameter and buffer of this module and its children to `device`, in
  /// place: each tensor keeps its handle (so members and optimizers that hold it see the
  /// move) and gets new storage there; gradients are cleared. Throws hkt::Error from
  /// the copy (e.g. no CUDA device). Like PyTorch's module.to(device).
  void to(Device device);
  /// The device of the parameters (CPU for a module without any).
  Device device() const;

 protected:
  /// Adds a parameter (marked requires_grad) under `name`; returns it.
  Tensor register_parameter(const std::string& name, Tensor value);
  /// Adds a constant that moves with the module but is not trained (sinusoidal
  /// positions, fixed level weights); returns it.
  Tensor register_buffer(Tensor value);
  /// Adds a child (owned elsewhere) whose parameters are listed under "name.".
  void register_module(const std::string& name, Module* child);
  /// Adds an owned, empty group of parameters listed under "name." and returns it.
  ParameterGroup* add_group(const std::string& name);

 private:
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<Tensor> buffers_;
  std::vector<std::pair<std::string, Module*>> children_;
  std::vector<std::unique_ptr<Module>> owned_;
};

/// A module that only groups parameters under a name, to give them PyTorch's nested
/// names: "ln1" holding "weight" and "bias" lists "ln1.weight" and "ln1.bias".
class ParameterGroup : public Module {
 public:
  /// Adds a parameter (marked requires_grad); returns it.
  Tensor add(const std::string& name, Tensor value) { return register_parameter(name, std::move(value)); }
  /// A nested group ("w_q" holding "0" holding "weight").
  ParameterGroup* group(const std::string& name) { return add_group(name); }
  /// Lists a module owned elsewhere under "name." ("blocks" adopting each block as "0", "1").
  void adopt(const std::string& name, Module* child) { register_module(name, child); }
};

}  // namespace hkt
