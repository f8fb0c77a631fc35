// cuda_backend.h: the engine's whole view of CUDA, as plain C++ functions on device
// pointers. The engine's ops (engine/ops/*.cpp) call these when their inputs are on
// Device::CUDA; nothing else in the engine knows about CUDA.
//
// Three implementations, chosen by the CMake option HKT_CUDA (kernels/CMakeLists.txt):
// - ON/AUTO with nvcc: kernels/backend/*.cpp compiled as CUDA (one thread per output
//   element through kernels/backend/launch.h, or thread blocks through block.h),
//   kernels/cuda/*.cu (runtime, cuBLAS) and kernels/caching_allocator.cpp. Nothing
//   detects a GPU at configure time: on a machine without one, CPU work runs normally
//   and every CUDA request fails with a message naming the CUDA error.
// - EMULATE: the same kernels/backend/*.cpp compiled as C++, on host memory
//   (kernels/emulated/): a loop over the output elements, and for block kernels the
//   block emulator (each CUDA thread a fiber). "cuda" tensors then live in ordinary
//   memory, so every dispatch path, the consistency harness and GPU training can be
//   tested on a machine without a GPU. It measures nothing about speed.
// - OFF, or no nvcc: kernels/stub/cuda_stub.cpp, where every request throws
//   hkt::Error("...: this build has no CUDA support").
//
// Conventions: pointers are device pointers of `dtype` elements (Float32 or Float64
// unless a function says otherwise; indices are int64). Every call is queued on the
// backend's one stream (in order); copies to the host wait for it. Errors throw
// hkt::Error naming the CUDA call, file and line. Shapes were checked by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/functors.h"
#include "dtype.h"

namespace hkt::cuda {

// ---- devices and memory (kernels/cuda/device.cu, kernels/emulated/device.cpp) -------

/// True when this build contains a CUDA backend (real or emulated).
bool built_with_cuda();
/// True for the EMULATE build (host memory standing in for the GPU).
bool is_emulated();

/// Number of usable CUDA devices; 0 when the build has no CUDA, there is no driver or no
/// device. Never throws. `reason` (optional) receives why the count is 0.
int device_count(std::string* reason = nullptr);

/// Properties of one device, as cudaGetDeviceProperties reports them.
struct DeviceInfo {
  std::string name;
  int compute_major = 0, compute_minor = 0;
  std::size_t total_memory_bytes = 0;
  int multiprocessors = 0;
};

/// Throws hkt::Error when no device can be used, naming `what` (the request) and why:
/// "what: this build has no CUDA support" or "what: no CUDA device is available (...)".
void require_device(const std::string& what);

/// Properties of device `index`; throws hkt::Error if it does not exist.
DeviceInfo device_info(int index);

/// The most shared memory one thread block may use on the current device, in bytes
/// (the opt-in limit: 227 KiB on an H100/H200, 163 KiB on an A100; in the EMULATE build
/// the block emulator's limit). The tiled kernels pick their tile sizes to fit it.
std::size_t max_shared_memory_per_block();

/// `nbytes` of device memory from the caching allocator (kernels/caching_allocator.h;
/// cudaMalloc underneath, never managed memory). Throws hkt::Error naming the size
/// asked for, the free device memory and what the cache holds when it fails.
void* allocate(std::size_t nbytes);
/// Returns memory from allocate() to the cache; never throws.
void free(void* ptr) noexcept;

/// Bytes in tensors now, their peak, and bytes the cache holds from the driver.
struct CudaMemoryStats {
  std::size_t allocated_bytes = 0, peak_allocated_bytes = 0, reserved_bytes = 0;
};
CudaMemoryStats memory_stats();
/// Sets the peak of memory_stats() to the bytes in tensors now.
void reset_peak_memory();
/// Returns every cached block that no tensor uses to the driver (cudaFree).
void empty_cache();

/// Guard mode for the consistency harness (kernels/caching_allocator.h): while on, new
/// device blocks carry guard bytes on both sides, checked when freed.
void set_guard_mode(bool on);
/// The out-of-bounds writes found since the last call (empty when none).
std::vector<std::string> take_guard_violations();

/// Copies of `nbytes` bytes; host memory may be reused as soon as either returns.
/// Host-to-device is queued behind the work already on the stream: up to
/// kStagingBytes (device_common.h) the bytes are first copied into pinned staging memory,
/// so the host does not wait; a larger upload waits for the stream. Device-to-host waits
/// for the stream (the bytes are needed now); device-to-device is queued.
void copy_host_to_device(void* dst, const void* src, std::size_t nbytes);
void copy_device_to_host(void* dst, const void* src, std::size_t nbytes);
void copy_device_to_device(void* dst, const void* src, std::size_t nbytes);
/// Waits for all queued work; throws the first asynchronous kernel error, if any.
void synchronize();
/// How many times the host has waited for the device's queued work since the process
/// started: each device-to-host copy, synchronize(), empty_cache(), upload over
/// kStagingBytes, and upload that found every staging buffer still queued (the reads of
/// the consistency harness's guard mode are not counted). The EMULATE
/// build, where nothing is queued, counts by the same rules (the last one aside), so a
/// test there sees the waits a GPU would make.
std::int64_t host_waits();

// ---- elementwise (kernels/backend/elementwise.cpp) ------------------------------------

/// Every element of x[n] (any dtype) set to `value` rounded to dtype.
void fill(void* x, std::int64_t n, double value, DType dtype);
/// dst[i] = src[i] converted (float <-> double; float -> int64 truncates; int64 -> float).
/// With `nonzero`, dst[i] = (src[i] != 0) ? 1 : 0 instead (masks of any dtype).
void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, std::int64_t n, bool nonzero = false);
/// y[i] = fn::unary<op>(x[i], s) for i < n (x may equal y: in place).
void unary(fn::Unary op, const void* x, void* y, std::int64_t n, double s, DType dtype);
/// gx[i] = zero_safe(g[i], fn::unary_derivative<op>(x[i], y[i])): backward of Neg..GeluTanh.
void unary_backward(fn::Unary op, const void* g, const void* x, const void* y, void* gx, std::int64_t n, DType dtype);

