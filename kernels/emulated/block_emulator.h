// block_emulator.h (EMULATE build): runs a CUDA thread-block kernel on the CPU. Every
// thread of a block is a fiber (Boost.Context) on one OS thread; the blocks of a grid
// are spread over OpenMP threads. A fiber runs until it reaches a barrier
// (sync_threads), a warp operation (shuffle, sync_warp) or its end; when every thread
// of the block is waiting, the scheduler checks that they wait for the same thing,
// releases them, and runs them again in the configured thread order.
//
// What it checks (each failure is an hkt::Error naming the kernel, block and threads):
//   - a barrier reached by some threads while others wait at another barrier, a warp
//     operation, or have returned (a divergent __syncthreads: undefined on a GPU);
//   - a warp operation whose mask leaves out the calling lane, names lanes that are
//     elsewhere or have returned, or differs between the lanes that arrive (stricter
//     than sm_70+ hardware, which waits only for lanes still running and lets
//     __syncwarp calls at different lines meet: kernels here never rely on either);
//   - a shuffle reading a lane outside its mask;
//   - writes past either end of any shared-memory array, naming the array: guard bytes
//     as many as the array holds (at least 64) on each side, checked after the block
//     (larger overruns and out-of-bounds reads are not seen: compute-sanitizer's
//     memcheck on a GPU finds those).
// What it cannot show: speed, occupancy, bank conflicts, memory coalescing, races
// between blocks (blocks run whole, one after another on each OS thread), or the
// effects of the real warp scheduler; docs/cuda.md lists these. A thread switches only
// at a barrier, a warp operation or its end, so a thread that spins on a value another
// thread of its block writes never ends here (it may on sm_70+ GPUs); barriers are told
// apart by the line and column of their sync_threads call, so two calls of one helper
// that holds a barrier count as the same barrier.
//
// Kernels do not call this header directly: kernels/backend/block.h maps the CUDA
// built-ins (threadIdx, __syncthreads, __shfl_xor_sync, shared memory) onto it, so the
// same kernel source compiles under nvcc and here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <source_location>

namespace hkt::cuda::emu {

/// Grid or block extent / index, as CUDA's dim3 (unused axes are 1 / 0).
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

/// The order in which the scheduler runs the ready threads of a block after each
/// barrier. Correct kernels give bit-identical results under every order; a missing
/// barrier or a shared-memory race usually does not (tests/test_block_emulator.cpp).
enum class ThreadOrder { Forward, Reverse, Shuffled };

/// The thread order of every later launch (process-wide; `seed` picks the permutation
/// for Shuffled, a new one for each block and each round of the block).
void set_thread_order(ThreadOrder order, std::uint64_t seed = 0);
ThreadOrder thread_order();

/// Runs `body` as every thread of every block of `grid` (block_threads threads per
/// block, 1-D), with `dynamic_shared_bytes` of dynamic shared memory per block.
/// Throws hkt::Error for the faults listed above, for block_threads outside 1..1024 or
/// a dynamic size over max_shared_bytes(), naming `kernel`.
void launch(const char* kernel, Dim3 grid, unsigned block_threads, std::size_t dynamic_shared_bytes,
            const std::function<void()>& body);

// ---- called from inside a kernel (through kernels/backend/block.h) ----------------------

/// threadIdx.x, blockDim.x, blockIdx, gridDim of the calling fiber.
unsigned thread_index();
unsigned block_threads();
Dim3 block_index();
Dim3 grid_size();

/// __syncthreads(): waits until every thread of the block reaches this same call.
void sync_threads(std::source_location where = std::source_location::current());

/// __syncwarp(mask): waits until every lane in `mask` (of the caller's warp) reaches it.
void sync_warp(unsigned mask, std::source_location where = std::source_location::current());

/// The warp exchange behind __shfl_sync / __shfl_xor_sync: the caller offers `bits` and
/// receives the bits offered by lane `source_lane` (modulo 32) of its warp, once every
/// lane in `mask` has arrived at the same call.
std::uint64_t shuffle(unsigned mask, std::uint64_t bits, unsigned source_lane, std::source_location where);

/// The block's dynamic shared memory (extern __shared__), aligned to 16 bytes.
void* dynamic_shared();

/// A static __shared__ array: one per declaration site `where` and block, allocated
/// (guarded on both sides) by the first thread to reach it; every thread, and every
/// later pass over the same declaration, gets the same pointer. Throws when the block's
/// static and dynamic shared memory together pass max_shared_bytes().
void* static_shared(const char* name, std::size_t bytes, std::size_t align, std::source_location where);

/// The per-block shared-memory limit (static + dynamic) launches are checked against:
/// 227 KiB (sm_90's opt-in limit) by default. Tests lower it to reach the smaller tile
/// sizes a GPU with less shared memory (an A100: 163 KiB) would use.
void set_max_shared_bytes(std::size_t bytes);
std::size_t max_shared_bytes();

}  // namespace hkt::cuda::emu
