// scratch.h: device memory a launch needs only for its own duration.
#pragma once

#include <cstddef>

#include "cuda_backend.h"

namespace hkt::cuda {

/// nbytes of device memory from allocate() (none for 0), returned to the cache on every
/// path out of the scope, a throwing launch included. Freeing right after queueing the
/// kernels that use it is safe: the caching allocator hands a block on in stream order
/// (kernels/caching_allocator.h).
struct Scratch {
  void* ptr;
  explicit Scratch(std::size_t nbytes) : ptr(nbytes ? allocate(nbytes) : nullptr) {}
  ~Scratch() {
    if (ptr) free(ptr);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

}  // namespace hkt::cuda