/// A broadcast or strided view, at most kMaxRank dimensions: the output is contiguous
/// with sizes `shape`; input element offsets are sum_d coord_d * strides[d] + offset.
inline constexpr int kMaxRank = 8;
struct StridedView {
  int rank = 0;
  std::int64_t shape[kMaxRank] = {};
  std::int64_t strides_a[kMaxRank] = {};  // first input (or the only one)
  std::int64_t strides_b[kMaxRank] = {};  // second input of a binary op
  std::int64_t offset_a = 0;
};
/// out[i] = fn::binary<op>(a[..], b[..], s) over view.shape (numpy broadcasting: a
/// broadcast dimension has stride 0). out may equal a when a is not broadcast.
void binary(fn::Binary op, const void* a, const void* b, void* out, const StridedView& view, double s, DType dtype);
/// out[i] = src[offset_a + sum coord_d strides_a[d]]: permute, slice, concat, expand.
/// `element_bytes` is 4 or 8 (any dtype).
void strided_copy(const void* src, void* out, const StridedView& view, std::size_t element_bytes);
/// Block copy along an axis: dst[o, dst_start + j, k] = src[o, src_start + j, k] for
/// j < count, src [outer, src_n, inner], dst [outer, dst_n, inner] (slice, concat).
void copy_block(const void* src, std::int64_t src_n, std::int64_t src_start, void* dst, std::int64_t dst_n,
                std::int64_t dst_start, std::int64_t count, std::int64_t outer, std::int64_t inner,
                std::size_t element_bytes);
/// out[o, j, k] = x[o, j / repeats, k], out [outer, n * repeats, inner] (the HKT lift).
void repeat_interleave(const void* x, void* out, std::int64_t outer, std::int64_t n, std::int64_t repeats,
                       std::int64_t inner, std::size_t element_bytes);

