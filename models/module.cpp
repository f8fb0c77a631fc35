#include "module.h"

#include "error.h"

namespace hkt {

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  for (const auto& [n, t] : params_) check(n != name, "register_parameter: duplicate parameter name '" + name + "'");
  value.set_requires_grad(true);
  params_.emplace_back(name, value);
  return value;
}

void Module::register_module(const std::string& name, Module* child) {
  for (const auto& [n, c] : children_) check(n != name, "register_module: duplicate child name '" + name + "'");
  children_.emplace_back(name, child);
}

ParameterGroup* Module::add_group(const std::string& name) {
  auto group = std::make_unique<ParameterGroup>();
  ParameterGroup* raw = group.get();
  owned_.push_back(std::move(group));
  register_module(name, raw);
  return raw;
}

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
