// dtype.h: element types a tensor can hold.
//
// float32 and float64 are the floating types every differentiable op accepts
// (float64 is for gradient checks and references). int64 holds indices (token ids,
// class targets, gather indices); it is never differentiable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "error.h"

namespace hkt {

enum class DType { Float32, Float64, Int64 };

/// Bytes per element: 4 for float32, 8 for float64 and int64.
inline std::size_t dtype_size(DType dtype) { return dtype == DType::Float32 ? 4 : 8; }

/// "float32", "float64" or "int64" (the names PyTorch prints).
inline std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "float32";
    case DType::Float64:
      return "float64";
    case DType::Int64:
      return "int64";
  }
  return "unknown";
}

inline bool is_floating(DType dtype) { return dtype != DType::Int64; }

/// The C++ type stored for a dtype, and back: DTypeOf<float>::value == Float32.
template <class E>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::Float32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::Float64;
};
template <>
struct DTypeOf<std::int64_t> {
  static constexpr DType value = DType::Int64;
};

/// Calls f(float{}) or f(double{}) for a floating dtype, so a kernel written as a
/// generic lambda is instantiated for both. Throws hkt::Error naming `op` for int64.
/// The lambda names the element type E (`using E = decltype(tag);`), as the templates
/// over the element type do: T is the number of tokens throughout hkt.
template <class F>
decltype(auto) dispatch_floating(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    default:
      break;
  }
  throw Error(std::string(op) + ": expected a float32 or float64 tensor, got " + dtype_name(dtype));
}

/// Like dispatch_floating, but also accepts int64 (for ops that only move data).
template <class F>
decltype(auto) dispatch_any(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    case DType::Int64:
      break;
  }
  return f(std::int64_t{});
}

}  // namespace hkt