// ---- reductions (kernels/backend/reduce.cpp) -------------------------------------------

/// One axis of x viewed as [outer, n, inner]: out[o, k] = sum_j x[o, j, k] (or the max,
/// NaN propagating; -inf for n = 0), accumulated in double in the order j = 0..n-1.
void reduce_axis(bool is_max, const void* x, void* out, std::int64_t outer, std::int64_t n, std::int64_t inner,
                 DType dtype);
/// One array in device memory: n elements of dtype (float32 or float64) at data.
struct DeviceArray {
  const void* data = nullptr;
  std::int64_t n = 0;
  DType dtype = DType::Float32;
};
/// sum over the arrays of sum_k x[k]^2, in double, for clip_grad_norm's global norm:
/// thread blocks sum chunks of 4096 elements, one block adds the chunks' sums in a fixed
/// order, and the one result is copied to the host (the call's only wait on the device,
/// however many arrays). Deterministic: the order depends on the arrays' sizes alone.
/// No arrays, or only empty ones: 0. Throws for a non-empty array whose dtype is not
/// floating.
double sum_of_squares(const std::vector<DeviceArray>& arrays);
/// The same sum written to `total`, one double in device memory, with no wait.
void sum_of_squares_into(const std::vector<DeviceArray>& arrays, double* total);
/// clip_grad_norm's scaling read on the device: with norm = sqrt(*sum_of_squares) and
/// coef = max_norm / (norm + 1e-6), g[i] *= coef (rounded to dtype) when the norm is
/// finite and coef < 1; otherwise g is left as it is. g: n elements of dtype.
void clip_scale(void* g, std::int64_t n, const double* sum_of_squares, double max_norm, DType dtype);

// ---- softmax family (kernels/backend/softmax.cpp) ---------------------------------------

/// Per row of z [rows, n]: log_softmax (as_probabilities false) or softmax; a row of all
/// -inf gives -inf (log) or 0. Row sums in double. Same formulas as engine/ops/softmax.cpp.
void softmax_rows(const void* z, void* y, std::int64_t rows, std::int64_t n, bool as_probabilities, DType dtype);
/// Backward per row. softmax (y = p): gx = p (g - sum g p), 0 where p = 0. log_softmax
/// (y = log p): gx = g - e^y sum_{y != -inf} g, 0 where y = -inf.
void softmax_backward_rows(const void* y, const void* g, void* gx, std::int64_t rows, std::int64_t n,
                           bool as_probabilities, DType dtype);
/// Cross entropy from logp [N, C] (log_softmax rows) and int64 targets [N]: writes the
/// rank-0 mean loss (see ops.h cross_entropy; `count` non-ignored targets, checked by the
/// caller to lie in [0, C)). Summed in double by one thread block in a fixed order
/// (kernels/backend/softmax.cpp): deterministic, equal to the CPU's row-order sum to
/// double rounding.
void cross_entropy_loss(const void* logp, const std::int64_t* targets, void* loss, std::int64_t N, std::int64_t C,
                        std::int64_t ignore_index, double label_smoothing, std::int64_t count, DType dtype);
/// dlogits[i, c] = scale (p[i, c] - q[i, c]), q = (1 - eps) onehot + eps / C; 0 in rows
/// whose target is ignored. scale = upstream / count, with `upstream` the loss's gradient,
/// one element of dtype in device memory: read by the kernel, so the host does not wait
/// for it.
void cross_entropy_backward(const void* logp, const std::int64_t* targets, void* gx, std::int64_t N, std::int64_t C,
                            std::int64_t ignore_index, double label_smoothing, const void* upstream, std::int64_t count,
                            DType dtype);

// ---- layer norm (kernels/backend/layer_norm.cpp) ------------------------------------------

/// Per row of x [N, D]: statistics in double, xhat = (x - mu) rstd, y = xhat w + b
/// (w, b may be null: 1 and 0). Writes y, xhat [N, D] and rstd [N].
void layer_norm_forward(const void* x, const void* w, const void* b, void* y, void* xhat, void* rstd, std::int64_t N,
                        std::int64_t D, double eps, DType dtype);
