// cuda_stub.cpp: the CUDA backend of a build without nvcc (HKT_CUDA=OFF or no CUDA
// toolkit). Every request that needs a GPU throws hkt::Error("...: this build has no
// CUDA support"), so a no-GPU build links, runs all CPU work and fails clearly when
// asked for CUDA. No CUDA tensor can exist in this build (allocate throws), so the op
// entry points below are unreachable from the engine; they throw all the same.
#include "cuda_backend.h"

#include "error.h"

namespace hkt::cuda {

namespace {
[[noreturn]] void no_cuda(const std::string& what) {
  throw Error(what + ": this build has no CUDA support (rebuild on a machine with the CUDA toolkit, HKT_CUDA=ON)");
}
}  // namespace

bool built_with_cuda() { return false; }
bool is_emulated() { return false; }

int device_count(std::string* reason) {
  if (reason) *reason = "this build has no CUDA support";
  return 0;
}

void require_device(const std::string& what) { no_cuda(what); }
DeviceInfo device_info(int) { no_cuda("device_info"); }
void* allocate(std::size_t) { no_cuda("cuda allocate"); }
void free(void*) noexcept {}
CudaMemoryStats memory_stats() { return {}; }
void reset_peak_memory() {}
void empty_cache() {}
void set_guard_mode(bool) {}
std::vector<std::string> take_guard_violations() { return {}; }
void copy_host_to_device(void*, const void*, std::size_t) { no_cuda("copy to cuda"); }
void copy_device_to_host(void*, const void*, std::size_t) { no_cuda("copy from cuda"); }
void copy_device_to_device(void*, const void*, std::size_t) { no_cuda("copy on cuda"); }
void synchronize() {}
std::int64_t host_waits() { return 0; }

void fill(void*, std::int64_t, double, DType) { no_cuda("fill on cuda"); }
void convert(const void*, DType, void*, DType, std::int64_t, bool) { no_cuda("convert on cuda"); }
void unary(fn::Unary, const void*, void*, std::int64_t, double, DType) { no_cuda("unary op on cuda"); }
void unary_backward(fn::Unary, const void*, const void*, const void*, void*, std::int64_t, DType) {
  no_cuda("unary backward on cuda");
}
void binary(fn::Binary, const void*, const void*, void*, const StridedView&, double, DType) {
  no_cuda("binary op on cuda");
}
void strided_copy(const void*, void*, const StridedView&, std::size_t) { no_cuda("copy on cuda"); }
void copy_block(const void*, std::int64_t, std::int64_t, void*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                std::int64_t, std::size_t) {
  no_cuda("copy on cuda");
}
void repeat_interleave(const void*, void*, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::size_t) {
  no_cuda("repeat_interleave on cuda");
}
void reduce_axis(bool, const void*, void*, std::int64_t, std::int64_t, std::int64_t, DType) {
  no_cuda("reduction on cuda");
}
double sum_of_squares(const std::vector<DeviceArray>&) { no_cuda("sum of squares on cuda"); }
void sum_of_squares_into(const std::vector<DeviceArray>&, double*) { no_cuda("sum of squares on cuda"); }
void clip_scale(void*, std::int64_t, const double*, double, DType) { no_cuda("clip_grad_norm on cuda"); }
void softmax_rows(const void*, void*, std::int64_t, std::int64_t, bool, DType) { no_cuda("softmax on cuda"); }
void softmax_backward_rows(const void*, const void*, void*, std::int64_t, std::int64_t, bool, DType) {
  no_cuda("softmax backward on cuda");
}
void cross_entropy_loss(const void*, const std::int64_t*, void*, std::int64_t, std::int64_t, std::int64_t, double,
                        std::int64_t, DType) {
  no_cuda("cross_entropy on cuda");
}
void cross_entropy_backward(const void*, const std::int64_t*, void*, std::int64_t, std::int64_t, std::int64_t, double,
                            const void*, std::int64_t, DType) {
  no_cuda("cross_entropy backward on cuda");
}
void layer_norm_forward(const void*, const void*, const void*, void*, void*, void*, std::int64_t, std::int64_t, double,
                        DType) {
  no_cuda("layer_norm on cuda");
}
void layer_norm_backward_input(const void*, const void*, const void*, const void*, void*, std::int64_t, std::int64_t,
                               DType) {
  no_cuda("layer_norm backward on cuda");
}
void column_sums(const void*, const void*, void*, std::int64_t, std::int64_t, DType) { no_cuda("column sums on cuda"); }
void embedding_forward(const void*, const std::int64_t*, void*, std::int64_t, std::int64_t, DType) {
  no_cuda("embedding on cuda");
}
void embedding_backward(const void*, const std::int64_t*, const std::int64_t*, void*, std::int64_t, std::int64_t,
                        DType) {
  no_cuda("embedding backward on cuda");
}
void gather_forward(const void*, const std::int64_t*, void*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                    DType) {
  no_cuda("gather on cuda");
}
void gather_backward(const void*, const std::int64_t*, void*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                     DType) {
  no_cuda("gather backward on cuda");
}
void conv1d_forward(const void*, const void*, const void*, void*, std::int64_t, std::int64_t, std::int64_t,
                    std::int64_t, std::int64_t, std::int64_t, DType) {
  no_cuda("causal_conv1d on cuda");
}
void conv1d_backward_input(const void*, const void*, void*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                           std::int64_t, std::int64_t, DType) {
  no_cuda("causal_conv1d backward on cuda");
}
void conv1d_backward_params(const void*, const void*, void*, void*, std::int64_t, std::int64_t, std::int64_t,
                            std::int64_t, std::int64_t, std::int64_t, DType) {
  no_cuda("causal_conv1d backward on cuda");
}
void dropout_mask(void*, std::int64_t, std::uint64_t, std::uint64_t, double, DType) { no_cuda("dropout on cuda"); }
void adamw_update(void*, const void*, void*, void*, std::int64_t, double, double, double, double, double, double,
                  DType) {
  no_cuda("AdamW on cuda");
}
void hkt_attention_forward(const AttentionArgs&, void*, void*, DType, int) { no_cuda("hkt_attention_fused on cuda"); }
void mma_bf16_gemm(const float*, const float*, const float*, float*, std::int64_t, std::int64_t, std::int64_t, bool) {
  no_cuda("mma_bf16_gemm");
}
void hkt_attention_backward(const AttentionArgs&, const void*, const void*, const void*, void* const*, void* const*,
                            void*, void*, DType, int) {
  no_cuda("hkt_attention_fused backward on cuda");
}
void hkt_attention_forward_v0(const AttentionArgs&, void*, void*, DType) { no_cuda("hkt_attention_fused on cuda"); }
void hkt_attention_forward_v2(const AttentionArgs&, float*, double*) { no_cuda("hkt_attention_forward_v2"); }
void check_attention_backward_v2(const AttentionArgs&) { no_cuda("check_attention_backward_v2"); }
void hkt_attention_backward_v2(const AttentionArgs&, const double*, const float*, float* const*, float* const*, float*,
                               float*) {
  no_cuda("hkt_attention_backward_v2");
}
void hkt_attention_backward_v0(const AttentionArgs&, const void*, const void*, const void*, void* const*, void* const*,
                               void*, void*, DType) {
  no_cuda("hkt_attention_fused backward on cuda");
}
void set_attention_kernel(int version) {
  if (version != 0 && version != 1)
    throw Error("set_attention_kernel: version " + std::to_string(version) + " does not exist (0 or 1)");
}
int attention_kernel() { return 1; }
std::size_t max_shared_memory_per_block() {
  no_cuda("max_shared_memory_per_block");
  return 0;
}
void gemm_strided_batched(bool, bool, std::int64_t, std::int64_t, std::int64_t, const void*, std::int64_t, const void*,
                          std::int64_t, void*, std::int64_t, std::int64_t, DType) {
  no_cuda("matmul on cuda");
}
void set_allow_tf32(bool) {}
bool allow_tf32() { return false; }

}  // namespace hkt::cuda
