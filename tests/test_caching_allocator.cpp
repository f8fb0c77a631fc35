// test_caching_allocator.cpp: the CUDA caching allocator's logic, run on the CPU over
// malloc (it is plain C++ over two functions): reuse, rounding, statistics, the retry
// after emptying the cache, the out-of-memory message, and guard mode catching writes
// outside a block.
#include <cstdlib>
#include <cstring>
#include <map>

#include "caching_allocator.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;
using hkt::cuda::CachingAllocator;

namespace {
// A raw allocator over malloc with a byte budget, counting its calls.
struct Budget {
  explicit Budget(std::size_t bytes) : limit(bytes) {}
  std::size_t limit, used = 0;
  int allocations = 0, frees = 0;
  std::map<void*, std::size_t> sizes;
};

CachingAllocator make(Budget& b) {
  return CachingAllocator(
      [&b](std::size_t n) -> void* {
        if (b.used + n > b.limit) return nullptr;
        void* p = std::malloc(n);
        b.used += n;
        b.sizes[p] = n;
        ++b.allocations;
        return p;
      },
      [&b](void* p) {
        b.used -= b.sizes.at(p);
        b.sizes.erase(p);
        ++b.frees;
        std::free(p);
      },
      [&b] { return b.limit - b.used; });
}
}  // namespace

TEST_CASE("caching allocator: freed blocks are reused and sizes round up to 512 bytes", "[cuda][allocator]") {
  Budget b{1 << 20};
  auto a = make(b);
  void* p = a.allocate(100);
  CHECK(a.allocated_bytes() == 512);
  CHECK(a.reserved_bytes() == 512);
  a.free(p);
  CHECK(a.allocated_bytes() == 0);
  CHECK(a.cached_blocks() == 1);
  void* q = a.allocate(512);  // fits the cached 512-byte block: no new raw allocation
  CHECK(q == p);
  CHECK(b.allocations == 1);
  void* r = a.allocate(1500);  // 1536 bytes: too big for any cached block
  CHECK(b.allocations == 2);
  CHECK(a.allocated_bytes() == 512 + 1536);
  CHECK(a.peak_allocated_bytes() == 512 + 1536);
  a.free(q);
  a.free(r);
  void* s = a.allocate(200);  // best fit: the 512-byte block, not the 1536-byte one
  CHECK(s == p);
  void* t = a.allocate(4000);  // 4096 > 2 x 1536 is not served by the 1536 block
  CHECK(b.allocations == 3);
  a.free(s);
  a.free(t);
  CHECK(a.allocate(0) == nullptr);
  a.empty_cache();
  CHECK(b.frees == 3);
  CHECK(a.reserved_bytes() == 0);
  CHECK(a.peak_allocated_bytes() == 512 + 4096);
}

TEST_CASE("caching allocator: out of memory empties the cache and retries, then names the sizes", "[cuda][allocator]") {
  Budget b{4096};
  auto a = make(b);
  void* p = a.allocate(3000);  // 3072 bytes reserved
  a.free(p);                   // cached
  void* q = a.allocate(2048);  // 2048 <= 3072 <= 4096: served by the cached block
  CHECK(q == p);
  a.free(q);
  // 4096 bytes do not fit next to the cached 3072: the cache is given back, then it fits.
  void* big = a.allocate(4096);
  CHECK(big != nullptr);
  CHECK(b.frees == 1);
  require_error([&] { a.allocate(100); },
                "cuda allocate: out of memory asking for 100 bytes; device free memory 0 bytes; "
                "this process holds 4096 bytes in tensors and 0 bytes cached");
  require_error([&] { a.free(reinterpret_cast<void*>(0x1234)); }, "pointer was not allocated by this allocator");
  a.free(big);
}

TEST_CASE("caching allocator: guard mode reports writes before and after a block", "[cuda][allocator]") {
  Budget b{1 << 20};
  auto a = make(b);
  require_error([&] { a.set_guard_mode(true); }, "guard mode needs set_guard_io first");
  a.set_guard_io([](void* p, unsigned char byte, std::size_t n) { std::memset(p, byte, n); },
                 [](void* host, const void* dev, std::size_t n) { std::memcpy(host, dev, n); });
  a.set_guard_mode(true);
  auto* ok = static_cast<unsigned char*>(a.allocate(10));
  std::memset(ok, 0, 10);  // inside: fine
  a.free(ok);
  CHECK(a.take_guard_violations().empty());
  auto* after = static_cast<unsigned char*>(a.allocate(10));
  after[10] = 0;  // one past the end (inside the rounding slack: still caught)
  after[11] = 0;
  a.free(after);
  auto* before = static_cast<unsigned char*>(a.allocate(64));
  before[-1] = 0;
  a.free(before);
  const auto v = a.take_guard_violations();
  REQUIRE(v.size() == 2);
  CHECK(v[0] == "a block of 10 bytes: 2 bytes written after its end");
  CHECK(v[1] == "a block of 64 bytes: 1 bytes written before its start");
  CHECK(a.take_guard_violations().empty());
  CHECK(a.cached_blocks() == 0);  // guarded blocks go straight back
  CHECK(b.used == 0);
  a.set_guard_mode(false);
}