/// dx = rstd (g w - mean(g w) - xhat mean(g w xhat)) per row (w may be null).
void layer_norm_backward_input(const void* g, const void* xhat, const void* rstd, const void* w, void* dx,
                               std::int64_t N, std::int64_t D, DType dtype);
/// out[j] = sum_r g[r, j] * (xhat ? xhat[r, j] : 1), rows in order (dweight, dbias).
void column_sums(const void* g, const void* xhat, void* out, std::int64_t N, std::int64_t D, DType dtype);

// ---- indexing (kernels/backend/indexing.cpp) -----------------------------------------------

/// y[i, :] = weight[indices[i], :], y [N, D]. Indices checked by the caller.
void embedding_forward(const void* weight, const std::int64_t* indices, void* y, std::int64_t N, std::int64_t D,
                       DType dtype);
/// dW[v, :] = sum over positions i of row v (in increasing i) of g[i, :]. The positions
/// of row v are rows_of[row_start[v] .. row_start[v + 1]) (a CSR list built by the
/// caller), so each output has one thread and a fixed order: deterministic, no atomics.
void embedding_backward(const void* g, const std::int64_t* row_start, const std::int64_t* rows_of, void* dw,
                        std::int64_t V, std::int64_t D, DType dtype);
/// y[o, i, k] = x[o, index[o, i, k], k]; x [outer, n_x, inner], index/y [outer, n_i, inner].
void gather_forward(const void* x, const std::int64_t* index, void* y, std::int64_t outer, std::int64_t n_x,
                    std::int64_t n_i, std::int64_t inner, DType dtype);
/// dx[o, p, k] = sum over i (in order) with index[o, i, k] == p of g[o, i, k].
void gather_backward(const void* g, const std::int64_t* index, void* dx, std::int64_t outer, std::int64_t n_x,
                     std::int64_t n_i, std::int64_t inner, DType dtype);

// ---- the downsampler (kernels/backend/conv1d.cpp) -------------------------------------------

/// y[b, t, c] = bias[c] + sum_{r<k, s t - r >= 0} w[c, r] x[b, s t - r, c] (bias may be
/// null). x [B, T, C], w [C, k], y [B, T_out, C]; docs/hkt-attention.md section 1.
void conv1d_forward(const void* x, const void* w, const void* bias, void* y, std::int64_t B, std::int64_t T,
                    std::int64_t C, std::int64_t k, std::int64_t stride, std::int64_t T_out, DType dtype);
/// dx[b, p, c] = sum over (t, r) with s t - r = p of g[b, t, c] w[c, r].
void conv1d_backward_input(const void* g, const void* w, void* dx, std::int64_t B, std::int64_t T, std::int64_t C,
                           std::int64_t k, std::int64_t stride, std::int64_t T_out, DType dtype);
/// dw[c, r] = sum_{b, t} g[b, t, c] x[b, s t - r, c], dbias[c] = sum_{b, t} g[b, t, c]
/// (either output may be null).
void conv1d_backward_params(const void* g, const void* x, void* dw, void* dbias, std::int64_t B, std::int64_t T,
                            std::int64_t C, std::int64_t k, std::int64_t stride, std::int64_t T_out, DType dtype);

// ---- randomness and the optimizer (kernels/backend/optim.cpp) ---------------------------

/// Inverted-dropout scale mask: mask[i] = 0 when uniform24_at(seed, first, i) < p (word
/// i % 4 of Philox block first + i / 4), else 1/(1-p); the same numbers as the CPU
/// (engine/random.h). The caller's generator advances by ceil(n / 4).
void dropout_mask(void* mask, std::int64_t n, std::uint64_t seed, std::uint64_t first, double p, DType dtype);
/// One AdamW update of n elements, in place (engine/optim/adamw.cpp, same formula):
/// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p = decay p - step_size m / (sqrt(v)/bc2_sqrt + eps).
void adamw_update(void* param, const void* grad, void* m, void* v, std::int64_t n, double beta1, double beta2,
                  double eps, double decay, double step_size, double bc2_sqrt, DType dtype);

