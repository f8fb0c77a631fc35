// block_emulator.cpp (EMULATE build): the fiber scheduler behind block_emulator.h.
//
// One block at a time per OS thread:
//   1. every thread of the block is a fiber with its own stack (from a per-OS-thread pool);
//   2. the scheduler resumes each ready thread, in the configured order, until it waits
//      (barrier or warp operation) or returns;
//   3. when no thread is ready, it releases a group of waiting threads after checking
//      that they wait for the same thing (warp operations first, then the barrier), or
//      stops the block with an error that names what diverged;
//   4. after the last thread returns, the shared-memory guard bytes are checked.
#include "block_emulator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/context/fiber.hpp>
#include <cstring>
#include <exception>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "error.h"

// AddressSanitizer keeps its own idea of which stack is running; every switch between
// fibers is announced to it (gcc defines __SANITIZE_ADDRESS__ under -fsanitize=address).
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define HKT_ASAN_FIBERS 1
#endif

namespace hkt::cuda::emu {

namespace {

namespace ctx = boost::context;

constexpr unsigned kWarpSize = 32;
constexpr unsigned kMaxBlockThreads = 1024;
// The per-block shared-memory limit launches are checked against: sm_90's opt-in 227 KiB
// unless a test sets a smaller one (set_max_shared_bytes).
std::atomic<std::size_t> g_max_shared{227 * 1024};
// Guard bytes on each side of a shared array: at least 64, and as many as the array
// holds, so an overrun by up to a whole array (a wrong tile size) lands in the guard
// and is reported instead of corrupting the heap.
constexpr std::size_t kMinGuardBytes = 64;
constexpr unsigned char kGuardByte = 0xA5;
// Shared memory starts as 0xFF bytes (a NaN in float and double, -1 in integers), so a
// read before any write shows up in a kernel's output instead of reading a plausible 0.
constexpr unsigned char kFreshShared = 0xFF;

std::atomic<ThreadOrder> g_order{ThreadOrder::Forward};
std::atomic<std::uint64_t> g_seed{0};

// ---- fiber stacks: mmap'd with a guard page below, pooled per OS thread ----------------

// 1 MiB of address space per thread (pages are committed only when touched): above the
// 512 KiB of local memory a CUDA thread may have, so a kernel that fits a GPU fits here.
constexpr std::size_t kStackBytes = 1024 * 1024;

struct StackPool {
  std::vector<ctx::stack_context> free;
  ~StackPool() {
    for (auto& s : free) munmap(static_cast<char*>(s.sp) - s.size - page(), s.size + page());
  }
  static std::size_t page() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }
};
thread_local StackPool t_stacks;
thread_local ctx::stack_context t_last_stack;  // the stack the allocator handed out last

// The stack allocator Boost.Context asks for each fiber's stack.
struct PooledStack {
  ctx::stack_context allocate() {
    if (!t_stacks.free.empty()) {
      t_last_stack = t_stacks.free.back();
      t_stacks.free.pop_back();
      return t_last_stack;
    }
    const std::size_t guard = StackPool::page();
    void* base = mmap(nullptr, kStackBytes + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw Error("block emulator: could not map a fiber stack");
    mprotect(base, guard, PROT_NONE);  // an overflowing thread faults instead of corrupting
    ctx::stack_context s;
    s.size = kStackBytes;
    s.sp = static_cast<char*>(base) + guard + kStackBytes;  // stacks grow down from sp
    t_last_stack = s;
    return s;
  }
  void deallocate(ctx::stack_context& s) noexcept { t_stacks.free.push_back(s); }
};

// ---- one shared-memory array with guard bytes on both sides --------------------------

struct SharedArray {
  std::string name;
  std::size_t bytes = 0, align = 16, guard = kMinGuardBytes;
  std::unique_ptr<unsigned char[]> raw;
  unsigned char* data = nullptr;

  SharedArray(std::string n, std::size_t size, std::size_t alignment)
      : name(std::move(n)), bytes(size), align(alignment), guard(size > kMinGuardBytes ? size : kMinGuardBytes) {
    const std::size_t a = alignment < 16 ? 16 : alignment;
    raw.reset(new unsigned char[bytes + 2 * guard + a]);
    auto addr = reinterpret_cast<std::uintptr_t>(raw.get()) + guard;
    addr = (addr + a - 1) / a * a;
    data = reinterpret_cast<unsigned char*>(addr);
    std::memset(data - guard, kGuardByte, guard);
    std::memset(data, kFreshShared, bytes);
    std::memset(data + bytes, kGuardByte, guard);
  }

