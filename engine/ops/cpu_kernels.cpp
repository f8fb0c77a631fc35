#include "cpu_kernels.h"

namespace hkt::cpu {

void check_cpu(const char* op, const Tensor& x, const char* name) {
  check(x.defined(), std::string(op) + ": " + name + " is an undefined tensor");
  check(x.device() == Device::CPU, std::string(op) + ": " + name + " is on " + device_name(x.device()) +
                                       "; this op has no CUDA kernel yet (CPU only)");
}

void check_same_kind(const char* op, const Tensor& a, const Tensor& b) {
  check(a.dtype() == b.dtype(),
        std::string(op) + ": dtypes differ (" + dtype_name(a.dtype()) + " and " + dtype_name(b.dtype()) + ")");
  check(a.device() == b.device(), std::string(op) + ": devices differ (" + device_name(a.device()) + " and " +
                                      device_name(b.device()) + ")");
}

void check_indices(const char* op, const Tensor& x, const char* name) {
  check_cpu(op, x, name);
  check(x.dtype() == DType::Int64, std::string(op) + ": " + name + " must be an int64 tensor, got " +
                                       dtype_name(x.dtype()));
}

std::vector<std::int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  const auto own = contiguous_strides(in);
  std::vector<std::int64_t> strides(out.size(), 0);
  const std::size_t lead = out.size() - in.size();
  for (std::size_t i = 0; i < in.size(); ++i) strides[lead + i] = in[i] == 1 ? 0 : own[i];
  return strides;
}

Tensor zero_safe_mul(const Tensor& g, const Tensor& local) {
  return map_binary("backward", g, local, [](auto gv, auto lv) { return gv == decltype(gv)(0) ? gv * 0 : gv * lv; });
}

Tensor zero_safe_div(const Tensor& g, const Tensor& d) {
  return map_binary("backward", g, d, [](auto gv, auto dv) { return gv == decltype(gv)(0) ? gv * 0 : gv / dv; });
}

}  // namespace hkt::cpu
