#include "tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <type_traits>
#include <iomanip>
#include <sstream>

#include "autograd.h"
#include "cuda_backend.h"
#include "ops.h"
#include "ops/cpu_kernels.h"

namespace hkt {

namespace {
// Converts one value to D. Float -> int64 must be finite and in range (a C++ cast of
// NaN or 1e300 to an integer is undefined behaviour), else hkt::Error naming `op`.
template <class D>
D convert(double value, const char* op, std::size_t index) {
  if constexpr (std::is_same_v<D, std::int64_t>) {
    check(std::isfinite(value) && std::fabs(value) < 0x1p63, std::string(op) + ": value " + std::to_string(value) +
                                                                 " at position " + std::to_string(index) +
                                                                 " cannot be converted to int64");
  }
  return static_cast<D>(value);
}
}  // namespace

// ---- creation --------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  validate_shape("empty", shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(static_cast<std::size_t>(hkt::numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  if (device == Device::CUDA) {  // checked and rounded once on the host, filled on the GPU
    const double rounded =
        dispatch_any(dtype, [&](auto tag) { return static_cast<double>(convert<decltype(tag)>(value, "full", 0)); });
    Tensor t = empty(shape, dtype, device);
    cuda::fill(t.raw_data(), t.numel(), rounded, dtype);
    return t;
  }
  Tensor t = empty(shape, dtype, Device::CPU);
  dispatch_any(dtype, [&](auto tag) {
    using E = decltype(tag);
    std::fill_n(t.data<E>(), t.numel(), convert<E>(value, "full", 0));
  });
  return t.to(device);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  if (device == Device::CPU) {  // zero bytes are 0.0 and 0 for every dtype
    Tensor t = empty(shape, dtype, device);
    std::memset(t.raw_data(), 0, t.nbytes());
    return t;
  }
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::arange(double start, double end, double step, DType dtype) {
  check(step != 0.0, "arange: step must not be 0");
  check(std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
        "arange: start, end and step must be finite");
  const double count = std::ceil((end - start) / step);
  check(count <= 0x1p60, "arange: " + std::to_string(count) + " elements are too many");
  const auto n = static_cast<std::int64_t>(count > 0 ? count : 0);
  Tensor t = empty({n}, dtype);
  dispatch_any(dtype, [&](auto tag) {
    using E = decltype(tag);
    E* p = t.data<E>();
    for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<E>(start + static_cast<double>(i) * step);
  });
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  validate_shape("from_vector", shape);
  check(static_cast<std::int64_t>(values.size()) == hkt::numel(shape),
        "from_vector: " + std::to_string(values.size()) + " values do not fill shape " + shape_str(shape) + " (" +
            std::to_string(hkt::numel(shape)) + " elements)");
  Tensor t = empty(shape, dtype);
  dispatch_any(dtype, [&](auto tag) {
    using E = decltype(tag);
    E* p = t.data<E>();
    for (std::size_t i = 0; i < values.size(); ++i) p[i] = convert<E>(values[i], "from_vector", i);
  });
  return t;
}

Tensor Tensor::from_indices(const std::vector<std::int64_t>& values, const Shape& shape) {
  validate_shape("from_indices", shape);
  check(static_cast<std::int64_t>(values.size()) == hkt::numel(shape),
        "from_indices: " + std::to_string(values.size()) + " values do not fill shape " + shape_str(shape));
  Tensor t = empty(shape, DType::Int64);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(std::int64_t));
  return t;
}

namespace {
// A float tensor of `shape` whose element i is value(block, E{}), block the Philox output
// for counter first + i, with gen advanced past the numel counters: the numbers depend on
// the seed and the position only, never on the thread count.
template <class F>
Tensor random_tensor(const char* op, const Shape& shape, Generator& gen, DType dtype, F value) {
  Tensor t = Tensor::empty(shape, dtype);
  const std::uint64_t first = gen.advance(static_cast<std::uint64_t>(t.numel()));
  dispatch_floating(dtype, op, [&](auto tag) {
    using E = decltype(tag);
    E* p = t.data<E>();
    cpu::parallel_for(t.numel(), 16, [&](std::int64_t i) {
      p[i] = value(philox_at(gen.seed(), first + static_cast<std::uint64_t>(i)), tag);
    });
  });
  return t;
}
}  // namespace