// ---- fused hierarchical attention (kernels/backend/attention_v0.cpp, attention_v1.cpp) ----

/// Limits of the fused CUDA attention: levels L <= 4, head width d_h <= 128.
inline constexpr int kMaxAttentionLevels = 4;
inline constexpr std::int64_t kMaxAttentionHeadDim = 128;

/// One call's inputs (device pointers, dtype elements) and sizes, as
/// hkt_attention_fused takes them (engine/attention/hkt_attention.h): q[l], k[l]
/// [B, H, T_l, d_h]; v [B, H, T, d_h]; alpha [H, L]; keep [B, T] int64, nonzero = real
/// key (nullptr: all real).
struct AttentionArgs {
  const void* q[kMaxAttentionLevels] = {};
  const void* k[kMaxAttentionLevels] = {};
  const void* v = nullptr;
  const void* alpha = nullptr;
  const std::int64_t* keep = nullptr;
  std::int64_t B = 0, H = 0, T = 0, dh = 0;
  std::int64_t Tl[kMaxAttentionLevels] = {};
  int L = 1;
  bool causal = false;
  double scale = 1.0;
};
/// Fused forward (docs/hkt-attention.md section 6): out [B, H, T, d_h] (dtype)
/// and the row log-sum-exp lse [B, H, T], float64 whatever the dtype (-inf for a row with
/// every key masked, whose output is 0). The backward recomputes p = exp(s - LSE): a
/// float32 LSE (rounded by about 1e-7 of its size, some units) would bias every p of the
/// row by that much, and the backward's rows of ds would no longer sum to 0. Memory O(T d_h). Runs kernel
/// `version` (0, 1 or 2, as set_attention_kernel; -1: the one set_attention_kernel chose, v1
/// unless changed). Throws hkt::Error for v2 with a dtype other than float32.
void hkt_attention_forward(const AttentionArgs& args, void* out, void* lse, DType dtype, int version = -1);
/// Backward (FlashAttention-2 formulas, recomputing p from the LSE): D = rowsum(dO O),
/// then dv [B, H, T, d_h], dq[l] and dk[l] [B, H, T_l, d_h], and dalpha [H, L] (nullptr:
/// not wanted), each summed in a fixed order. Deterministic: no atomics. `version` as in
/// hkt_attention_forward (v2 sums D from P and dP instead: hkt_attention_backward_v2).
void hkt_attention_backward(const AttentionArgs& args, const void* out, const void* lse, const void* grad_out,
                            void* const* dq, void* const* dk, void* dv, void* dalpha, DType dtype, int version = -1);
