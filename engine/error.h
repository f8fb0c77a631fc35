// error.h: the one exception type the engine throws, and a check helper.
//
// Every error names the operation and what was wrong with which input, e.g.
// "matmul: [2,3] x [4,5]: inner sizes 3 and 4 differ". The command line catches
// hkt::Error, prints its message and exits with status 2.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace hkt {

/// Raised for any bad input to the engine (shape, dtype, device, index, state).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// A double as a short readable string for messages ("0.001", "1e-08", "nan"; never
/// "-nan" for a NaN with its sign bit set).
inline std::string format_number(double x) {
  if (x != x) return "nan";
  std::ostringstream os;
  os << x;
  return os.str();
}

/// Throws hkt::Error(message) when `condition` is false. Note: the message is built
/// before the test, so in a hot loop write `if (!condition) throw Error(...)` instead.
inline void check(bool condition, const std::string& message) {
  if (!condition) throw Error(message);
}

}  // namespace hkt