Tensor Tensor::normal(const Shape& shape, Generator& gen, double mean, double std, DType dtype) {
  check(is_floating(dtype), "normal: dtype must be float32 or float64");
  check(std >= 0.0, "normal: std must be >= 0, got " + std::to_string(std));
  return random_tensor("normal", shape, gen, dtype, [&](const Philox4x32& block, auto tag) {
    return static_cast<decltype(tag)>(mean + std * normal_from(block));
  });
}

Tensor Tensor::uniform(const Shape& shape, Generator& gen, double low, double high, DType dtype) {
  check(is_floating(dtype), "uniform: dtype must be float32 or float64");
  check(low <= high, "uniform: low must be <= high");
  return random_tensor("uniform", shape, gen, dtype, [&](const Philox4x32& block, auto tag) {
    using E = decltype(tag);
    const E v = static_cast<E>(low + (high - low) * uniform53(block.out[0], block.out[1]));
    return v < static_cast<E>(high) || low == high ? v : static_cast<E>(low);  // rounding must not reach high
  });
}

// ---- properties ----------------------------------------------------------------------

namespace {
const TensorImpl& defined_impl(const Tensor& t) {
  check(t.defined(), "the tensor is undefined (a default-constructed Tensor or a missing gradient)");
  return *t.impl();
}
}  // namespace

const Shape& Tensor::shape() const { return defined_impl(*this).shape; }
std::int64_t Tensor::numel() const { return hkt::numel(shape()); }
DType Tensor::dtype() const { return defined_impl(*this).dtype; }
Device Tensor::device() const { return defined_impl(*this).storage->device(); }
void* Tensor::raw_data() const { return defined_impl(*this).storage->data(); }

std::int64_t Tensor::size(int axis) const { return shape()[normalize_axis("size", axis, dim())]; }

// ---- conversion ------------------------------------------------------------------------

double Tensor::item() const {
  check(numel() == 1,
        "item: tensor of shape " + shape_str(shape()) + " has " + std::to_string(numel()) + " elements, not 1");
  return to_vector()[0];
}

