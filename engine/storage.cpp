#include "storage.h"

#include <cstdlib>
#include <string>

#include "cuda_backend.h"
#include "error.h"

namespace hkt {

std::shared_ptr<Storage> Storage::allocate(std::size_t nbytes, Device device) {
  void* data = nullptr;
  if (device == Device::CUDA) {
    data = cuda::allocate(nbytes);
  } else {
    // 64-byte alignment suits AVX-512 loads and cache lines; aligned_alloc needs a size
    // that is a multiple of the alignment, so round up (and never ask for 0 bytes).
    std::size_t rounded = ((nbytes + 63) / 64) * 64;
    data = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!data) throw Error("cpu allocate: could not allocate " + std::to_string(nbytes) + " bytes");
  }
  return std::shared_ptr<Storage>(new Storage(data, nbytes, device));
}

Storage::~Storage() {
  if (device_ == Device::CUDA)
    cuda::free(data_);
  else
    std::free(data_);
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") return Device::CUDA;
  throw Error("unknown device '" + name + "' (expected cpu or cuda)");
}

}  // namespace hkt
