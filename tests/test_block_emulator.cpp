// test_block_emulator.cpp: the block emulator (kernels/emulated/block_emulator.h) runs
// correct block kernels, and stops or flags the classic kernel bugs: a divergent
// barrier, a thread returning while others wait, a missing barrier (different bits
// under different thread orders), a shuffle with a wrong mask, and shared-memory
// overruns. EMULATE build only (elsewhere the kernels would need a GPU).
#include "test_helpers.h"

#if defined(HKT_EMULATE_CUDA)

#include "backend/block.h"

using namespace hkt;
using namespace hkt::cuda;

namespace {

// Sum of x[0..n) per block: each thread adds a strided share, then the block reduces in
// shared memory (tree, with barriers) down to one warp, which finishes with shuffles.
struct BlockSum {
  static constexpr unsigned kThreads = 128;
  const double* x;
  double* out;  // one per block
  std::int64_t n;
  HKT_DEVICE void operator()() const {
    HKT_SHARED(double, partial, kThreads);
    const unsigned t = dev::thread_index();
    double s = 0;
    for (std::int64_t i = dev::block_x() * kThreads + t; i < n; i += std::int64_t{kThreads} * 4) s += x[i];
    partial[t] = s;
    dev::sync_threads();
    for (unsigned half = kThreads / 2; half >= 32; half /= 2) {
      if (t < half) partial[t] += partial[t + half];
      dev::sync_threads();
    }
    if (t < 32) {
      double v = partial[t];
      for (unsigned m = 16; m >= 1; m /= 2) v += dev::shfl_xor(0xffffffffu, v, m);
      if (t == 0) out[dev::block_x()] = v;
    }
  }
};

// Threads 0..15 wait at one barrier, the others at another.
struct DivergentBarrier {
  static constexpr unsigned kThreads = 64;
  HKT_DEVICE void operator()() const {
    if (dev::thread_index() < 16)
      dev::sync_threads();
    else
      dev::sync_threads();
  }
};

// Thread 5 returns before the barrier the others wait at.
struct EarlyReturn {
  static constexpr unsigned kThreads = 32;
  HKT_DEVICE void operator()() const {
    if (dev::thread_index() == 5) return;
    dev::sync_threads();
  }
};

// Each thread writes its slot and reads its neighbour's; `barrier` says whether a
// barrier separates the write from the read.
struct NeighbourRead {
  static constexpr unsigned kThreads = 64;
  double* out;
  bool barrier;
  HKT_DEVICE void operator()() const {
    HKT_SHARED(double, slot, kThreads);
    const unsigned t = dev::thread_index();
    slot[t] = 0;
    dev::sync_threads();
    slot[t] = t + 1.0;
    if (barrier) dev::sync_threads();
    out[t] = slot[(t + 1) % kThreads];
  }
};

// Lanes 0..15 shuffle with mask 0xffff, lanes 16..31 with the full mask.
struct MismatchedMask {
  static constexpr unsigned kThreads = 32;
  HKT_DEVICE void operator()() const {
    const unsigned t = dev::thread_index();
    const unsigned mask = t < 16 ? 0xffffu : 0xffffffffu;
    (void)dev::shfl_xor(mask, 1.0f, 1);
  }
};

// Every lane passes a mask without itself.
struct MaskWithoutSelf {
  static constexpr unsigned kThreads = 32;
  HKT_DEVICE void operator()() const { (void)dev::shfl_xor(0u, 1.0f, 1); }
};

// Thread 0 writes one element past a static array, or past dynamic shared memory.
struct Overrun {
  static constexpr unsigned kThreads = 32;
  bool dynamic;
  HKT_DEVICE void operator()() const {
    HKT_SHARED(float, tile, 8);
    float* dyn = dev::dynamic_shared<float>();
    if (dev::thread_index() == 0) {
      if (dynamic)
        dyn[16] = 1.0f;
      else
        tile[8] = 1.0f;
    }
  }
};

// Lanes 16..31 finish a shuffle among themselves before all 32 meet at a second one
// (legal: the first operation completes, then the second).
struct TwoWarpOperations {
  static constexpr unsigned kThreads = 32;
  float* out;
  HKT_DEVICE void operator()() const {
    const unsigned t = dev::thread_index();
    float v = static_cast<float>(t);
    if (t >= 16) v += dev::shfl_xor(0xffff0000u, v, 1);
    v = dev::shfl(0xffffffffu, v, 17);
    out[t] = v;
  }
};

// A shuffle reading lane 20 under a mask of lanes 0..15.
struct ReadOutsideMask {
  static constexpr unsigned kThreads = 32;
  HKT_DEVICE void operator()() const {
    if (dev::thread_index() < 16) (void)dev::shfl(0xffffu, 1.0f, 20);
  }
};

// A helper that declares a static shared array, called twice: one array, whose
// contents persist between the calls, as on the GPU.
HKT_DEVICE float* counter_slot() {
  HKT_SHARED(float, counter, 1);
  return counter;
}
struct RepeatedDeclaration {
  static constexpr unsigned kThreads = 32;
  float* out;
  HKT_DEVICE void operator()() const {
    if (dev::thread_index() == 0) *counter_slot() = 7.0f;
    dev::sync_threads();
    out[dev::thread_index()] = *counter_slot();
  }
};

// Thread 0 writes 50 elements past a 64-float array (a tile size off by a factor).
struct FarOverrun {
  static constexpr unsigned kThreads = 32;
  HKT_DEVICE void operator()() const {
    HKT_SHARED(float, big, 64);
    if (dev::thread_index() == 0) big[64 + 50] = 1.0f;
  }
};

// Each thread launches another kernel (dynamic parallelism, not emulated).
struct Nested {
  static constexpr unsigned kThreads = 2;
  HKT_DEVICE void operator()() const { launch_blocks("inner", Grid{1}, 0, Nested{}); }
};

// Thread 3 writes one element before a static array.
struct Underrun {
  static constexpr unsigned kThreads = 32;
  HKT_DEVICE void operator()() const {
    HKT_SHARED(double, row, 4);
    if (dev::thread_index() == 3) row[-1] = 1.0;
  }
};

// Thread 9 throws (kernels on a GPU cannot; the emulator reports it instead of crashing).
struct Throws {
  static constexpr unsigned kThreads = 32;
  HKT_DEVICE void operator()() const {
    if (dev::thread_index() == 9) throw 42;
    dev::sync_threads();
  }
};

}  // namespace

