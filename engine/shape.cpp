#include "shape.h"

#include "error.h"

namespace hkt {

std::int64_t numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::vector<std::int64_t> contiguous_strides(const Shape& shape) {
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    // Align from the right: dimension i of out is dimension i - (rank - size) of each.
    std::int64_t sa = i + a.size() >= rank ? a[i + a.size() - rank] : 1;
    std::int64_t sb = i + b.size() >= rank ? b[i + b.size() - rank] : 1;
    if (sa != sb && sa != 1 && sb != 1)
      throw Error(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) + " cannot be broadcast");
    out[i] = sa == 1 ? sb : sa;
  }
  return out;
}

int normalize_axis(const char* op, int axis, int rank) {
  if (axis < -rank || axis >= rank || (rank == 0))
    throw Error(std::string(op) + ": axis " + std::to_string(axis) + " is out of range for a tensor of rank " +
                std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

void validate_shape(const char* op, const Shape& shape) {
  check(static_cast<int>(shape.size()) <= kMaxRank, std::string(op) + ": rank " + std::to_string(shape.size()) +
                                                        " exceeds the maximum rank " + std::to_string(kMaxRank));
  // Every size non-negative, and the element count small enough that a byte count of
  // 8 bytes per element fits in int64 (2^60 elements): larger products would wrap.
  // (A zero size anywhere makes the count 0 whatever the other sizes are.)
  constexpr std::int64_t kMaxElements = std::int64_t{1} << 60;
  bool empty = false;
  for (auto s : shape) {
    if (s < 0) throw Error(std::string(op) + ": shape " + shape_str(shape) + " has a negative size");
    empty |= s == 0;
  }
  if (empty) return;
  std::int64_t n = 1;
  for (auto s : shape) {
    if (n > kMaxElements / s)
      throw Error(std::string(op) + ": shape " + shape_str(shape) + " has more than 2^60 elements");
    n *= s;
  }
}

}  // namespace hkt