  // "" when both guards are intact, else what was overwritten.
  std::string check() const {
    for (std::size_t i = 0; i < guard; ++i)
      if (data[bytes + i] != kGuardByte)
        return "shared array '" + name + "' (" + std::to_string(bytes) + " bytes) was written past its end, at byte " +
               std::to_string(bytes + i);
    for (std::size_t i = 0; i < guard; ++i)
      if (data[-static_cast<std::ptrdiff_t>(guard) + static_cast<std::ptrdiff_t>(i)] != kGuardByte)
        return "shared array '" + name + "' (" + std::to_string(bytes) +
               " bytes) was written before its start, at byte " +
               std::to_string(static_cast<std::ptrdiff_t>(i) - static_cast<std::ptrdiff_t>(guard));
    return "";
  }
};

// ---- the state of one block ------------------------------------------------------------

enum class State { Ready, AtBarrier, AtWarp, Done };

struct Thread {
  State state = State::Ready;
  ctx::fiber fiber;
  std::source_location where;  // of the barrier or warp operation it waits at
  unsigned mask = 0;           // warp operations: the lanes taking part
  unsigned source = 0;         // shuffles: the lane to read from
  std::uint64_t offered = 0, received = 0;
  std::exception_ptr error;
  ctx::stack_context stack;  // its fiber's stack (for the sanitizer's switch notes)
};

struct Block {
  const char* kernel = "";
  Dim3 index, grid;
  unsigned threads = 0;
  std::vector<Thread> thread;
  std::unique_ptr<SharedArray> dynamic;
  std::vector<std::unique_ptr<SharedArray>> statics;
  std::vector<std::source_location> static_sites;  // where each static array is declared
  ctx::fiber scheduler;                            // inside a thread fiber: the way back to the scheduler
  unsigned running = 0;                            // the thread the scheduler resumed last
  bool aborting = false;                           // stopped on an error: waiting threads unwind when resumed
  const void* scheduler_stack = nullptr;           // the OS thread's stack, for the sanitizer
  std::size_t scheduler_stack_size = 0;

