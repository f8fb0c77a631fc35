#include "module.h"

#include "error.h"

namespace hkt {

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  for (const auto& [n, t] : params_) check(n != name, "register_parameter: duplicate parameter name '" + name + "'");
  value.set_requires_grad(true);
  params_.emplace_back(name, value);
  return value;
}

void Module::register_module(const std::string& name, Module* child) { children_.emplace_back(name, child); }

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out = params_;
  for (const auto& [prefix, child] : children_)
    for (auto& [name, t] : child->named_parameters()) out.emplace_back(prefix + "." + name, t);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::int64_t Module::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& t : parameters()) n += t.numel();
  return n;
}

}  // namespace hkt
