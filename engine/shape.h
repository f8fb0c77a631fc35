// shape.h: tensor shapes, element counts, broadcasting and axis normalisation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hkt {

/// Sizes of each dimension, outermost first (row-major). Rank 0 (a scalar) is {}.
using Shape = std::vector<std::int64_t>;

/// Largest rank the engine supports (ranks 0..8).
inline constexpr int kMaxRank = 8;

/// Product of the sizes (1 for a scalar).
std::int64_t numel(const Shape& shape);

/// "[2,3,4]", the form every error message uses; "[]" for a scalar.
std::string shape_str(const Shape& shape);

/// Row-major element strides of a contiguous tensor of this shape.
std::vector<std::int64_t> contiguous_strides(const Shape& shape);

/// The numpy broadcast of two shapes: align on the right, each pair of sizes must be
/// equal or one of them 1. Throws hkt::Error "op: shapes [..] and [..] cannot be broadcast".
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

/// Maps axis in [-rank, rank) to [0, rank); throws hkt::Error naming op otherwise.
int normalize_axis(const char* op, int axis, int rank);

/// Checks that a shape has no negative size and rank <= kMaxRank; throws hkt::Error.
void validate_shape(const char* op, const Shape& shape);

}  // namespace hkt
