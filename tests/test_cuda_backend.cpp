// test_cuda_backend.cpp: without a usable GPU (no CUDA in the build, or no device),
// CPU work runs and every CUDA request fails with a message saying why.
#include "cuda_backend.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

TEST_CASE("cuda backend: requests fail clearly without a GPU", "[cuda]") {
  std::string reason;
  if (cuda::device_count(&reason) > 0) {
    // A GPU is present: the first kernel must agree with the CPU (the GPU test ladder
    // lives with the CUDA backend; this is the smoke test).
    Tensor a = Tensor::arange(0, 1000, 1, DType::Float64), b = Tensor::full({1000}, 0.5, DType::Float64);
    Tensor c = add(a.to(Device::CUDA), b.to(Device::CUDA)).to(Device::CPU);
    CHECK(c.to_vector() == add(a, b).to_vector());
    return;
  }
  CHECK_FALSE(reason.empty());
  const std::string expected = cuda::built_with_cuda() ? "no CUDA device is available" : "this build has no CUDA support";
  require_error([] { Tensor::ones({2}).to(Device::CUDA); }, "to(cuda): " + expected);
  require_error([] { Tensor::zeros({2}, DType::Float32, Device::CUDA); }, expected);
  require_error([] { cuda::device_info(0); }, expected);
  CHECK(parse_device("cpu") == Device::CPU);
  require_error([] { parse_device("gpu"); }, "unknown device 'gpu' (expected cpu or cuda)");
  // CPU work is unaffected.
  CHECK(sum(Tensor::ones({3})).item() == 3.0);
}
