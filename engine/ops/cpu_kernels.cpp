#include "cpu_kernels.h"

namespace hkt::cpu {

void check_cpu(const char* op, const Tensor& x, const char* name) {
  check(x.defined(), std::string(op) + ": " + name + " is an undefined tensor");
  check(x.device() == Device::CPU, std::string(op) + ": " + name + " is on " + device_name(x.device()) +
                                       "; this op has no CUDA kernel (CPU only)");
}

void check_defined(const char* op, const Tensor& x, const char* name) {
  check(x.defined(), std::string(op) + ": " + name + " is an undefined tensor");
}

void check_same_kind(const char* op, const Tensor& a, const Tensor& b) {
  check(a.dtype() == b.dtype(),
        std::string(op) + ": dtypes differ (" + dtype_name(a.dtype()) + " and " + dtype_name(b.dtype()) + ")");
  check(a.device() == b.device(),
        std::string(op) + ": devices differ (" + device_name(a.device()) + " and " + device_name(b.device()) + ")");
}

void check_indices(const char* op, const Tensor& x, const char* name) {
  check_defined(op, x, name);
  check(x.dtype() == DType::Int64,
        std::string(op) + ": " + name + " must be an int64 tensor, got " + dtype_name(x.dtype()));
}

std::vector<std::int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  const auto own = contiguous_strides(in);
  std::vector<std::int64_t> strides(out.size(), 0);
  const std::size_t lead = out.size() - in.size();
  for (std::size_t i = 0; i < in.size(); ++i) strides[lead + i] = in[i] == 1 ? 0 : own[i];
  return strides;
}

std::vector<std::int64_t> host_indices(const Tensor& x) {
  const Tensor host = x.device() == Device::CPU ? x : x.detach().to(Device::CPU);
  const std::int64_t* p = host.data<std::int64_t>();
  return std::vector<std::int64_t>(p, p + host.numel());
}

Tensor on_device(const Tensor& x, Device device) { return x.device() == device ? x : x.detach().to(device); }

cuda::StridedView broadcast_view(const Shape& a, const Shape& b, const Shape& out) {
  check(out.size() <= static_cast<std::size_t>(cuda::kMaxRank), "broadcast: rank above 8");
  cuda::StridedView v;
  v.rank = static_cast<int>(out.size());
  const auto sa = broadcast_strides(a, out), sb = broadcast_strides(b, out);
  for (int d = 0; d < v.rank; ++d) {
    v.shape[d] = out[d];
    v.strides_a[d] = sa[d];
    v.strides_b[d] = sb[d];
  }
  return v;
}

Tensor zero_safe_mul(const Tensor& g, const Tensor& local) {
  return map_binary<fn::Binary::ZeroSafeMul>("backward", g, local);
}

Tensor zero_safe_div(const Tensor& g, const Tensor& d) { return map_binary<fn::Binary::ZeroSafeDiv>("backward", g, d); }

}  // namespace hkt::cpu
