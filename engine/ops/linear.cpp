// linear.cpp: y = x W^T + b (PyTorch's nn.Linear layout: W is [out_features, in_features]).
// Composed of matmul, transpose and add, so autodiff supplies the backward.
#include "../ops.h"

namespace hkt {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check(weight.defined() && weight.dim() == 2, "linear: weight must be [out_features, in_features]");
  check(x.defined() && x.dim() >= 1 && x.shape().back() == weight.shape()[1],
        "linear: input " + (x.defined() ? shape_str(x.shape()) : std::string("undefined")) +
            " does not end in in_features = " + std::to_string(weight.shape()[1]) + " of weight " +
            shape_str(weight.shape()));
  // Fold leading dimensions into rows: [..., in] -> [rows, in] -> [rows, out] -> [..., out].
  Shape out_shape = x.shape();
  out_shape.back() = weight.shape()[0];
  Tensor y = matmul(reshape(x, {-1, weight.shape()[1]}), transpose(weight, 0, 1));
  if (bias.defined()) {
    check(bias.shape() == Shape{weight.shape()[0]},
          "linear: bias must be [" + std::to_string(weight.shape()[0]) + "], got " + shape_str(bias.shape()));
    y = add(y, bias);
  }
  return reshape(y, out_shape);
}

}  // namespace hkt
