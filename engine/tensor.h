// tensor.h: the Tensor handle: shape, dtype, device, shared contiguous storage, and the
// autograd fields (requires_grad, grad, the node that produced it).
//
// A Tensor is a cheap handle (a shared pointer): copying one shares the data, as in
// PyTorch. Storage is always contiguous row-major; reshape is a view (same storage).
// Other ops write a new tensor, except where nothing would change: to() the same dtype
// or device, sum_to() the same shape and dropout() when off return the input itself.
// The ops themselves are declared in ops.h.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "device.h"
#include "dtype.h"
#include "random.h"
#include "shape.h"
#include "storage.h"

namespace hkt {

struct Node;
struct TensorImpl;

class Tensor {
 public:
  /// An undefined tensor (defined() is false): the "no gradient" value.
  Tensor() = default;

  // ---- creation --------------------------------------------------------------
  /// Uninitialised memory of the given shape. Throws hkt::Error for a negative size, a
  /// rank above 8, more than 2^60 elements, or memory that cannot be allocated.
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::CPU);
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::CPU);
  /// Every element equal to `value` (rounded to dtype).
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = Device::CPU);
  /// [start, start+step, ...) below `end` (above it for negative step), rank 1.
  /// Throws hkt::Error when step is 0.
  static Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Float32);
  /// A tensor holding `values` (row-major) with `shape`; numel(shape) must equal
  /// values.size(), else hkt::Error. Values are rounded to dtype; for int64 they must be
  /// finite and below 2^63 in magnitude (else hkt::Error naming the position).
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::Float32);
  /// An int64 tensor of indices.
  static Tensor from_indices(const std::vector<std::int64_t>& values, const Shape& shape);
  /// A rank-0 tensor.
  static Tensor scalar(double value, DType dtype = DType::Float32);
  /// Normal(mean, std^2) samples; element i from Philox(seed, offset + i), see random.h.
  static Tensor normal(const Shape& shape, Generator& gen, double mean = 0.0, double std = 1.0,
                       DType dtype = DType::Float32);
  /// Uniform samples in [low, high); element i from Philox(seed, offset + i).
  static Tensor uniform(const Shape& shape, Generator& gen, double low = 0.0, double high = 1.0,
                        DType dtype = DType::Float32);

  // ---- properties -------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int dim() const { return static_cast<int>(shape().size()); }
  /// Size of dimension `axis` (negative counts from the end).
  std::int64_t size(int axis) const;
  std::int64_t numel() const;
  DType dtype() const;
  Device device() const;
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype()); }

  /// Typed pointer to the first element. Throws hkt::Error unless E matches the dtype
  /// and the tensor is on the CPU.
  template <class E>
  E* data() const;
  /// Untyped pointer to the first element (any device).
  void* raw_data() const;

  // ---- conversion -------------------------------------------------------------
  /// The value of a one-element tensor as double; hkt::Error otherwise.
  double item() const;
  /// All elements as doubles (row-major); copies from the GPU if needed.
  std::vector<double> to_vector() const;
  /// A copy in another dtype (differentiable between float types). Same dtype: *this.
  /// Float to int64 truncates toward 0 and throws for NaN, inf or |x| >= 2^63.
  Tensor to(DType dtype) const;
  /// A copy on another device (differentiable). Same device: *this.
  Tensor to(Device device) const;
  /// Same shape, new storage, same values (differentiable).
  Tensor clone() const;
  /// Shares storage, but has no gradient history and does not require grad.
  Tensor detach() const;
  /// A view with a new shape (one size may be -1). Differentiable. See ops.h reshape.
  Tensor reshape(const Shape& shape) const;

  // ---- autograd ---------------------------------------------------------------
  bool requires_grad() const;
  /// Marks a leaf tensor as a parameter whose .grad backward() fills. Throws hkt::Error
  /// for non-floating dtypes and for tensors produced by an op (non-leaves).
  Tensor& set_requires_grad(bool requires_grad = true);
  /// True when the tensor was not produced by a recorded op.
  bool is_leaf() const;
  /// Accumulated gradient (undefined until a backward reaches this leaf).
  Tensor grad() const;
  /// Clears .grad (sets it undefined), as PyTorch's zero_grad(set_to_none=True).
  void zero_grad();
  /// Reverse-mode differentiation from this tensor; see autograd.h for the rules.
  void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false) const;
  /// The node that produced this tensor (nullptr for leaves).
  const std::shared_ptr<Node>& grad_fn() const;

  /// Readable text in PyTorch's style, with the shape:
  /// tensor([[1.0000, 2.0000]], shape=[1,2], dtype=float64, requires_grad=true).
  std::string to_string() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<TensorImpl> impl_;
};

/// The shared state behind a Tensor handle.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  DType dtype = DType::Float32;
  bool requires_grad = false;
  Tensor grad;                    // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;  // the op that produced this tensor, or null
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

template <class E>
E* Tensor::data() const {
  check(defined(), "data: the tensor is undefined");
  check(dtype() == DTypeOf<E>::value,
        "data: tensor has dtype " + dtype_name(dtype()) + ", asked for " + dtype_name(DTypeOf<E>::value));
  check(device() == Device::CPU, "data: tensor is on " + device_name(device()) + "; only cpu memory is addressable");
  return static_cast<E*>(raw_data());
}

}  // namespace hkt