/// Which fused attention kernels hkt_attention_forward/backward run, process-wide: 1 (the
/// default) is v1, tiled in shared memory (attention_v1.cpp); 0 is v0, one thread per
/// output row (attention_v0.cpp), kept as the per-element reference the tests and the
/// benchmark compare against; 2 is v2, bf16 inputs on tensor cores (float32 tensors only:
/// what `model.attention_precision = "bf16"` and `hkt bench attention --impl fused-v2`
/// select). Throws hkt::Error for any other version.
void set_attention_kernel(int version);
int attention_kernel();
/// Version 2's forward on tensor cores (attention_v2.cpp): float32 inputs rounded to
/// bfloat16 as they are staged, every product an m16n8k16 bf16 MMA accumulating in
/// float32, the softmax statistics and O in float32, P rounded to bfloat16 for P V.
/// out [B, H, T, d_h] float32 and lse [B, H, T] float64, as hkt_attention_forward. Its
/// error against the float64 truth is that of an unfused computation with the same bf16
/// inputs and float32 accumulation (tests/test_cuda_attention.cpp). Throws hkt::Error for
/// L or d_h beyond 4 and 128, or a grid beyond 65535 tiles of 64 tokens.
void hkt_attention_forward_v2(const AttentionArgs& args, float* out, double* lse);
/// Version 2's backward (attention_v2_backward.cpp), the contract of hkt_attention_backward
/// for float32 tensors: dq[l], dk[l] [B, H, T_l, d_h], dv [B, H, T, d_h], dalpha [H, L]
/// (nullptr: not wanted), from the forward's lse and the upstream gradient grad_out
/// [B, H, T, d_h] (not the forward's output: D = sum_j p dp is summed from the P and dP the
/// backward recomputes; attention_v2_backward.cpp says why). Q_l, K_l, V and dO are
/// rounded to bf16 as they are staged, P and dS as they enter a product; every product is
/// a bf16 MMA accumulating in float32; D and dalpha's sums are in double. Its error against the float64
/// truth is at most twice that of an unfused computation whose matmuls take the same bf16
/// operands and accumulate in float32 (tests/test_cuda_attention.cpp). Deterministic.
/// Throws hkt::Error as the forward does, and when the key-tile kernel's shared memory
/// (up to 210 KiB at d_h = 128, L = 4) exceeds the device's per-block limit.
void hkt_attention_backward_v2(const AttentionArgs& args, const double* lse, const float* grad_out, float* const* dq,
                               float* const* dk, float* dv, float* dalpha);
/// Throws hkt::Error, as hkt_attention_backward_v2 would, when the v2 backward cannot run
/// `args` on this device (L or d_h out of range, the grid, or its shared memory: an A100's
/// 163 KiB per block does not hold d_h = 128 with L >= 3). The engine's op calls it before
/// the forward when it will need the backward, so a training step fails at once.
void check_attention_backward_v2(const AttentionArgs& args);
/// v0 itself (the reference; the same contract as hkt_attention_forward/backward).
void hkt_attention_forward_v0(const AttentionArgs& args, void* out, void* lse, DType dtype);
void hkt_attention_backward_v0(const AttentionArgs& args, const void* out, const void* lse, const void* grad_out,
                               void* const* dq, void* const* dk, void* dv, void* dalpha, DType dtype);

// ---- the warp tensor-core product (kernels/backend/mma.h, mma_gemm.cpp) ----------------

/// D = A B + C by one warp through the m16n8k16 bf16 product of kernels/backend/mma.h:
/// A [m, k], B given as B^T [n, k], C and D [m, n], row-major float32 device pointers; m
/// a multiple of 16, n of 8, k of 16 (hkt::Error otherwise); A and B rounded to bf16,
/// accumulated in float32 from one k block of 16 to the next. `model` true: the shuffle
/// model the EMULATE build runs; false: the tensor-core instruction (on sm_80+; the model
/// again in the EMULATE build). Queued on the backend's stream like every kernel. For tests
/// and tools/gpu_check.sh: on a GPU the two agree exactly on inputs whose sums are exact,
/// which checks the fragment layout against the hardware.
void mma_bf16_gemm(const float* a, const float* bt, const float* c, float* d, std::int64_t m, std::int64_t n,
                   std::int64_t k, bool model);

// ---- matrix products (kernels/cuda/gemm.cu: cuBLAS; kernels/emulated/gemm.cpp: BLAS) ------

/// Row-major C[i] = op(A[i]) op(B[i]) for i < batch, C [m, n]; A [m, k] ([k, m] when
/// trans_a), B [k, n] ([n, k] when trans_b); element strides between batch entries
/// (0 repeats one matrix). cublasGemmStridedBatchedEx with the compute type set
/// explicitly: FP32 (or FP64) by default, TF32 only after set_allow_tf32(true).
void gemm_strided_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const void* a,
                          std::int64_t stride_a, const void* b, std::int64_t stride_b, void* c, std::int64_t stride_c,
                          std::int64_t batch, DType dtype);
/// Lets float32 GEMMs use TF32 tensor cores (10-bit mantissa inputs). Off by default.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace hkt::cuda