  std::string name() const {
    return "kernel '" + std::string(kernel) + "', block (" + std::to_string(index.x) + ", " + std::to_string(index.y) +
           ", " + std::to_string(index.z) + ")";
  }
};

thread_local Block* t_block = nullptr;

Block& current(const char* what) {
  if (t_block == nullptr) throw Error(std::string("block emulator: ") + what + " called outside a kernel launch");
  return *t_block;
}

std::string site(const std::source_location& w) {
  std::string file = w.file_name();
  const auto slash = file.rfind('/');
  if (slash != std::string::npos) file = file.substr(slash + 1);
  return file + ":" + std::to_string(w.line()) + ":" + std::to_string(w.column());
}

bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() && std::strcmp(a.file_name(), b.file_name()) == 0;
}

std::string hex(unsigned mask) {
  std::ostringstream s;
  s << "0x" << std::hex << mask;
  return s.str();
}

std::string describe(const Thread& t) {
  switch (t.state) {
    case State::Ready:
      return "is running";
    case State::AtBarrier:
      return "waits at __syncthreads (" + site(t.where) + ")";
    case State::AtWarp:
      return "waits at a warp operation (" + site(t.where) + ") with mask " + hex(t.mask);
    case State::Done:
      return "has returned";
  }
  return "";
}

// The sanitizer's notes around a stack switch (nothing without AddressSanitizer):
// before_switch just before leaving a stack for `to` (nullptr save: this fiber ends),
// after_switch first thing on the stack switched to.
inline void before_switch(void** save, const void* bottom, std::size_t size) {
#if defined(HKT_ASAN_FIBERS)
  __sanitizer_start_switch_fiber(save, bottom, size);
#else
  (void)save, (void)bottom, (void)size;
#endif
}
inline void after_switch(void* save, const void** old_bottom, std::size_t* old_size) {
#if defined(HKT_ASAN_FIBERS)
  __sanitizer_finish_switch_fiber(save, old_bottom, old_size);
#else
  (void)save, (void)old_bottom, (void)old_size;
#endif
}

// Thrown inside a waiting thread when its block stops on an error: it unwinds the
// thread's stack in its own fiber, so every fiber ends by returning (Boost's own
// unwinding of an abandoned fiber is a stack switch the sanitizer would not be told of).
struct Abort {};

// Suspends the calling thread fiber and returns to the scheduler; returns when resumed.
void wait(Block& b) {
  void* fake_stack = nullptr;
  before_switch(&fake_stack, b.scheduler_stack, b.scheduler_stack_size);
  b.scheduler = std::move(b.scheduler).resume();
  after_switch(fake_stack, nullptr, nullptr);
  t_block = &b;
  if (b.aborting) throw Abort{};
}

// The order in which to resume the threads in round `round` of the block.
std::vector<unsigned> thread_order(const Block& b, std::uint64_t round) {
  std::vector<unsigned> order(b.threads);
  for (unsigned i = 0; i < b.threads; ++i) order[i] = i;
  const ThreadOrder o = g_order.load();
  if (o == ThreadOrder::Reverse) std::reverse(order.begin(), order.end());
  if (o == ThreadOrder::Shuffled) {
    const std::uint64_t linear = (std::uint64_t{b.index.z} * b.grid.y + b.index.y) * b.grid.x + b.index.x;
    std::seed_seq seq{g_seed.load(), linear, round};
    std::mt19937_64 rng(seq);
    std::shuffle(order.begin(), order.end(), rng);
  }
  return order;
}

// Releases the lanes of one warp operation, or returns why they cannot be released.
std::string release_warp_group(Block& b, unsigned first) {
  const unsigned warp = first / kWarpSize, base = warp * kWarpSize;
  const Thread& lead = b.thread[first];
  const unsigned mask = lead.mask;
  const std::string where = b.name() + ", warp " + std::to_string(warp) + ": ";
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    if (!(mask >> lane & 1u)) continue;
    const unsigned t = base + lane;
    if (t >= b.threads)
      return where + "the mask " + hex(mask) + " at " + site(lead.where) + " names lane " + std::to_string(lane) +
             ", which does not exist (the block has " + std::to_string(b.threads) + " threads)";
    const Thread& other = b.thread[t];
    if (other.state != State::AtWarp || !same_site(other.where, lead.where) || other.mask != mask)
      return where + "lane " + std::to_string(first - base) + " waits at a warp operation (" + site(lead.where) +
             ") with mask " + hex(mask) + ", but lane " + std::to_string(lane) + " " + describe(other);
  }
  // A lane at the same operation with another, overlapping mask: the lanes disagree on
  // who takes part (undefined on a GPU).
  for (unsigned lane = 0; lane < kWarpSize && base + lane < b.threads; ++lane) {
    const Thread& other = b.thread[base + lane];
    if (other.state == State::AtWarp && same_site(other.where, lead.where) && other.mask != mask &&
        (other.mask & mask) != 0)
      return where + "lanes " + std::to_string(first - base) + " and " + std::to_string(lane) +
             " call the same warp operation (" + site(lead.where) + ") with different masks, " + hex(mask) + " and " +
             hex(other.mask);
  }
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    if (!(mask >> lane & 1u)) continue;
    Thread& t = b.thread[base + lane];
    if (!(mask >> t.source & 1u))
      return where + "lane " + std::to_string(lane) + " reads lane " + std::to_string(t.source) + " at " +
             site(t.where) + ", which is not in the mask " + hex(mask);
    t.received = b.thread[base + t.source].offered;
  }
  for (unsigned lane = 0; lane < kWarpSize; ++lane)
    if (mask >> lane & 1u) b.thread[base + lane].state = State::Ready;
  return "";
}

// With no thread ready: releases one group of waiting threads. Returns "" when it
// released some, else the error that stops the block.
std::string release(Block& b) {
  // Any complete warp operation goes first (another warp, or other lanes of the same
  // warp, may wait for it to finish); an error only when none can complete.
  std::string first_error;
  for (unsigned t = 0; t < b.threads; ++t) {
    if (b.thread[t].state != State::AtWarp) continue;
    const std::string error = release_warp_group(b, t);
    if (error.empty()) return "";
    if (first_error.empty()) first_error = error;
  }
  if (!first_error.empty()) return first_error;
  // No warp operation pending: every thread not returned waits at a barrier.
  unsigned first = b.threads;
  for (unsigned t = 0; t < b.threads; ++t)
    if (b.thread[t].state == State::AtBarrier) {
      first = t;
      break;
    }
  for (unsigned t = 0; t < b.threads; ++t) {
    const Thread& x = b.thread[t];
    if (x.state == State::Done)
      return b.name() + ": thread " + std::to_string(first) + " waits at __syncthreads (" +
             site(b.thread[first].where) + "), but thread " + std::to_string(t) + " has returned";
    if (!same_site(x.where, b.thread[first].where))
      return b.name() + ": divergent __syncthreads: thread " + std::to_string(first) + " waits at " +
             site(b.thread[first].where) + ", thread " + std::to_string(t) + " at " + site(x.where);
  }
  for (auto& x : b.thread) x.state = State::Ready;
  return "";
}