std::vector<double> Tensor::to_vector() const {
  Tensor host = device() == Device::CPU ? *this : detach().to(Device::CPU);
  std::vector<double> out(static_cast<std::size_t>(numel()));
  dispatch_any(dtype(), [&](auto tag) {
    using E = decltype(tag);
    const E* p = host.data<E>();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(p[i]);
  });
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  check(defined(), "to(dtype): the tensor is undefined");
  check(is_floating(target) == is_floating(dtype()) || !requires_grad(),
        "to(dtype): cannot convert a tensor that requires grad between integer and floating types");
  const DType source = dtype();
  if (device() == Device::CUDA) {
    if (!(is_floating(target) && is_floating(source)))  // int64 conversions check values: on the host
      return to(Device::CPU).to(target).to(Device::CUDA);
    Tensor out = empty(shape(), target, Device::CUDA);
    cuda::convert(raw_data(), source, out.raw_data(), target, numel());
    record(out, "to_dtype", {*this},
           [source](const Tensor& g, const std::vector<bool>&) { return Grads{g.to(source)}; });
    return out;
  }
  Tensor out = empty(shape(), target);
  dispatch_any(dtype(), [&](auto src_tag) {
    using S = decltype(src_tag);
    dispatch_any(target, [&](auto dst_tag) {
      using D = decltype(dst_tag);
      const S* ps = data<S>();
      D* pd = out.data<D>();
      const std::int64_t n = numel();
      for (std::int64_t i = 0; i < n; ++i)
        pd[i] = std::is_floating_point_v<S>
                    ? convert<D>(static_cast<double>(ps[i]), "to(dtype)", static_cast<std::size_t>(i))
                    : static_cast<D>(ps[i]);
    });
  });
  record(out, "to_dtype", {*this}, [source](const Tensor& g, const std::vector<bool>&) { return Grads{g.to(source)}; });
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  if (target == Device::CUDA) cuda::require_device("to(cuda)");
  Tensor out = empty(shape(), dtype(), target);
  if (target == Device::CUDA)
    cuda::copy_host_to_device(out.raw_data(), raw_data(), nbytes());
  else
    cuda::copy_device_to_host(out.raw_data(), raw_data(), nbytes());
  const Device source = device();
  record(out, "to_device", {*this},
         [source](const Tensor& g, const std::vector<bool>&) { return Grads{g.to(source)}; });
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  if (device() == Device::CPU)
    std::memcpy(out.raw_data(), raw_data(), nbytes());
  else
    cuda::copy_device_to_device(out.raw_data(), raw_data(), nbytes());
  record(out, "clone", {*this}, [](const Tensor& g, const std::vector<bool>&) { return Grads{g}; });
  return out;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = defined_impl(*this).storage;
  impl->shape = impl_->shape;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::reshape(const Shape& new_shape) const { return hkt::reshape(*this, new_shape); }

// ---- autograd ------------------------------------------------------------------------

bool Tensor::requires_grad() const { return defined_impl(*this).requires_grad; }
bool Tensor::is_leaf() const { return defined_impl(*this).grad_fn == nullptr; }
Tensor Tensor::grad() const { return defined_impl(*this).grad; }
void Tensor::zero_grad() {
  check(defined(), "zero_grad: the tensor is undefined");
  impl_->grad = Tensor();
}
const std::shared_ptr<Node>& Tensor::grad_fn() const { return defined_impl(*this).grad_fn; }

Tensor& Tensor::set_requires_grad(bool value) {
  check(is_leaf(), "set_requires_grad: only leaf tensors (not produced by an op) can be marked; use detach() first");
  check(!value || is_floating(dtype()),
        "set_requires_grad: only float32/float64 tensors can require grad, this one is " + dtype_name(dtype()));
  impl_->requires_grad = value;
  return *this;
}

void Tensor::backward(const Tensor& grad_output, bool retain_graph) const {
  hkt::backward(*this, grad_output, retain_graph);
}

// ---- printing ------------------------------------------------------------------------

namespace {

// Writes the nested brackets of dimension `d` starting at element `offset`; `element`
// formats one element. Long dimensions (> 6) show their first and last 3 entries around
// "...", as PyTorch does.
void format_dim(std::ostringstream& os, const Shape& shape, std::size_t d, std::int64_t offset,
                const std::vector<std::int64_t>& strides, const std::function<std::string(std::int64_t)>& element,
                int indent) {
  if (d == shape.size()) {
    os << element(offset);
    return;
  }
  os << "[";
  const std::int64_t n = shape[d];
  const std::string separator =
      d + 1 == shape.size() ? ", " : ",\n" + std::string(static_cast<std::size_t>(indent + 1), ' ');
  for (std::int64_t i = 0; i < n; ++i) {
    if (n > 6 && i == 3) {
      os << "..." << separator;
      i = n - 4;
      continue;
    }
    format_dim(os, shape, d + 1, offset + i * strides[d], strides, element, indent + 1);
    if (i + 1 < n) os << separator;
  }
  os << "]";
}

}  // namespace

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  std::function<std::string(std::int64_t)> element;
  std::vector<double> v;
  Tensor host = device() == Device::CPU ? *this : detach().to(Device::CPU);
  if (dtype() == DType::Int64) {
    // Read the integers themselves: through double, values above 2^53 would round.
    const std::int64_t* p = host.data<std::int64_t>();
    element = [p](std::int64_t i) { return std::to_string(p[i]); };
  } else {
    v = host.to_vector();
    bool scientific = false;
    for (double x : v)
      if (std::isfinite(x) && x != 0.0 && (std::fabs(x) >= 1e5 || std::fabs(x) < 1e-4)) scientific = true;
    element = [&v, scientific](std::int64_t i) {
      const double x = v[static_cast<std::size_t>(i)];
      if (std::isnan(x)) return std::string("nan");
      if (std::isinf(x)) return std::string(x > 0 ? "inf" : "-inf");
      std::ostringstream one;
      one << (scientific ? std::scientific : std::fixed) << std::setprecision(4) << x;
      return one.str();
    };
  }
  std::ostringstream os;
  os << "tensor(";
  format_dim(os, shape(), 0, 0, contiguous_strides(shape()), element, 7);
  os << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype());
  if (device() != Device::CPU) os << ", device=" << device_name(device());
  if (requires_grad()) os << ", requires_grad=true";
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

}  // namespace hkt
