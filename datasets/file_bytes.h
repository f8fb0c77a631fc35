// file_bytes.h: reading a whole binary data file, shared by the readers of datasets/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hkt::data {

/// The whole file as bytes. `kind` names what was expected ("a CIFAR-10 binary file") for
/// the messages. Throws hkt::Error naming the path when it is a directory, cannot be
/// opened, holds more than `max_bytes` (the format's limit: an endless device such as
/// /dev/zero is refused too), does not fit in memory, or a read fails.
std::vector<std::uint8_t> read_file_bytes(const std::string& path, const std::string& kind, std::uint64_t max_bytes);

}  // namespace hkt::data