// Switches from the scheduler to thread t until it waits again or returns.
void resume(Block& b, unsigned t) {
  b.running = t;
  t_block = &b;
  void* fake_stack = nullptr;
  const ctx::stack_context& stack = b.thread[t].stack;
  before_switch(&fake_stack, static_cast<char*>(stack.sp) - stack.size, stack.size);
  b.thread[t].fiber = std::move(b.thread[t].fiber).resume();
  after_switch(fake_stack, nullptr, nullptr);
  t_block = nullptr;
}

// Ends every thread that has not returned: each resumes once and unwinds (Abort).
void abort_block(Block& b) {
  b.aborting = true;
  for (unsigned t = 0; t < b.threads; ++t)
    if (b.thread[t].state != State::Done) resume(b, t);
}

// Runs one block to its end. Returns "" or the error that stopped it.
std::string run_block(Block& b, const std::function<void()>& body) {
  b.thread.resize(b.threads);
  for (unsigned t = 0; t < b.threads; ++t) {
    b.thread[t].fiber = ctx::fiber(std::allocator_arg, PooledStack(), [&b, &body, t](ctx::fiber&& scheduler) {
      after_switch(nullptr, &b.scheduler_stack, &b.scheduler_stack_size);
      b.scheduler = std::move(scheduler);
      t_block = &b;
      try {
        if (!b.aborting) body();
      } catch (const Abort&) {  // the block stopped on another thread's error
      } catch (const ctx::detail::forced_unwind&) {
        throw;  // Boost.Context unwinding an abandoned fiber: let it through
      } catch (...) {
        b.thread[t].error = std::current_exception();
      }
      b.thread[t].state = State::Done;
      before_switch(nullptr, b.scheduler_stack, b.scheduler_stack_size);  // this fiber ends
      return std::move(b.scheduler);
    });
    b.thread[t].stack = t_last_stack;
  }
  for (std::uint64_t round = 0;; ++round) {
    for (unsigned t : thread_order(b, round)) {
      if (b.thread[t].state != State::Ready) continue;
      resume(b, t);
      if (b.thread[t].error) {
        std::string error;
        try {
          std::rethrow_exception(b.thread[t].error);
        } catch (const std::exception& e) {
          error = b.name() + ", thread " + std::to_string(t) + ": " + e.what();
        } catch (...) {
          error = b.name() + ", thread " + std::to_string(t) + ": an exception not derived from std::exception";
        }
        abort_block(b);
        return error;
      }
    }
    bool all_done = true;
    for (const auto& x : b.thread) all_done = all_done && x.state == State::Done;
    if (all_done) break;
    const std::string error = release(b);
    if (!error.empty()) {
      abort_block(b);
      return error;
    }
  }
  if (b.dynamic) {
    const std::string bad = b.dynamic->check();
    if (!bad.empty()) return b.name() + ": " + bad;
  }
  for (const auto& s : b.statics) {
    const std::string bad = s->check();
    if (!bad.empty()) return b.name() + ": " + bad;
  }
  return "";
}

}  // namespace

void set_thread_order(ThreadOrder order, std::uint64_t seed) {
  g_order = order;
  g_seed = seed;
}

ThreadOrder thread_order() { return g_order.load(); }

