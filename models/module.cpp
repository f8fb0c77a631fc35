#include "module.h"

#include "error.h"

namespace hkt {

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  for (const auto& [n, t] : params_) check(n != name, "register_parameter: duplicate parameter name '" + name + "'");
  value.set_requires_grad(true);
  params_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(Tensor value) {
  buffers_.push_back(value);
  return value;
}

namespace {
// Gives the tensor behind `t` new storage on `device` holding the same values.
void move_in_place(const Tensor& t, Device device) {
  if (!t.defined() || t.device() == device) return;
  Tensor moved = t.detach().to(device);
  t.impl()->storage = moved.impl()->storage;
  t.impl()->grad = Tensor();
}
}  // namespace

void Module::to(Device device) {
  for (auto& [name, t] : params_) move_in_place(t, device);
  for (auto& t : buffers_) move_in_place(t, device);
  for (auto& [name, child] : children_) child->to(device);
}

Device Module::device() const {
  const auto params = parameters();
  return params.empty() ? Device::CPU : params.front().device();
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
