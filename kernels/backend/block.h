// block.h: thread-block kernels written once for the GPU and for the CPU emulator.
//
// A block kernel is a struct with `static constexpr unsigned kThreads` (threads per
// block, 1-D) and `HKT_DEVICE void operator()() const` (what one thread does). Inside
// it, the CUDA built-ins are reached through hkt::cuda::dev:
//
//   dev::thread_index()              threadIdx.x
//   dev::block_x() / block_y() / block_z()  blockIdx
//   dev::grid_x()                    gridDim.x
//   dev::sync_threads()              __syncthreads()
//   dev::sync_warp(mask)             __syncwarp(mask)
//   dev::shfl_xor(mask, v, m)        __shfl_xor_sync(mask, v, m)
//   dev::shfl(mask, v, lane)         __shfl_sync(mask, v, lane)
//   dev::dynamic_shared<E>()         extern __shared__ memory, as E*
//   HKT_SHARED(E, name, n)           __shared__ E name[n]
//   dev::ldg(p)                      __ldg(p) (read-only cache load)
//
// launch_blocks(name, grid, shared_bytes, kernel) is a real <<<grid, kThreads, shared>>>
// launch on the backend's stream under nvcc; in the EMULATE build it runs every thread
// as a fiber through kernels/emulated/block_emulator.h, which checks barriers, warp
// masks and shared-memory bounds, and can run the threads in any order
// (set_thread_order) to expose races. for_each (launch.h) stays the way to write
// one-thread-per-output kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "launch.h"

namespace hkt::cuda {

/// A grid of blocks: blockIdx.x < x, .y < y, .z < z.
struct Grid {
  unsigned x = 1, y = 1, z = 1;
};

}  // namespace hkt::cuda

#if defined(__CUDACC__)

#define HKT_DEVICE __device__ __forceinline__
#define HKT_SHARED(E, name, n) __shared__ E name[n]

namespace hkt::cuda {
namespace dev {
HKT_DEVICE unsigned thread_index() { return threadIdx.x; }
HKT_DEVICE unsigned block_x() { return blockIdx.x; }
HKT_DEVICE unsigned block_y() { return blockIdx.y; }
HKT_DEVICE unsigned block_z() { return blockIdx.z; }
HKT_DEVICE unsigned grid_x() { return gridDim.x; }
HKT_DEVICE void sync_threads() { __syncthreads(); }
HKT_DEVICE void sync_warp(unsigned mask) { __syncwarp(mask); }
template <class V>
HKT_DEVICE V shfl_xor(unsigned mask, V value, unsigned lane_mask) {
  return __shfl_xor_sync(mask, value, static_cast<int>(lane_mask));
}
template <class V>
HKT_DEVICE V shfl(unsigned mask, V value, unsigned source_lane) {
  return __shfl_sync(mask, value, static_cast<int>(source_lane));
}
template <class E>
HKT_DEVICE E* dynamic_shared() {
  extern __shared__ __align__(16) unsigned char hkt_dynamic_shared[];
  return reinterpret_cast<E*>(hkt_dynamic_shared);
}
template <class E>
HKT_DEVICE E ldg(const E* p) {
  return __ldg(p);
}
}  // namespace dev

namespace detail {
// __launch_bounds__(kThreads): ptxas then budgets registers for exactly that block size.
template <class K>
__global__ void __launch_bounds__(K::kThreads, 1) block_kernel(const K kernel) {
  kernel();
}
}  // namespace detail

/// Launches `kernel` on grid x K::kThreads threads with `shared_bytes` of dynamic shared
/// memory, on the backend's stream. `name` is for error messages (the emulator's).
template <class K>
void launch_blocks(const char*, Grid grid, std::size_t shared_bytes, const K& kernel) {
  if (shared_bytes > 48 * 1024)  // above 48 KiB a kernel must opt in
    HKT_CUDA_CHECK(cudaFuncSetAttribute(detail::block_kernel<K>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(shared_bytes)));
  detail::block_kernel<K><<<dim3(grid.x, grid.y, grid.z), K::kThreads, shared_bytes, stream()>>>(kernel);
  HKT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hkt::cuda

#else  // the EMULATE build

#include <source_location>

#include "emulated/block_emulator.h"

#define HKT_DEVICE inline
// A static shared array: the same pointer in every thread of the block (the emulator
// allocates it, with guard bytes, when the first thread reaches the declaration).
// (Unlike the GPU's array, `name` is a pointer here: take sizes from E and n, never
// sizeof(name).)
#define HKT_SHARED(E, name, n)     \
  E* const name = static_cast<E*>( \
      ::hkt::cuda::emu::static_shared(#name, sizeof(E) * (n), alignof(E), std::source_location::current()))

namespace hkt::cuda {
namespace dev {
inline unsigned thread_index() { return emu::thread_index(); }
inline unsigned block_x() { return emu::block_index().x; }
inline unsigned block_y() { return emu::block_index().y; }
inline unsigned block_z() { return emu::block_index().z; }
inline unsigned grid_x() { return emu::grid_size().x; }
inline void sync_threads(std::source_location where = std::source_location::current()) { emu::sync_threads(where); }
inline void sync_warp(unsigned mask, std::source_location where = std::source_location::current()) {
  emu::sync_warp(mask, where);
}
// The value travels as its bytes (CUDA shuffles 4- and 8-byte types the same way).
template <class V>
V shfl(unsigned mask, V value, unsigned source_lane, std::source_location where = std::source_location::current()) {
  static_assert(sizeof(V) <= sizeof(std::uint64_t), "shuffles move at most 8 bytes");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(V));
  bits = emu::shuffle(mask, bits, source_lane, where);
  std::memcpy(&value, &bits, sizeof(V));
  return value;
}
template <class V>
V shfl_xor(unsigned mask, V value, unsigned lane_mask, std::source_location where = std::source_location::current()) {
  return shfl(mask, value, (emu::thread_index() % 32) ^ lane_mask, where);
}
template <class E>
E* dynamic_shared() {
  return static_cast<E*>(emu::dynamic_shared());
}
template <class E>
E ldg(const E* p) {
  return *p;
}
}  // namespace dev

/// Runs `kernel` as every thread of every block of `grid` on the CPU (block_emulator.h).
template <class K>
void launch_blocks(const char* name, Grid grid, std::size_t shared_bytes, const K& kernel) {
  emu::launch(name, {grid.x, grid.y, grid.z}, K::kThreads, shared_bytes, [&kernel] { kernel(); });
}

}  // namespace hkt::cuda

#endif