void launch(const char* kernel, Dim3 grid, unsigned block_threads, std::size_t dynamic_shared_bytes,
            const std::function<void()>& body) {
  const std::string name = "kernel '" + std::string(kernel) + "'";
  if (block_threads == 0 || block_threads > kMaxBlockThreads)
    throw Error(name + ": " + std::to_string(block_threads) + " threads per block (CUDA allows 1 to 1024)");
  if (dynamic_shared_bytes > g_max_shared.load())
    throw Error(name + ": " + std::to_string(dynamic_shared_bytes) +
                " bytes of dynamic shared memory per block (at most " + std::to_string(g_max_shared.load()) + ")");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    throw Error(name + ": grid (" + std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " +
                std::to_string(grid.z) +
                ") is empty or beyond CUDA's limits (x at most 2^31 - 1, y and z at most 65535)");
  if (t_block != nullptr)
    throw Error(name + ": launched from inside " + t_block->name() + " (launches from a kernel are not emulated)");
  const std::int64_t blocks = std::int64_t{grid.x} * grid.y * grid.z;
  std::int64_t first_bad = blocks;  // the lowest failing block, so the error is deterministic
  std::string error;
#pragma omp parallel for schedule(dynamic) if (blocks > 1)
  for (std::int64_t linear = 0; linear < blocks; ++linear) {
    Block b;
    b.kernel = kernel;
    b.grid = grid;
    b.index = {static_cast<unsigned>(linear % grid.x), static_cast<unsigned>(linear / grid.x % grid.y),
               static_cast<unsigned>(linear / grid.x / grid.y)};
    b.threads = block_threads;
    if (dynamic_shared_bytes > 0)
      b.dynamic = std::make_unique<SharedArray>("extern __shared__ (dynamic)", dynamic_shared_bytes, 16);
    std::string bad;
    try {  // an exception must not leave an OpenMP loop
      bad = run_block(b, body);
    } catch (const std::exception& e) {
      bad = b.name() + ": " + e.what();
    }
    b.thread.clear();  // every fiber has returned (abort_block), so this only frees them
    if (!bad.empty()) {
#pragma omp critical(hkt_block_emulator_error)
      if (linear < first_bad) {
        first_bad = linear;
        error = std::move(bad);
      }
    }
  }
  if (!error.empty()) throw Error("block emulator: " + error);
}

unsigned thread_index() { return current("threadIdx").running; }
unsigned block_threads() { return current("blockDim").threads; }
Dim3 block_index() { return current("blockIdx").index; }
Dim3 grid_size() { return current("gridDim").grid; }

void sync_threads(std::source_location where) {
  Block& b = current("__syncthreads");
  Thread& me = b.thread[b.running];
  me.state = State::AtBarrier;
  me.where = where;
  wait(b);
}

std::uint64_t shuffle(unsigned mask, std::uint64_t bits, unsigned source_lane, std::source_location where) {
  Block& b = current("a warp operation");
  const unsigned lane = b.running % kWarpSize;
  if (!(mask >> lane & 1u))
    throw Error("warp operation at " + site(where) + ": lane " + std::to_string(lane) + " calls it with mask " +
                hex(mask) + ", which leaves the lane out");
  Thread& me = b.thread[b.running];
  me.state = State::AtWarp;
  me.where = where;
  me.mask = mask;
  me.source = source_lane % kWarpSize;  // as __shfl_sync: the lane modulo the warp width
  me.offered = bits;
  wait(b);
  return b.thread[b.running].received;
}

void sync_warp(unsigned mask, std::source_location where) {
  const unsigned lane = current("__syncwarp").running % kWarpSize;
  shuffle(mask, 0, lane, where);
}

void* dynamic_shared() {
  Block& b = current("extern __shared__");
  if (!b.dynamic) throw Error("extern __shared__: the kernel was launched with 0 bytes of dynamic shared memory");
  return b.dynamic->data;
}

void* static_shared(const char* name, std::size_t bytes, std::size_t align, std::source_location where) {
  Block& b = current("__shared__");
  // One array per declaration site, as a CUDA __shared__ variable is one per block
  // however often the declaration runs.
  for (std::size_t i = 0; i < b.statics.size(); ++i)
    if (same_site(b.static_sites[i], where)) {
      const SharedArray& s = *b.statics[i];
      if (s.bytes != bytes)
        throw Error("__shared__ array '" + std::string(name) + "' at " + site(where) + " is " + std::to_string(bytes) +
                    " bytes in this thread but " + std::to_string(s.bytes) + " in another");
      return s.data;
    }
  std::size_t total = b.dynamic ? b.dynamic->bytes : 0;
  for (const auto& s : b.statics) total += s->bytes;
  if (total + bytes > g_max_shared.load())
    throw Error("__shared__ array '" + std::string(name) + "' at " + site(where) +
                ": the block's shared memory would be " + std::to_string(total + bytes) + " bytes, over the limit of " +
                std::to_string(g_max_shared.load()));
  b.statics.push_back(std::make_unique<SharedArray>(name, bytes, align));
  b.static_sites.push_back(where);
  return b.statics.back()->data;
}

void set_max_shared_bytes(std::size_t bytes) { g_max_shared = bytes; }
std::size_t max_shared_bytes() { return g_max_shared.load(); }

}  // namespace hkt::cuda::emu