TEST_CASE("block emulator: a shared-memory and shuffle block reduction sums exactly", "[emulator]") {
  const std::int64_t n = 1000;
  std::vector<double> x(n), out(4, -1.0);
  for (std::int64_t i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = static_cast<double>(i);
  launch_blocks("block_sum", Grid{4}, 0, BlockSum{x.data(), out.data(), n});
  // Block b sums i = 128 b + t + 512 k: integers, so the sum is exact in any order.
  for (int b = 0; b < 4; ++b) {
    double expect = 0;
    for (std::int64_t i = 0; i < n; ++i)
      if ((i % 512) / 128 == b) expect += static_cast<double>(i);
    CHECK(out[static_cast<std::size_t>(b)] == expect);
  }
  // 0 + 1 + ... + 999 = 499500 over the four blocks.
  CHECK(out[0] + out[1] + out[2] + out[3] == 499500.0);
  const std::string diff = test::thread_order_difference([&] {
    launch_blocks("block_sum", Grid{4}, 0, BlockSum{x.data(), out.data(), n});
    return std::vector<std::vector<double>>{out};
  });
  CHECK(diff.empty());
}

TEST_CASE("block emulator: a divergent barrier stops the run naming kernel, block and threads", "[emulator]") {
  test::require_error([] { launch_blocks("divergent", Grid{2}, 0, DivergentBarrier{}); },
                      "kernel 'divergent', block (0, 0, 0): divergent __syncthreads: thread 0 waits at "
                      "test_block_emulator.cpp:");
  test::require_error([] { launch_blocks("early", Grid{1}, 0, EarlyReturn{}); },
                      "kernel 'early', block (0, 0, 0): thread 0 waits at __syncthreads (test_block_emulator.cpp:");
  test::require_error([] { launch_blocks("early", Grid{1}, 0, EarlyReturn{}); }, "but thread 5 has returned");
}

TEST_CASE("block emulator: a missing barrier gives different bits under different thread orders", "[emulator]") {
  std::vector<double> out(64);
  const auto run = [&](bool barrier) {
    return test::thread_order_difference([&] {
      launch_blocks("neighbour", Grid{1}, 0, NeighbourRead{out.data(), barrier});
      return std::vector<std::vector<double>>{out};
    });
  };
  CHECK(run(true).empty());
  for (std::size_t t = 0; t < 64; ++t) CHECK(out[t] == static_cast<double>((t + 1) % 64 + 1));
  const std::string diff = run(false);
  INFO(diff);
  CHECK(diff.find("reverse order: output 0 element") != std::string::npos);
}

TEST_CASE("block emulator: shuffles with a wrong mask are refused", "[emulator]") {
  test::require_error([] { launch_blocks("mask", Grid{1}, 0, MismatchedMask{}); },
                      "kernel 'mask', block (0, 0, 0), warp 0: lanes 0 and 16 call the same warp operation "
                      "(test_block_emulator.cpp:");
  test::require_error([] { launch_blocks("mask", Grid{1}, 0, MismatchedMask{}); },
                      "with different masks, 0xffff and 0xffffffff");
  test::require_error([] { launch_blocks("self", Grid{1}, 0, MaskWithoutSelf{}); },
                      "lane 0 calls it with mask 0x0, which leaves the lane out");
}

TEST_CASE("block emulator: shared-memory overruns are reported with the array", "[emulator]") {
  test::require_error([] { launch_blocks("overrun", Grid{1}, 64, Overrun{false}); },
                      "kernel 'overrun', block (0, 0, 0): shared array 'tile' (32 bytes) was written past its end, at "
                      "byte 32");
  test::require_error([] { launch_blocks("overrun", Grid{1}, 64, Overrun{true}); },
                      "shared array 'extern __shared__ (dynamic)' (64 bytes) was written past its end, at byte 64");
  test::require_error([] { launch_blocks("big", Grid{1}, 300 * 1024, Overrun{true}); },
                      "kernel 'big': 307200 bytes of dynamic shared memory per block (at most 232448)");
}

TEST_CASE("block emulator: legal warp operations at two sites, repeated shared declarations", "[emulator]") {
  std::vector<float> out(32, -1.0f);
  launch_blocks("two_ops", Grid{1}, 0, TwoWarpOperations{out.data()});
  // Every lane reads lane 17's value after the first shuffle: 17 + 16 = 33.
  for (float v : out) CHECK(v == 33.0f);
  launch_blocks("repeated", Grid{2}, 0, RepeatedDeclaration{out.data()});
  for (float v : out) CHECK(v == 7.0f);
}

TEST_CASE("block emulator: a shuffle outside its mask, an underrun and a throwing thread are reported", "[emulator]") {
  test::require_error([] { launch_blocks("outside", Grid{1}, 0, ReadOutsideMask{}); },
                      "lane 0 reads lane 20 at test_block_emulator.cpp:");
  test::require_error([] { launch_blocks("under", Grid{1}, 0, Underrun{}); },
                      "shared array 'row' (32 bytes) was written before its start, at byte -8");
  test::require_error([] { launch_blocks("far", Grid{1}, 0, FarOverrun{}); },
                      "shared array 'big' (256 bytes) was written past its end, at byte 456");
  test::require_error([] { launch_blocks("outer", Grid{1}, 0, Nested{}); },
                      "kernel 'outer', block (0, 0, 0), thread 0: kernel 'inner': launched from inside kernel 'outer'");
  test::require_error([] { launch_blocks("wide", Grid{0x80000000u}, 0, Nested{}); },
                      "kernel 'wide': grid (2147483648, 1, 1) is empty or beyond CUDA's limits");
  test::require_error([] { launch_blocks("throws", Grid{3}, 0, Throws{}); },
                      "kernel 'throws', block (0, 0, 0), thread 9: an exception not derived from std::exception");
}

#else

TEST_CASE("block emulator: the EMULATE build runs these tests", "[emulator]") {
  std::cout << "skipped: the block emulator is part of the EMULATE build (-DHKT_CUDA=EMULATE)" << std::endl;
}

#endif
